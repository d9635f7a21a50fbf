"""``host[:port]`` strings as used for nameservers, resolvers and provider servers."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mxflip.records import normalize_name


@dataclass(frozen=True)
class HostPort:
    """A server address: an IP literal or host name, and a port."""

    host: str
    port: int

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_hostport(text: str, default_port: int) -> HostPort:
    """Parse ``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 literal.

    Raises ``ValueError`` with a readable reason.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("empty server address")
    port_text: str | None = None
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep:
            raise ValueError(f"{text!r}: missing ']' after the IPv6 address")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected ':PORT' after ']'")
            port_text = rest[1:]
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    else:
        host = raw  # a bare name, IPv4 or IPv6 literal
    port = default_port
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{text!r}: port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if ":" in host:
            raise ValueError(f"{text!r} is not a valid IPv6 address") from None
        host = normalize_name(host).rstrip(".")
    return HostPort(host, port)
