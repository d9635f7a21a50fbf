"""The Cloudflare provider: thin glue between mxflip's interface and the Cloudflare client."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from pydantic import Field, field_validator

from mxflip import (
    MX,
    AccessCheck,
    Change,
    ChangeHandle,
    ConfigError,
    NotSupportedError,
    Provider,
    ProviderAuthError,
    ProviderError,
    ProviderSettings,
    RRset,
    Sleep,
    StaleExpectationError,
    ZoneMX,
)
from mxflip_cloudflare._client import (
    AUTO_TTL_SECONDS,
    MAX_TTL,
    CloudflareClient,
    LiveRecord,
    Zone,
)

DEFAULT_TOKEN_ENV = "CLOUDFLARE_API_TOKEN"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ZONE_ID = re.compile(r"^[0-9a-f]{32}$")
#: A record id no record has: the harmless change check asks to delete it.
_ABSENT_RECORD_ID = "0" * 32


class CloudflareSettings(ProviderSettings):
    """``[providers.NAME]`` keys for ``type = "cloudflare"``.

    The API token itself is never part of the configuration: it is read from the
    environment variable named by ``api_token_env``.
    """

    #: The environment variable that holds the API token.
    api_token_env: str = DEFAULT_TOKEN_ENV
    #: The zone's identifier; skips the lookup by name, so a token with Zone:DNS:Edit
    #: alone works. A provider with a zone_id serves that one zone.
    zone_id: str | None = None
    #: The API's base URL (tests point it at a local fake).
    base_url: str | None = None
    #: The lowest TTL the zone accepts: 60, or 30 on Enterprise zones.
    min_ttl: int = Field(default=60, ge=30, le=MAX_TTL)
    #: Operations (deletes + creates) per batch request: 200 on Free zones, 3,500 on paid
    #: plans. A zone change larger than this is split, and is then atomic per batch only.
    batch_size: int = Field(default=200, ge=2, le=3500)
    #: Records per page when listing a zone's MX records.
    per_page: int = Field(default=1000, ge=5, le=5_000_000)
    #: Seconds to wait for one API answer.
    timeout: float = Field(default=30.0, gt=0, le=300)
    #: Tries per request when Cloudflare throttles (429) or fails (5xx, connection).
    attempts: int = Field(default=4, ge=1, le=10)
    #: The longest single wait between tries, in seconds; a Retry-After longer than this
    #: is reported instead of waited for.
    max_wait: float = Field(default=30.0, gt=0, le=300)

    @field_validator("api_token_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(
                f"{value!r} is not an environment variable name; put the token in the "
                "environment and name the variable here (for example CLOUDFLARE_API_TOKEN)"
            )
        return value

    @field_validator("zone_id")
    @classmethod
    def _zone_id(cls, value: str | None) -> str | None:
        if value is not None and not _ZONE_ID.match(value):
            raise ValueError("a Cloudflare zone id is 32 lower-case hexadecimal characters")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


def _rrsets(records: Sequence[LiveRecord]) -> dict[str, RRset]:
    by_name: dict[str, list[LiveRecord]] = {}
    for record in records:
        by_name.setdefault(record.name, []).append(record)
    # Cloudflare keeps a TTL per record; DNS serves one per RRset (RFC 2181 §5.2), and
    # resolvers use the lowest, so that is the RRset's TTL.
    return {
        name: RRset(name, min(r.ttl for r in recs), frozenset(r.mx for r in recs))
        for name, recs in by_name.items()
    }


class CloudflareProvider(Provider):
    """Reads a zone's MX records with one paginated listing; writes each zone's changes
    with one DNS-records batch request after checking, right before it, that the live
    records are still the ones the plan expected.

    TTL 1 ("automatic") is read as 300 s, which is what Cloudflare serves for it; mxflip
    always writes explicit TTLs.
    """

    Settings = CloudflareSettings

    def __init__(
        self,
        name: str,
        client: CloudflareClient,
        *,
        zone_id: str | None = None,
        min_ttl: int = 60,
        batch_size: int = 200,
    ) -> None:
        super().__init__(name)
        self._client = client
        self._zone_id = zone_id
        self._pinned: dict[str, Zone] = {}
        self.min_ttl = min_ttl
        self.batch_size = batch_size

    @classmethod
    def from_settings(
        cls, name: str, settings: ProviderSettings, *, sleep: Sleep | None = None
    ) -> CloudflareProvider:
        """Build from settings, reading the token from ``api_token_env``; ``sleep`` receives
        retry waits (tests inject it so nothing sleeps)."""
        assert isinstance(settings, CloudflareSettings)
        token = os.environ.get(settings.api_token_env, "").strip()
        if not token:
            raise ProviderAuthError(
                f"provider {name!r}: environment variable {settings.api_token_env} "
                "holds no Cloudflare API token",
                hint=f"export {settings.api_token_env} with a token that has Zone:Zone:Read "
                "and Zone:DNS:Edit (or name another variable with api_token_env)",
            )
        client = CloudflareClient(
            token,
            base_url=settings.base_url,
            timeout=settings.timeout,
            per_page=settings.per_page,
            attempts=settings.attempts,
            max_wait=settings.max_wait,
            sleep=sleep,
        )
        return cls(
            name,
            client,
            zone_id=settings.zone_id,
            min_ttl=settings.min_ttl,
            batch_size=settings.batch_size,
        )

    def _zone(self, zone: str) -> Zone:
        if self._zone_id is None:
            return self._client.zone(zone)
        if zone not in self._pinned:
            # Cloudflare completes a name outside the zone as a relative one, so writing
            # through a zone_id of another zone would create wrong records rather than
            # fail: check the id's zone name when the token may read it (Zone:Zone:Read).
            try:
                self._pinned[zone] = self._client.zone_by_id(self._zone_id, zone)
            except ProviderAuthError:
                self._pinned[zone] = Zone(self._zone_id, zone, ())
        return self._pinned[zone]

    def _live(self, zone: str) -> tuple[Zone, list[LiveRecord]]:
        found = self._zone(zone)
        return found, self._client.list_mx(found.id, zone)

    def read(self, zone: str, names: Sequence[str]) -> dict[str, RRset | None]:
        """One paginated listing of the zone's MX records, whatever the number of names."""
        _, records = self._live(zone)
        rrsets = _rrsets(records)
        return {name: rrsets.get(name) for name in names}

    @classmethod
    def check_ttl(cls, settings: ProviderSettings, ttl: int) -> str | None:
        assert isinstance(settings, CloudflareSettings)
        if settings.min_ttl <= ttl <= MAX_TTL:
            return None
        return (
            f"Cloudflare accepts TTLs of {settings.min_ttl}-{MAX_TTL} s only "
            "(min_ttl = 30 on Enterprise zones)"
        )

    def _check_ttls(self, zone: str, pending: Sequence[Change]) -> None:
        for change in pending:
            if change.new is None:
                continue
            ttl = change.new.ttl
            if ttl < self.min_ttl or ttl > MAX_TTL:
                raise ConfigError(
                    f"TTL {ttl} for {change.name.rstrip('.')} is outside what Cloudflare "
                    f"accepts ({self.min_ttl}-{MAX_TTL} s); nothing was changed",
                    hint=f"use ttl/failover_ttl of at least {self.min_ttl} for domains in zone "
                    f"{zone.rstrip('.')} (Enterprise zones accept 30: set min_ttl = 30 in "
                    f"[providers.{self.name}])",
                )

    def apply(self, zone: str, changes: Sequence[Change]) -> ChangeHandle:
        """Check every expectation against a fresh read, then delete the changed records by
        id and create the new ones in one batch (several only past ``batch_size``)."""
        pending = [c for c in changes if not c.is_noop]
        handle = ChangeHandle(provider=self.name, zone=zone, changes=tuple(changes))
        if not pending:
            return handle
        self._check_ttls(zone, pending)
        found, records = self._live(zone)
        live = _rrsets(records)
        stale = [c.name for c in pending if live.get(c.name) != c.expected]
        if stale:
            shown = ", ".join(n.rstrip(".") for n in stale[:5])
            more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""
            raise StaleExpectationError(
                f"records changed since the plan: the MX records of {shown}{more} differ "
                "from what the plan expected; nothing was changed"
            )
        by_name: dict[str, list[LiveRecord]] = {}
        for record in records:
            by_name.setdefault(record.name, []).append(record)
        groups = [_operations(by_name.get(c.name, []), c.new) for c in pending]
        batches = _pack([g for g in groups if g[0] or g[1]], self.batch_size)
        for i, (deletes, posts) in enumerate(batches):
            try:
                self._client.batch(found.id, zone, deletes, posts)
            except ProviderError as exc:
                if i == 0:
                    raise
                # Past the first batch the zone is half switched: say so, whatever failed.
                done = "batch 1" if i == 1 else f"batches 1-{i}"
                kind = (
                    type(exc)
                    if type(exc) in (StaleExpectationError, ProviderAuthError)
                    else ProviderError
                )
                raise kind(
                    f"{exc.message}; {done} of {len(batches)} for zone {zone.rstrip('.')} "
                    "had been applied, the rest were not",
                    hint="run 'mxflip status' and plan again against the current records",
                ) from exc
        return ChangeHandle(
            provider=self.name,
            zone=zone,
            changes=tuple(changes),
            detail={"zone_id": found.id, "batches": len(batches)},
        )

    # ------------------------------------------------------------------ onboarding

    def list_zones(self) -> list[str]:
        """The zones the token can read (with ``zone_id`` set: that one zone)."""
        if self._zone_id is not None:
            raise NotSupportedError(
                f"provider {self.name!r} is pinned to one zone by zone_id",
                hint="name that zone with --zone",
            )
        return sorted({z.name for z in self._client.all_zones()})

    def list_mx(self, zone: str) -> ZoneMX:
        """Every MX RRset of the zone: one paginated listing (``type=MX``)."""
        _, records = self._live(zone)
        rrsets = _rrsets(records)
        return ZoneMX(zone, tuple(rrsets[name] for name in sorted(rrsets)))

    def check_access(self, zone: str) -> list[AccessCheck]:
        """Token status, then a read, then a change Cloudflare must refuse.

        Cloudflare has no dry run and a token cannot read its own permissions without
        "API Tokens Read". So the right to change is checked with a batch whose only
        operation deletes a record id that does not exist: Cloudflare checks the token's
        Zone:DNS:Edit first (refused: 403, code 10000) and then refuses the batch whole
        (code 81044), so nothing can change. Limit: it proves DNS:Edit on the zone, not on
        particular names (Cloudflare tokens have no per-name scope).
        """
        checks = []
        status = self._client.verify_token()
        if status != "active":
            return [
                AccessCheck(
                    zone,
                    "token",
                    False,
                    f"Cloudflare says the API token is {status}",
                    hint="create a new token with Zone:Zone:Read and Zone:DNS:Edit",
                )
            ]
        found, records = self._live(zone)
        checks.append(
            AccessCheck(zone, "read", True, f"{len(records)} MX records listed (zone {found.id})")
        )
        try:
            self._client.batch(found.id, zone, [_ABSENT_RECORD_ID], [])
        except StaleExpectationError:
            checks.append(
                AccessCheck(zone, "change", True, "the token may edit DNS records (Zone:DNS:Edit)")
            )
        except ProviderAuthError as exc:
            checks.append(AccessCheck(zone, "change", False, exc.message, hint=exc.hint))
        else:  # pragma: no cover - Cloudflare never deletes a record that does not exist
            checks.append(AccessCheck(zone, "change", True, "the token may edit DNS records"))
        return checks

    def nameservers(self, zone: str) -> list[str]:
        """The nameservers Cloudflare assigned to the zone (its ``name_servers``)."""
        if self._zone_id is not None:
            found = self._client.zone_by_id(self._zone_id, zone)
        else:
            found = self._client.zone(zone)
        return sorted(ns.rstrip(".").lower() for ns in found.name_servers)

    def close(self) -> None:
        self._client.close()


def _operations(
    live: Sequence[LiveRecord], new: RRset | None
) -> tuple[list[str], list[LiveRecord]]:
    """Record ids to delete and records to create to turn ``live`` into ``new``.

    Records that stay exactly as they are (value and TTL) are left alone: Cloudflare
    propagates each record separately, so rewriting an unchanged record could make it
    briefly vanish at some edges.
    """
    wanted: set[MX] = set(new.records) if new is not None else set()
    ttl = new.ttl if new is not None else AUTO_TTL_SECONDS
    keep: set[MX] = set()
    deletes: list[str] = []
    for record in live:
        if record.mx in wanted and record.ttl == ttl and record.mx not in keep:
            keep.add(record.mx)
        else:
            deletes.append(record.id)
    name = new.name if new is not None else ""
    posts = [LiveRecord("", name, mx, ttl) for mx in sorted(wanted - keep)]
    return deletes, posts


def _pack(
    groups: Sequence[tuple[list[str], list[LiveRecord]]], size: int
) -> list[tuple[list[str], list[LiveRecord]]]:
    """Pack each name's operations into batches of at most ``size`` operations, keeping a
    name's deletes and creates in one batch whenever they fit in one."""
    batches: list[tuple[list[str], list[LiveRecord]]] = []
    deletes: list[str] = []
    posts: list[LiveRecord] = []
    for group_deletes, group_posts in groups:
        ops = len(group_deletes) + len(group_posts)
        if (deletes or posts) and len(deletes) + len(posts) + ops > size:
            batches.append((deletes, posts))
            deletes, posts = [], []
        if ops > size:
            # One name with more records than a batch holds: split it, deletes first.
            flat: list[str | LiveRecord] = [*group_deletes, *group_posts]
            for start in range(0, len(flat), size):
                chunk = flat[start : start + size]
                batches.append(
                    (
                        [op for op in chunk if isinstance(op, str)],
                        [op for op in chunk if isinstance(op, LiveRecord)],
                    )
                )
            continue
        deletes.extend(group_deletes)
        posts.extend(group_posts)
    if deletes or posts:
        batches.append((deletes, posts))
    return batches
