"""mxflip adapter for Cloudflare DNS, through the official ``cloudflare`` SDK (5.x)."""

from mxflip_cloudflare.provider import CloudflareProvider, CloudflareSettings

__all__ = ["CloudflareProvider", "CloudflareSettings"]
