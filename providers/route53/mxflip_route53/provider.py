"""The Route53 provider: thin glue between mxflip's interface and the Route53 client.

Calls per zone in a failover: one ``ListResourceRecordSets`` walk to read every domain of
the zone, one ``ChangeResourceRecordSets`` batch to switch them all, and ``GetChange``
until INSYNC. Hosted zones are found with ``ListHostedZonesByName``: the first lookup
lists a page of the account's zones (all of them, for accounts of up to 100 zones) and
remembers it; a zone beyond that page is asked for by name.

Atomicity: Route53 applies a change batch all or nothing. A zone's changes go in one
batch unless Route53's request limits (1,000 records / 32,000 value characters, see
``_batch``) force a split; then each batch is atomic on its own, and a stale
expectation in a later batch leaves the earlier batches applied (the error says so).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mxflip import (
    MX,
    AccessCheck,
    Change,
    ChangeHandle,
    Clock,
    Provider,
    ProviderAuthError,
    ProviderError,
    ProviderSettings,
    RRset,
    Sleep,
    StaleExpectationError,
    SystemClock,
    ZoneMX,
    normalize_name,
)
from mxflip_route53 import _batch
from mxflip_route53._wait import wait_insync
from mxflip_route53.settings import Route53Settings

if TYPE_CHECKING:
    # The client module owns boto3, which loads only when a client is built (or records
    # are read): `mxflip validate` checks settings without it.
    from mxflip_route53._client import HostedZone, Route53Client

_log = logging.getLogger(__name__)


class Route53Provider(Provider):
    """Reads and conditionally replaces MX RRsets in Route53 hosted zones."""

    Settings = Route53Settings

    def __init__(
        self,
        name: str,
        client: Route53Client,
        settings: Route53Settings | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name)
        self._client = client
        self._settings = settings or Route53Settings()
        self._clock = clock or SystemClock()
        self._zones: dict[str, HostedZone] = {}
        #: Hosted zones by name as listings showed them whole; None until the first
        #: lookup. ``_listed_all`` says the first listing held every zone of the account.
        self._listed: dict[str, list[HostedZone]] | None = None
        self._listed_all = False
        #: The values of each MX set exactly as last read, so a DELETE repeats Route53's
        #: own spelling of the expected set.
        self._last_read: dict[tuple[str, str], tuple[int, tuple[str, ...]]] = {}

    @classmethod
    def from_settings(
        cls,
        name: str,
        settings: ProviderSettings,
        *,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
    ) -> Route53Provider:
        """Build from validated settings; credentials come from the AWS chain.

        ``clock`` times and paces the INSYNC wait; retries pause with ``sleep``, or with
        the clock's own ``sleep`` when only a clock is given."""
        from mxflip_route53._client import Route53Client

        assert isinstance(settings, Route53Settings)
        client = Route53Client(
            profile=settings.profile,
            region=settings.region,
            endpoint_url=settings.endpoint_url,
            timeout=settings.timeout,
            attempts=settings.max_attempts,
            backoff_max=settings.backoff_max,
            sleep=sleep or (clock.sleep if clock is not None else None),
        )
        return cls(name, client, settings, clock=clock)

    # ------------------------------------------------------------------ zones

    def hosted_zone(self, zone: str) -> HostedZone:
        """The hosted zone serving ``zone``; refuses when the name is ambiguous."""
        zone = normalize_name(zone)
        if zone in self._zones:
            return self._zones[zone]
        if self._listed is None:
            # One page of the account's zones usually names them all, so the lookup
            # costs one call per provider rather than one per zone.
            self._listed, self._listed_all = self._client.first_zones()
        if zone in self._listed:
            candidates = self._listed[zone]
        elif self._listed_all:
            candidates = []
        else:
            candidates, neighbours = self._client.zones_named(zone)
            self._listed.update(neighbours)
        chosen = self._choose(zone, candidates)
        self._zones[zone] = chosen
        return chosen

    def _choose(self, zone: str, candidates: list[HostedZone]) -> HostedZone:
        shown = zone.rstrip(".")
        pinned, for_this_zone = self._settings.pinned_zone_id(zone)
        if not candidates:
            raise ProviderError(
                f"no Route53 hosted zone named {shown} is visible to these credentials",
                hint="check the zone name and the AWS account or profile in use",
            )
        matching = [c for c in candidates if c.id == pinned]
        if matching:
            return matching[0]
        ids = ", ".join(c.label for c in candidates)
        if for_this_zone:
            raise ProviderError(
                f"hosted_zone_id {pinned} for {shown} is not a zone of that name (found: {ids})",
                hint="correct hosted_zone_id in the provider settings",
            )
        if len(candidates) > 1:
            raise ProviderError(
                f"{len(candidates)} Route53 hosted zones are named {shown}: {ids}",
                hint="set hosted_zone_id in the provider settings to say which one mxflip "
                "may change",
            )
        return candidates[0]

    # ------------------------------------------------------------------ read

    def read(self, zone: str, names: Sequence[str]) -> dict[str, RRset | None]:
        """One ``ListResourceRecordSets`` walk for all ``names``, started at their closest
        common ancestor and stopped as soon as every name is settled."""
        zone = normalize_name(zone)
        wanted = [normalize_name(n) for n in names]
        for name in wanted:
            if name != zone and not name.endswith("." + zone):
                raise ProviderError(f"{name} is not inside zone {zone}")
        if not wanted:
            return {}
        from mxflip_route53._client import wire_name

        hosted = self.hosted_zone(zone)
        pending = set(wanted)
        found: dict[str, list[dict[str, Any]]] = {}
        current: str | None = None
        for record in self._client.record_sets(hosted.id, _common_ancestor(wanted), "MX"):
            name = wire_name(str(record["Name"]))
            if name != current:
                # Route53 lists a name's record sets together: a new name closes the last.
                pending.discard(current or "")
                current = name
                if not pending:
                    break
            if name in pending and record.get("Type") == "MX":
                found.setdefault(name, []).append(record)
                if "SetIdentifier" not in record:
                    pending.discard(name)  # a simple MX set is the only one its name has
                    if not pending:
                        break
        return {name: self._rrset(zone, name, found.get(name)) for name in wanted}

    def _rrset(self, zone: str, name: str, records: list[dict[str, Any]] | None) -> RRset | None:
        if not records:
            self._last_read.pop((zone, name), None)
            return None
        record = records[0]
        if len(records) > 1 or "SetIdentifier" in record or "AliasTarget" in record:
            raise ProviderError(
                f"the MX records of {name.rstrip('.')} use a Route53 routing policy or alias",
                hint="mxflip manages simple MX record sets only; make it a simple record set",
            )
        values = tuple(str(r["Value"]) for r in record.get("ResourceRecords", []))
        try:
            rrset = RRset(name, int(record["TTL"]), frozenset(MX.parse(v) for v in values))
        except ValueError as exc:
            raise ProviderError(
                f"Route53 holds an MX record of {name} that mxflip cannot read: {exc}"
            ) from None
        self._last_read[(zone, name)] = (rrset.ttl, values)
        return rrset

    # ------------------------------------------------------------------ apply

    def apply(self, zone: str, changes: Sequence[Change]) -> ChangeHandle:
        """Every change of the zone in one conditional change batch (split only at
        Route53's limits; each batch is then atomic on its own)."""
        zone = normalize_name(zone)
        pending = [c for c in changes if not c.is_noop]
        if not pending:
            return ChangeHandle(provider=self.name, zone=zone, changes=tuple(changes))
        hosted = self.hosted_zone(zone)
        groups = [_batch.items_for(c, self._live_values(zone, c)) for c in pending]
        batches = _batch.split(groups)
        change_ids: list[str] = []
        for number, batch in enumerate(batches, start=1):
            comment = f"mxflip: {len(batch)} changes" + (
                f" (batch {number} of {len(batches)})" if len(batches) > 1 else ""
            )
            try:
                change_ids.append(
                    self._client.change(hosted.id, [i.to_api() for i in batch], comment)
                )
            except StaleExpectationError as exc:
                if change_ids:
                    raise StaleExpectationError(
                        f"the records changed since the plan was made: Route53 refused batch "
                        f"{number} of {len(batches)} for zone {zone.rstrip('.')}; batches 1 to "
                        f"{number - 1} had been applied ({exc.message})",
                        hint="run 'mxflip status' to see the zone as it is now, then plan again",
                    ) from None
                raise
        for change in pending:
            self._last_read.pop((zone, change.name), None)
        return ChangeHandle(
            provider=self.name,
            zone=zone,
            id=change_ids[-1],
            changes=tuple(changes),
            detail={"hosted_zone_id": hosted.id, "change_ids": tuple(change_ids)},
        )

    def write_parts(self, zone: str, changes: Sequence[Change]) -> int:
        pending = [c for c in changes if not c.is_noop]
        return len(_batch.split([_batch.items_for(c) for c in pending]))

    def _live_values(self, zone: str, change: Change) -> tuple[str, ...] | None:
        seen = self._last_read.get((zone, change.name))
        if seen is None or change.expected is None:
            return None
        ttl, values = seen
        try:
            same = ttl == change.expected.ttl and frozenset(MX.parse(v) for v in values) == (
                change.expected.records
            )
        except ValueError:
            return None
        return values if same else None

    # ------------------------------------------------------------------ wait

    def wait(self, handle: ChangeHandle, timeout: float) -> None:
        """Poll ``GetChange`` until every batch of ``handle`` is INSYNC (bounded by the
        smaller of ``timeout`` and the ``wait_timeout`` setting)."""
        ids = [str(i) for i in handle.detail.get("change_ids", ())]
        if not ids and handle.id:
            ids = [handle.id]
        if not ids:
            return
        wait_insync(
            self._client.change_status,
            ids,
            zone=handle.zone,
            timeout=min(timeout, self._settings.wait_timeout),
            initial=self._settings.poll_initial,
            maximum=self._settings.poll_max,
            clock=self._clock,
        )

    # ------------------------------------------------------------------ onboarding

    def list_zones(self) -> list[str]:
        """The names of every hosted zone the credentials can list."""
        return sorted({z.name for z in self._client.all_zones()})

    def list_mx(self, zone: str) -> ZoneMX:
        """Every simple MX record set of the zone: one ``ListResourceRecordSets`` walk,
        page after page. Sets with a routing policy or an alias are left out (mxflip
        manages simple sets only), with a warning in the log."""
        zone = normalize_name(zone)
        hosted = self.hosted_zone(zone)
        from mxflip_route53._client import wire_name

        by_name: dict[str, list[dict[str, Any]]] = {}
        for record in self._client.record_sets(hosted.id, zone, "MX"):
            if record.get("Type") == "MX":
                by_name.setdefault(wire_name(str(record["Name"])), []).append(record)
        rrsets = []
        for name in sorted(by_name):
            try:
                rrset = self._rrset(zone, name, by_name[name])
            except ProviderError as exc:
                _log.warning("%s: left out: %s", name, exc.message)
                continue
            if rrset is not None:
                rrsets.append(rrset)
        return ZoneMX(zone, tuple(rrsets))

    def check_access(self, zone: str) -> list[AccessCheck]:
        """Read the zone, then send a change batch Route53 must refuse.

        Route53 has no dry run (and IAM's policy simulator needs iam:SimulatePrincipalPolicy
        and ignores SCPs and permission boundaries). Route53 authorises a request before it
        validates the batch, so a batch whose only change DELETEs an MX record set that does
        not exist is refused with AccessDenied when route53:ChangeResourceRecordSets is not
        allowed, and with InvalidChangeBatch (nothing applied, batches are atomic) when it
        is. Limit: a policy that allows only some record names
        (route53:ChangeResourceRecordSetsNormalizedRecordNames) may refuse the probe name
        ``_mxflip-doctor.<zone>`` although it allows your domains.
        """
        zone = normalize_name(zone)
        hosted = self.hosted_zone(zone)
        self.read(zone, [zone])
        checks = [AccessCheck(zone, "read", True, f"hosted zone {hosted.label} can be read")]
        probe = {
            "Action": "DELETE",
            "ResourceRecordSet": {
                "Name": f"_mxflip-doctor.{zone}",
                "Type": "MX",
                "TTL": 300,
                "ResourceRecords": [{"Value": "10 mxflip-doctor.invalid."}],
            },
        }
        try:
            self._client.change(hosted.id, [probe], "mxflip doctor: refused by design")
        except StaleExpectationError:
            checks.append(
                AccessCheck(zone, "change", True, "route53:ChangeResourceRecordSets is allowed")
            )
        except ProviderAuthError as exc:
            checks.append(AccessCheck(zone, "change", False, exc.message, hint=exc.hint))
        else:  # pragma: no cover - Route53 never deletes a record set that does not exist
            checks.append(AccessCheck(zone, "change", True, "the change batch was accepted"))
        return checks

    def nameservers(self, zone: str) -> list[str]:
        """The name servers Route53 assigned to the (public) hosted zone."""
        hosted = self.hosted_zone(zone)
        servers = sorted(ns.rstrip(".").lower() for ns in self._client.delegation(hosted.id))
        if not servers:
            raise ProviderError(
                f"Route53 reports no name servers for {zone.rstrip('.')} ({hosted.label})",
                hint="a private hosted zone has none; set nameservers for its domains",
            )
        return servers


def _common_ancestor(names: Sequence[str]) -> str:
    """The deepest name that is an ancestor of (or equal to) every one of ``names``.

    Route53 sorts by name with the labels reversed, so every name sorts at or after its
    ancestor: a walk started there cannot miss one of them.
    """
    split = [n.rstrip(".").split(".")[::-1] for n in names]
    common: list[str] = []
    for labels in zip(*split, strict=False):
        if any(label != labels[0] for label in labels):
            break
        common.append(labels[0])
    return ".".join(reversed(common)) + "."
