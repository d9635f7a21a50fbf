"""mxflip adapter for RFC 2136 dynamic DNS UPDATE, signed with TSIG."""

from mxflip_rfc2136.provider import RFC2136Provider, RFC2136Settings

__all__ = ["RFC2136Provider", "RFC2136Settings"]
