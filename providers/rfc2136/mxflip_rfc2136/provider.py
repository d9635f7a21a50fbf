"""The RFC 2136 provider: thin glue between mxflip's interface and the DNS client."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.update
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
    ZoneMX,
)
from mxflip.hostport import parse_hostport
from mxflip.retry import Sleep
from mxflip_rfc2136 import _onboard
from mxflip_rfc2136._client import DNSClient
from mxflip_rfc2136.keyfile import KeyFileError, TsigKey, read_key_file


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
    rdatas = [
        dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.MX, str(mx)) for mx in rrset.records
    ]
    rds = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.MX)
    for rdata in rdatas:
        rds.add(rdata, rrset.ttl if ttl is None else ttl)
    return rds


def _from_rrset(name: str, rrset: dns.rrset.RRset) -> RRset:
    return RRset(
        name,
        rrset.ttl,
        frozenset(MX(r.preference, r.exchange.to_text()) for r in rrset),
    )


class RFC2136Provider(Provider):
    """Reads MX RRsets by querying the primary server; writes them with one TSIG-signed
    UPDATE per zone whose prerequisites make it conditional and atomic."""

    Settings = RFC2136Settings

    def __init__(
        self,
        name: str,
        client: DNSClient,
        *,
        clock: Any = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        super().__init__(name)
        self._client = client
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def from_settings(cls, name: str, settings: ProviderSettings) -> RFC2136Provider:
        assert isinstance(settings, RFC2136Settings)
        try:
            key = settings.key()
        except KeyFileError as exc:
            raise ProviderError(str(exc)) from None
        server = parse_hostport(settings.server, 53)
        return cls(name, DNSClient(server, key, timeout=settings.timeout))

    def read(self, zone: str, names: Sequence[str]) -> dict[str, RRset | None]:
        # RFC 2136 has no batch read short of a zone transfer, which servers usually refuse;
        # one query per name over one server is cheap on loopback or a LAN.
        result: dict[str, RRset | None] = {}
        for name in names:
            response = self._client.query(name, "MX")
            found: RRset | None = None
            for rrset in response.answer:
                if rrset.rdtype == dns.rdatatype.MX and rrset.name == dns.name.from_text(name):
                    found = _from_rrset(name, rrset)
            result[name] = found
        return result

    def apply(self, zone: str, changes: Sequence[Change]) -> ChangeHandle:
        pending = [c for c in changes if not c.is_noop]
        handle = ChangeHandle(provider=self.name, zone=zone, changes=tuple(changes))
        if not pending:
            return handle
        update = dns.update.UpdateMessage(zone)
        for change in pending:
            if change.expected is None:
                update.absent(change.name, dns.rdatatype.MX)
            else:
                # Value-dependent prerequisite (RFC 2136 §2.4.2): every record must match;
                # prerequisite records carry TTL 0 or servers answer FORMERR.
                update.present(change.name, _to_rdataset(change.expected, ttl=0))
        for change in pending:
            if change.new is None:
                update.delete(change.name, dns.rdatatype.MX)
            else:
                update.replace(change.name, _to_rdataset(change.new))
        # A retried UPDATE whose first attempt did land fails its prerequisites and raises
        # StaleExpectationError; the core's apply_changes() recognises that case by reading.
        self._client.update(zone, update)
        return handle

    def _all_live(self, zone: str, changes: Sequence[Change]) -> bool:
        live = self.read(zone, [c.name for c in changes])
        return all(live[c.name] == c.new for c in changes)

    def wait(self, handle: ChangeHandle, timeout: float) -> None:
        """The primary serves an UPDATE once it acknowledges it; confirm by reading back."""
        pending = [c for c in handle.changes if not c.is_noop]
        if not pending:
            return
        deadline = self._clock() + timeout
        delay = 0.05
        while True:
            if self._all_live(handle.zone, pending):
                return
            if self._clock() >= deadline:
                raise ProviderError(
                    f"{self._client.server} does not serve the change to zone {handle.zone} "
                    f"after {timeout:g} s",
                    hint="another writer may have changed the records; run 'mxflip status'",
                )
            self._sleep(delay)
            delay = min(delay * 2, 2.0)

    # ------------------------------------------------------------------ onboarding
    # (mxflip_rfc2136._onboard; RFC 2136 has no way to list a server's zones, so
    # list_zones keeps the default: name the zones with --zone.)

    #: The wall clock the TSIG skew is measured against (tests set a skewed one).
    wallclock: Any = staticmethod(time.time)

    def list_mx(self, zone: str) -> ZoneMX:
        """Every MX RRset of the zone by zone transfer, when the server allows it."""
        return _onboard.transfer_mx(self._client, zone)

    def check_access(self, zone: str) -> list[AccessCheck]:
        """A signed read, the TSIG clock skew, and a no-op UPDATE (see ``_onboard``)."""
        return _onboard.check_access(self._client, zone, self.wallclock)

    def nameservers(self, zone: str) -> list[str]:
        """The zone's NS names as the primary serves them (port 53)."""
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
