"""Onboarding reads for the RFC 2136 adapter (``mxflip init`` and ``mxflip doctor``).

Kept apart from the UPDATE and read paths of :mod:`mxflip_rfc2136.provider`:

* every MX RRset of a zone by the client's zone transfer (AXFR, TSIG-signed), where the
  server allows it; without it the adapter lists nothing and init reads the named domains
  one by one;
* a harmless check of the key's rights: an UPDATE whose prerequisite holds (the probe
  name ``_mxflip-doctor.<zone>`` is not in use) and whose only update deletes that name's
  MX RRset. RFC 2136 makes deleting an absent RRset a no-op, so nothing changes and the
  serial stays, but the server checks the key's update permission for MX first;
* the TSIG clock skew: the server signs its answer with its own time.
"""

from __future__ import annotations

from collections.abc import Callable

import dns.rdatatype
import dns.update

from mxflip import (
    MX,
    AccessCheck,
    NotSupportedError,
    ProviderAuthError,
    ProviderError,
    RRset,
    ZoneMX,
)
from mxflip_rfc2136._client import RFC2136Client

#: A skew above this many seconds is a warning: dnspython signs with a fudge of 300 s,
#: and clocks that drift this far are on their way there.
SKEW_WARN = 30.0
#: What the server accepts: beyond the fudge it answers BADTIME and refuses every UPDATE.
SKEW_FAIL = 300.0


def transfer_mx(client: RFC2136Client, zone: str) -> ZoneMX:
    """Every MX RRset of ``zone`` by the client's AXFR; NotSupportedError when the server
    will not transfer the zone to this key."""
    transferred = client.transfer_mx(zone)
    if transferred is None:
        # The transfer failed; a signed query tells a dead server or a bad key (raised as
        # they are) from a server that only refuses transfers.
        client.query(zone, "SOA")
        raise NotSupportedError(
            f"{client.server} refuses zone transfers of {zone}",
            hint="allow AXFR for the key (BIND: allow-transfer { key NAME; }; Knot: an ACL "
            "with action: transfer), or name the domains with --domain",
        )
    rrsets = [
        RRset(
            owner.to_text().lower(),
            parts[0].ttl,
            frozenset(MX(r.preference, r.exchange.to_text()) for rr in parts for r in rr),
        )
        for owner, parts in transferred.items()
        if parts
    ]
    return ZoneMX(zone, tuple(sorted(rrsets, key=lambda r: r.name)))


def check_access(client: RFC2136Client, zone: str, now: Callable[[], float]) -> list[AccessCheck]:
    """Read (signed SOA query), clock skew (the answer's TSIG time), change (no-op UPDATE)."""
    try:
        response = client.query(zone, "SOA")
    except ProviderAuthError as exc:
        if "TSIG time" not in exc.message:
            raise
        # BADTIME: the skew is beyond the fudge already; the server says so itself.
        return [AccessCheck(zone, "clock", False, exc.message, hint=exc.hint)]
    if not any(r.rdtype == dns.rdatatype.SOA for r in response.answer):
        raise ProviderError(
            f"{client.server} serves no SOA for {zone}",
            hint="point 'server' at the zone's primary, and check the domain's zone setting",
        )
    checks = [AccessCheck(zone, "read", True, f"{client.server} answers for {zone}")]
    tsig = getattr(response, "tsig", None)
    if tsig:
        skew = float(tsig[0].time_signed) - now()
        shown = f"the clocks of this machine and {client.server} differ by {abs(skew):.0f} s"
        fix = "synchronise both clocks (NTP): TSIG refuses a skew above the fudge (300 s)"
        if abs(skew) >= SKEW_FAIL:
            checks.append(AccessCheck(zone, "clock", False, shown, hint=fix))
        elif abs(skew) >= SKEW_WARN:
            checks.append(AccessCheck(zone, "clock", None, shown, hint=fix))
        else:
            checks.append(AccessCheck(zone, "clock", True, shown))
    update = dns.update.UpdateMessage(zone)
    probe = f"_mxflip-doctor.{zone}"
    update.absent(probe)
    update.delete(probe, dns.rdatatype.MX)
    try:
        client.update(zone, update)
    except ProviderError as exc:
        checks.append(AccessCheck(zone, "change", False, exc.message, hint=exc.hint))
    else:
        checks.append(
            AccessCheck(zone, "change", True, "the key may update MX records (a no-op UPDATE)")
        )
    return checks
