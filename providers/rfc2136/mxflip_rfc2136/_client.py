"""Private DNS client for the RFC 2136 adapter: queries and UPDATE messages to one server.

Translates dnspython's exceptions and response codes into mxflip errors with hints.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from typing import TypeVar

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import dns.update

from mxflip import (
    DNSClient,
    DNSReply,
    HostPort,
    MessageFactory,
    ProviderAuthError,
    ProviderError,
    Sleep,
    StaleExpectationError,
    make_question,
    retrying,
    timed,
)
from mxflip_rfc2136.keyfile import TsigKey

T = TypeVar("T")
_log = logging.getLogger(__name__)

#: How dnspython says that a reply to a signed message carries no TSIG at all.
_UNSIGNED = "requires a TSIG but does not have one"

_STALE_RCODES = {dns.rcode.YXRRSET, dns.rcode.NXRRSET, dns.rcode.YXDOMAIN, dns.rcode.NXDOMAIN}


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, dns.exception.Timeout | ConnectionError | TimeoutError) or (
        isinstance(exc, OSError) and not isinstance(exc, socket.gaierror)
    )


class RFC2136Client:
    """Talks to one authoritative server, optionally signing every message with TSIG."""

    def __init__(
        self,
        server: HostPort,
        key: TsigKey | None,
        *,
        timeout: float,
        attempts: int = 3,
        sleep: Sleep | None = None,
    ) -> None:
        self.server = server
        self.timeout = timeout
        self.attempts = attempts
        self._sleep = sleep
        self._address: str | None = server.host if server.is_ip else None
        self._keyring: dict[dns.name.Name, dns.tsig.Key] | None = None
        self._keyname: dns.name.Name | None = None
        self._key_label = key.name if key else None
        if key is not None:
            self._keyname = dns.name.from_text(key.name)
            self._keyring = {
                self._keyname: dns.tsig.Key(self._keyname, key.secret, key.wire_algorithm)
            }

    # ------------------------------------------------------------------ plumbing

    @property
    def address(self) -> str:
        if self._address is None:
            try:
                info = socket.getaddrinfo(
                    self.server.host, self.server.port, type=socket.SOCK_DGRAM
                )
            except socket.gaierror as exc:
                raise ProviderError(
                    f"cannot resolve DNS server {self.server.host}: {exc.strerror}",
                    hint="check the provider's 'server' setting",
                ) from None
            self._address = str(info[0][4][0])
        return self._address

    def _call(self, what: str, fn: Callable[[], T], *, attempts: int | None = None) -> T:
        retry = retrying(
            _transient,
            attempts=attempts or self.attempts,
            max_total=self.timeout * 4,
            sleep=self._sleep,
        )
        try:
            for attempt in retry:
                with attempt:
                    return fn()
        except dns.tsig.PeerBadKey:
            raise ProviderAuthError(
                f"{self.server} answered BADKEY for TSIG key {self._key_label!r} ({what}): "
                "it does not know the key, or does not let it do this",
                hint="check tsig_key_name and the algorithm against the server's keys; Knot DNS "
                "also answers BADKEY when it knows the key but no acl of the zone allows it "
                "(acl: action: update, key: NAME)",
            ) from None
        except (dns.tsig.PeerBadSignature, dns.tsig.BadSignature):
            raise ProviderAuthError(
                f"{self.server} rejected the TSIG signature of key {self._key_label!r} ({what})",
                hint="the secret in tsig_key_file differs from the server's copy of the key",
            ) from None
        except (dns.tsig.PeerBadTime, dns.tsig.PeerBadTruncation):
            raise ProviderAuthError(
                f"{self.server} rejected the TSIG time of key {self._key_label!r} ({what})",
                hint="the clocks of this machine and the DNS server differ by too much; check NTP",
            ) from None
        except dns.exception.Timeout:
            raise ProviderError(
                f"DNS server {self.server} did not answer within {self.timeout:g} s ({what})",
                hint="check that the server runs and that its address and port are right",
            ) from None
        except ConnectionRefusedError:
            raise ProviderError(
                f"DNS server {self.server} refused the connection ({what})",
                hint="check that the server runs and listens on that address and port",
            ) from None
        except OSError as exc:
            raise ProviderError(f"cannot reach DNS server {self.server} ({what}): {exc}") from None
        except dns.exception.TooBig:
            # dnspython refuses to build the message: nothing was sent, the server is fine.
            raise ProviderError(
                f"the message for the {what} is larger than a DNS message may be "
                "(64 KiB); it could not be built and nothing was sent",
                hint="lower the provider's max_update_bytes, or switch fewer domains at once",
            ) from None
        except dns.exception.FormError as exc:
            if self._keyring is not None and _UNSIGNED in str(exc):
                raise ProviderAuthError(
                    f"{self.server} answered the TSIG-signed {what} with an unsigned reply, "
                    "which cannot be trusted: it did not accept key "
                    f"{self._key_label!r}",
                    hint="PowerDNS answers this way (NOTAUTH, unsigned) when it does not know "
                    "the key name or the secret differs: compare 'pdnsutil list-tsig-keys' "
                    "with tsig_key_file, and check the zone's TSIG-ALLOW-DNSUPDATE metadata",
                ) from None
            raise ProviderError(
                f"bad answer from DNS server {self.server} ({what}): {exc}"
            ) from None
        except dns.exception.DNSException as exc:
            raise ProviderError(
                f"bad answer from DNS server {self.server} ({what}): {exc}"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover - retrying always returns or raises

    def _sign(self, message: dns.message.Message) -> None:
        if self._keyring is not None:
            message.use_tsig(self._keyring, keyname=self._keyname)

    # ------------------------------------------------------------------ operations

    def query(self, name: str, rdtype: str) -> dns.message.Message:
        """Ask the server (no recursion) for ``name``/``rdtype``; TCP when truncated."""
        q = dns.message.make_query(name, rdtype)
        q.flags &= ~dns.flags.RD
        self._sign(q)

        def send() -> dns.message.Message:
            response, _ = dns.query.udp_with_fallback(
                q, self.address, timeout=self.timeout, port=self.server.port
            )
            return response

        where = str(self.server)
        with timed(_log, "dns query", server=where, qname=name, rdtype=rdtype) as fields:
            response = self._call(f"query {name} {rdtype}", send)
            fields["rcode"] = dns.rcode.to_text(response.rcode())
        self._check_answer(response, name, rdtype)
        return response

    def _check_answer(self, response: dns.message.Message, name: str, rdtype: str) -> None:
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            text = dns.rcode.to_text(rcode)
            hint = None
            if rcode == dns.rcode.REFUSED:
                hint = "the server is not authoritative for this zone or refuses our queries"
            raise ProviderError(f"{self.server} answered {text} to {name} {rdtype}", hint=hint)

    def transfer_mx(self, zone: str) -> dict[dns.name.Name, list[dns.rrset.RRset]] | None:
        """Every MX RRset of ``zone`` by one zone transfer (AXFR, TSIG-signed when there is
        a key), by owner name; None when the transfer fails for any reason (servers often
        refuse transfers): the caller then asks name by name, and those queries report
        what is wrong with the server or the key."""
        found: dict[dns.name.Name, list[dns.rrset.RRset]] = {}
        with timed(_log, "dns transfer", server=str(self.server), zone=zone) as fields:
            found_or_none = self._transfer(zone, found)
            fields["rrsets"] = -1 if found_or_none is None else len(found_or_none)
        return found_or_none

    def _transfer(
        self, zone: str, found: dict[dns.name.Name, list[dns.rrset.RRset]]
    ) -> dict[dns.name.Name, list[dns.rrset.RRset]] | None:
        try:
            for message in dns.query.xfr(
                self.address,
                zone,
                port=self.server.port,
                keyring=self._keyring,
                keyname=self._keyname,
                timeout=self.timeout,
                lifetime=self.timeout * 4,
                relativize=False,
            ):
                for rrset in message.answer:
                    if rrset.rdtype == dns.rdatatype.MX:
                        found.setdefault(rrset.name, []).append(rrset)
        except (dns.exception.DNSException, OSError, ProviderError):
            return None
        return found

    def query_many(self, names: Sequence[str], rdtype: str) -> dict[str, dns.message.Message]:
        """Ask for every name at once, within mxflip's DNS client limits (in flight per
        server, a timed-out question asked again); one response per name."""

        def make(name: str) -> MessageFactory:
            plain = make_question(name, rdtype, recursive=False)

            def signed() -> dns.message.Message:
                q = plain()
                self._sign(q)
                return q

            return signed

        async def ask_all() -> list[DNSReply]:
            client = DNSClient(self.timeout)
            address, port = self.address, self.server.port
            return list(await asyncio.gather(*(client.ask(make(n), address, port) for n in names)))

        replies = asyncio.run(ask_all()) if names else []
        out: dict[str, dns.message.Message] = {}
        for name, reply in zip(names, replies, strict=True):
            what = f"query {name} {rdtype}"
            if reply.response is None:
                self._raise_for(what, reply)
            assert reply.response is not None
            self._check_answer(reply.response, name, rdtype)
            out[name] = reply.response
        return out

    def _raise_for(self, what: str, reply: DNSReply) -> None:
        """The same error as a failed single query: translated once, not retried again
        (the DNS client already retried timeouts)."""
        exc = reply.exception
        if exc is None:
            raise ProviderError(
                f"DNS server {self.server} did not answer within {self.timeout:g} s ({what}; "
                f"{reply.error})",
                hint="check that the server runs and that its address and port are right",
            )

        def again() -> None:
            raise exc

        self._call(what, again, attempts=1)

    def update(self, zone: str, message: dns.update.UpdateMessage) -> None:
        """Send one UPDATE over TCP; raise on any response code but NOERROR."""
        self._sign(message)

        def send() -> dns.message.Message:
            return dns.query.tcp(message, self.address, timeout=self.timeout, port=self.server.port)

        changes = sum(len(rrset) for rrset in message.update)
        with timed(
            _log,
            "dns update",
            level=logging.INFO,
            server=str(self.server),
            zone=zone,
            rrsets=changes,
        ) as fields:
            response = self._call(f"UPDATE of zone {zone}", send)
            fields["rcode"] = dns.rcode.to_text(response.rcode())
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        text = dns.rcode.to_text(rcode)
        if rcode in _STALE_RCODES:
            raise StaleExpectationError(
                f"the records in zone {zone} changed since the plan was made "
                f"({self.server} refused the UPDATE prerequisites with {text}); nothing was changed"
            )
        if rcode == dns.rcode.REFUSED:
            raise ProviderAuthError(
                f"{self.server} refused the UPDATE of zone {zone}",
                hint="either the key may not update MX records there (BIND: update-policy "
                "{ grant KEY zonesub MX; };) or the server's integrity checks refused the "
                "new records (BIND: an in-zone MX target without an A/AAAA record); "
                "the server's log says which",
            )
        if rcode == dns.rcode.NOTAUTH:
            raise ProviderAuthError(
                f"{self.server} is not authoritative for zone {zone} or did not accept the key",
                hint="point 'server' at the zone's primary and check the TSIG key",
            )
        if rcode == dns.rcode.NOTZONE:
            raise ProviderError(f"a name in the UPDATE is outside zone {zone}")
        raise ProviderError(f"{self.server} answered {text} to the UPDATE of zone {zone}")
