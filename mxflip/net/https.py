"""A minimal HTTPS GET for MTA-STS policies (RFC 8461 §3.3), resolved like every other
lookup of a check: through ``[probe] resolvers`` (a :class:`~mxflip.net.lookup.Lookup`) and
``[probe] connect`` (curl's ``--connect-to``), never the system resolver behind mxflip's
back. No redirects (the RFC forbids following them), a bounded body, HTTP/1.0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import urllib.parse
from collections.abc import Mapping

from mxflip.errors import DNSQueryError
from mxflip.hostport import HostPort
from mxflip.net.lookup import Lookup

#: CNAMEs followed from the URL's host to its addresses (a policy host is often a CNAME
#: to a hosting service).
_MAX_CNAMES = 8
#: The port a ``connect`` target gets when it names none (``parse_hostport`` fills in the
#: SMTP port 25, which no HTTPS server uses): the URL's own port.
_SMTP_PORT = 25


class FetchError(Exception):
    """The URL could not be fetched; the message says why."""


async def targets(
    url_host: str,
    url_port: int,
    lookup: Lookup,
    connect: Mapping[str, tuple[HostPort, ...]],
) -> list[HostPort]:
    """Where to connect for ``url_host``: an IP literal as is, a ``connect`` override, or
    its A/AAAA addresses through ``lookup`` (following CNAMEs)."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(url_host)
        return [HostPort(url_host, url_port)]
    name = url_host.lower().rstrip(".") + "."
    override = connect.get(name)
    if override:
        return [HostPort(t.host, url_port if t.port == _SMTP_PORT else t.port) for t in override]
    for _ in range(_MAX_CNAMES):
        try:
            found = await lookup.addresses(name)
        except DNSQueryError as exc:
            raise FetchError(f"cannot resolve {url_host}: {exc}") from None
        if found.cname is None:
            if not found.addresses:
                raise FetchError(f"{url_host} has no A or AAAA records at {lookup.where}")
            return [HostPort(a, url_port) for a in found.addresses]
        name = found.cname
    raise FetchError(f"{url_host}: more than {_MAX_CNAMES} CNAMEs")


async def get(
    url: str,
    *,
    context: ssl.SSLContext,
    timeout: float,
    lookup: Lookup,
    connect: Mapping[str, tuple[HostPort, ...]],
    max_bytes: int,
) -> str:
    """The body of ``url`` (status 200 only, at most ``max_bytes``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise FetchError(f"{url} is not an https:// URL")
    host = parts.hostname
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    async with asyncio.timeout(timeout):
        where = await targets(host, parts.port or 443, lookup, connect)
        data = await _exchange(where, host, path, context, max_bytes)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise FetchError("the HTTPS response has no header end")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    status = status_line.split()
    if len(status) < 2 or status[1] != "200":
        raise FetchError(f"HTTP status {status_line!r} (200 required, no redirects)")
    if len(body) > max_bytes:
        raise FetchError(f"the body is larger than {max_bytes // 1024} KiB")
    return body.decode("utf-8", "replace")


async def _exchange(
    where: list[HostPort], host: str, path: str, context: ssl.SSLContext, max_bytes: int
) -> bytes:
    """Connect to the first target that answers and read the whole (bounded) reply."""
    problems: list[str] = []
    for target in where:
        try:
            reader, writer = await asyncio.open_connection(
                target.host, target.port, ssl=context, server_hostname=host
            )
        except (OSError, ssl.SSLError) as exc:
            problems.append(f"{target}: {exc}")
            continue
        try:
            hostheader = f"[{host}]" if ":" in host else host
            writer.write(
                f"GET {path} HTTP/1.0\r\nHost: {hostheader}\r\nUser-Agent: mxflip\r\n"
                "Accept: text/plain\r\nConnection: close\r\n\r\n".encode("ascii")
            )
            await writer.drain()
            chunks: list[bytes] = []
            total = 0
            while total <= max_bytes + 16 * 1024:  # headers plus a bounded body
                more = await reader.read(16 * 1024)
                if not more:
                    break
                chunks.append(more)
                total += len(more)
            return b"".join(chunks)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    raise OSError("; ".join(problems) or "nowhere to connect")
