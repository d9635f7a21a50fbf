"""mxflip adapter for Amazon Route 53 hosted zones."""

from mxflip_route53.provider import Route53Provider
from mxflip_route53.settings import Route53Settings

__all__ = ["Route53Provider", "Route53Settings"]
