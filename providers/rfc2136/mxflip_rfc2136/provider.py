"""The RFC 2136 provider: thin glue between mxflip's interface and the DNS client."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, ValidationInfo, field_validator

from mxflip import (
    MX,
    AccessCheck,
    Change,
    ChangeHandle,
    Provider,
    ProviderError,
    ProviderSettings,
    RRset,
    StaleExpectationError,
    SystemClock,
    ZoneMX,
    parse_hostport,
)
from mxflip_rfc2136.keyfile import KeyFileError, TsigKey, read_key_file

if TYPE_CHECKING:
    import dns.rdataset
    import dns.rrset
    import dns.update

    # The client (dnspython's query and update machinery, retries) loads when one is
    # built: `mxflip validate` only checks settings.
    from mxflip import Clock
    from mxflip_rfc2136._client import RFC2136Client


class RFC2136Settings(ProviderSettings):
    """``[providers.NAME]`` keys for ``type = "rfc2136"``."""

    #: The zone's primary server, ``host[:port]`` (default port 53).
    server: str
    #: A BIND key file (as ``tsig-keygen`` writes it); relative to the config file.
    tsig_key_file: Path | None = None
    #: Which key of the file to use; needed only when it holds several.
    tsig_key_name: str | None = None
    #: Seconds to wait for one answer from the server.
    timeout: float = Field(default=5.0, gt=0, le=120)
    #: Read many names of a zone (64 or more at once) with one zone transfer (AXFR)
    #: instead of one query each, when the server allows it (falls back to queries).
    zone_transfer: bool = True
    #: The largest UPDATE message to send, in bytes (TSIG included). A zone's changes that
    #: do not fit in one are sent as several UPDATEs, each atomic and conditional on its own.
    max_update_bytes: int = Field(default=65535, ge=1024, le=65535)

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        return str(parse_hostport(value, 53))

    @field_validator("tsig_key_file")
    @classmethod
    def _key_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        base = (info.context or {}).get("base_dir")
        path = value if value.is_absolute() or base is None else Path(base) / value
        try:
            read_key_file(path, info.data.get("tsig_key_name"))
        except KeyFileError as exc:
            raise ValueError(str(exc)) from None
        return path

    def key(self) -> TsigKey | None:
        return (
            None
            if self.tsig_key_file is None
            else read_key_file(self.tsig_key_file, self.tsig_key_name)
        )


def _to_rdataset(rrset: RRset, ttl: int | None = None) -> dns.rdataset.Rdataset:
    return _rdataset(rrset.records, rrset.ttl if ttl is None else ttl)


@functools.lru_cache(maxsize=256)
def _rdataset(records: frozenset[MX], ttl: int) -> dns.rdataset.Rdataset:
    import dns.rdata
    import dns.rdataclass
    import dns.rdataset
    import dns.rdatatype

    # Thousands of domains share a few MX sets: build each set's rdatas once (parsing
    # record text is most of an UPDATE's cost). UpdateMessage copies what it is given.
    rds = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.MX)
    for mx in records:
        rds.add(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.MX, str(mx)), ttl)
    return rds


#: From how many names of one zone a read tries a zone transfer.
_TRANSFER_FROM = 64


def _merge(name: str, rrsets: Sequence[dns.rrset.RRset]) -> RRset | None:
    """One MX RRset from the pieces a transfer sent (an RRset may span messages)."""
    if not rrsets:
        return None
    records = frozenset(MX(r.preference, r.exchange.to_text()) for rr in rrsets for r in rr)
    return RRset(name, rrsets[0].ttl, records)


#: Room kept for the TSIG record (names, MAC and fields) and the 12-byte header.
_TSIG_ROOM = 512
_HEADER = 12


def _name_size(name: str) -> int:
    import dns.name

    return len(dns.name.from_text(name).to_digestable())


def _wire_size(change: Change) -> int:
    """The bytes ``change`` adds to an UPDATE (prerequisite and update sections), counted
    without name compression: an upper bound of what dnspython writes."""
    owner = _name_size(change.name) + 10  # owner, type, class, TTL, RDLENGTH
    if change.expected is None:
        size = owner  # "no MX RRset" prerequisite
    else:
        size = sum(owner + 2 + _name_size(mx.host) for mx in change.expected.records)
    size += owner  # delete the MX RRset (replace starts with one too)
    if change.new is not None:
        size += sum(owner + 2 + _name_size(mx.host) for mx in change.new.records)
    return size


def _update_message(zone: str, chunk: Sequence[Change]) -> dns.update.UpdateMessage:
    """One conditional UPDATE for ``chunk``: its prerequisites, then its changes."""
    import dns.rdatatype
    import dns.update

    update = dns.update.UpdateMessage(zone)
    for change in chunk:
        if change.expected is None:
            update.absent(change.name, dns.rdatatype.MX)
        else:
            # Value-dependent prerequisite (RFC 2136 §2.4.2): every record must match;
            # prerequisite records carry TTL 0 or servers answer FORMERR.
            update.present(change.name, _to_rdataset(change.expected, ttl=0))
    for change in chunk:
        if change.new is None:
            update.delete(change.name, dns.rdatatype.MX)
        else:
            update.replace(change.name, _to_rdataset(change.new))
    return update


def _from_rrset(name: str, rrset: dns.rrset.RRset) -> RRset:
    return RRset(
        name,
        rrset.ttl,
        frozenset(MX(r.preference, r.exchange.to_text()) for r in rrset),
    )


class RFC2136Provider(Provider):
    """Reads MX RRsets by querying the primary server (many names at once); writes them
    with TSIG-signed UPDATEs whose prerequisites make each conditional and atomic: one per
    zone, or, when the changes do not fit in one DNS message, as few as fit (each chunk
    carries the prerequisites of its own names)."""

    Settings = RFC2136Settings

    def __init__(
        self,
        name: str,
        client: RFC2136Client,
        *,
        clock: Clock | None = None,
        max_update_bytes: int = 65535,
        zone_transfer: bool = True,
    ) -> None:
        super().__init__(name)
        self._client = client
        self._clock = clock or SystemClock()
        self.max_update_bytes = max_update_bytes
        self.zone_transfer = zone_transfer
        #: Zones whose transfer failed once: not tried again by this provider.
        self._no_transfer: set[str] = set()

    @classmethod
    def from_settings(cls, name: str, settings: ProviderSettings) -> RFC2136Provider:
        from mxflip_rfc2136._client import RFC2136Client

        assert isinstance(settings, RFC2136Settings)
        try:
            key = settings.key()
        except KeyFileError as exc:
            raise ProviderError(str(exc)) from None
        server = parse_hostport(settings.server, 53)
        return cls(
            name,
            RFC2136Client(server, key, timeout=settings.timeout),
            max_update_bytes=settings.max_update_bytes,
            zone_transfer=settings.zone_transfer,
        )

    def read(self, zone: str, names: Sequence[str]) -> dict[str, RRset | None]:
        import dns.name
        import dns.rdatatype

        # RFC 2136 has no batch read short of a zone transfer: many names are read with one
        # AXFR where the server allows it (one stream instead of N messages); otherwise one
        # query per name, all of them in flight at once within the DNS client's limits.
        if self.zone_transfer and len(names) >= _TRANSFER_FROM and zone not in self._no_transfer:
            transferred = self._client.transfer_mx(zone)
            if transferred is not None:
                return {n: _merge(n, transferred.get(dns.name.from_text(n), ())) for n in names}
            self._no_transfer.add(zone)
        responses = self._client.query_many(list(dict.fromkeys(names)), "MX")
        result: dict[str, RRset | None] = {}
        for name in names:
            owner = dns.name.from_text(name)
            found: RRset | None = None
            for rrset in responses[name].answer:
                if rrset.rdtype == dns.rdatatype.MX and rrset.name == owner:
                    found = _from_rrset(name, rrset)
            result[name] = found
        return result

    def write_parts(self, zone: str, changes: Sequence[Change]) -> int:
        return len(self._chunks(zone, [c for c in changes if not c.is_noop]))

    def _chunks(self, zone: str, pending: Sequence[Change]) -> list[list[Change]]:
        """``pending`` in order, cut where the next change would make the UPDATE larger
        than ``max_update_bytes``. Sizes are counted without name compression, so the
        real message is never larger than counted."""
        budget = self.max_update_bytes - _TSIG_ROOM - _HEADER - _name_size(zone) - 4
        chunks: list[list[Change]] = []
        current: list[Change] = []
        used = 0
        for change in pending:
            size = _wire_size(change)
            if size > budget:
                raise ProviderError(
                    f"the change of {change.name} alone needs {size} bytes, more than one "
                    f"UPDATE of at most {self.max_update_bytes} bytes can hold; nothing was sent",
                    hint="raise the provider's max_update_bytes (at most 65535)",
                )
            if current and used + size > budget:
                chunks.append(current)
                current, used = [], 0
            current.append(change)
            used += size
        if current:
            chunks.append(current)
        return chunks

    def apply(self, zone: str, changes: Sequence[Change]) -> ChangeHandle:
        pending = [c for c in changes if not c.is_noop]
        handle = ChangeHandle(provider=self.name, zone=zone, changes=tuple(changes))
        if not pending:
            return handle
        chunks = self._chunks(zone, pending)
        for number, chunk in enumerate(chunks, start=1):
            try:
                self._send(zone, chunk)
            except StaleExpectationError as exc:
                if len(chunks) == 1:
                    # A retried UPDATE whose first attempt did land fails its prerequisites;
                    # the core's apply_changes() recognises that case by reading.
                    raise
                live = self.read(zone, [c.name for c in chunk])
                if all(live[c.name] == c.new for c in chunk):
                    continue  # this part had landed (a retried UPDATE): it is done
                raise StaleExpectationError(
                    f"{exc.message}; the zone is switched in {len(chunks)} atomic parts and "
                    + (
                        f"parts 1 to {number - 1} had been applied"
                        if number > 1
                        else "none had been applied"
                    ),
                    hint="'mxflip status' shows the zone as it is; 'mxflip resume' or "
                    "'mxflip rollback' settles a partly applied operation",
                ) from None
            except ProviderError as exc:
                if number == 1:
                    raise
                raise type(exc)(
                    f"{exc.message} (part {number} of {len(chunks)}; parts 1 to {number - 1} "
                    "had been applied)",
                    hint=exc.hint,
                ) from None
        return ChangeHandle(
            provider=self.name,
            zone=zone,
            changes=tuple(changes),
            detail={"parts": len(chunks)},
        )

    def _send(self, zone: str, chunk: Sequence[Change]) -> None:
        self._client.update(zone, _update_message(zone, chunk))

    def wait(self, handle: ChangeHandle, timeout: float) -> None:
        """Nothing to wait for: the primary serves an UPDATE once it acknowledges it with
        NOERROR (and the UPDATE was conditional). Reading every name back cost one query
        per name, and verification asks the nameservers for the same names anyway."""
        return None

    # ------------------------------------------------------------------ onboarding
    # (mxflip_rfc2136._onboard, loaded when used; RFC 2136 has no way to list a server's
    # zones, so list_zones keeps the default: name the zones with --zone.)

    def list_mx(self, zone: str) -> ZoneMX:
        """Every MX RRset of the zone by zone transfer, when the server allows it."""
        from mxflip_rfc2136 import _onboard

        return _onboard.transfer_mx(self._client, zone)

    def check_access(self, zone: str) -> list[AccessCheck]:
        """A signed read, the TSIG clock skew against the provider's clock, and a no-op
        UPDATE (see ``_onboard``)."""
        from mxflip_rfc2136 import _onboard

        return _onboard.check_access(self._client, zone, self._clock.now)

    def nameservers(self, zone: str) -> list[str]:
        """The zone's NS names as the primary serves them (port 53)."""
        import dns.rdatatype

        response = self._client.query(zone, "NS")
        names = sorted(
            r.target.to_text().rstrip(".")
            for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.NS
            for r in rrset
        )
        if not names:
            raise ProviderError(f"{self._client.server} serves no NS records for zone {zone}")
        return names
