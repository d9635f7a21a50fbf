"""mxflip adapter for RFC 1035 zone files on disk (BIND, Knot, NSD, a git repository)."""

from mxflip_zonefile.provider import ZoneFileProvider, ZoneFileSettings

__all__ = ["ZoneFileProvider", "ZoneFileSettings"]
