"""From canary records to path verdicts: is the primary path delivering, is the backup
path, and which live host is the odd one out.

The live-path canary goes through one live MX host at a time (or each of them), so a
verdict per host is known: every host failing is the path failing; some failing while
others deliver is "one bad server in rotation" (a drain, not a failover).

These verdicts are observations fed to the state machine (:mod:`mxflip.watch.machine`),
not findings: nothing here blocks or warns about an operation (that is
:class:`mxflip.plan.Finding`, raised by the engine's policy checks when a switch is planned).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mxflip.canary.state import CanaryRecord

_VERDICT = {"on_time": "ok", "late": "late", "missing": "failing", "send_failed": "failing"}
#: Group of a canary sent through a profile (preference order), not through one host.
ANY_HOST = "*"


@dataclass(frozen=True)
class PathVerdicts:
    primary: str | None
    backup: str | None
    failing_hosts: tuple[str, ...]
    #: Newest decisive delay per path, for the chart: path → (sent_at, delay or None, status).
    latest: Mapping[str, tuple[float, float | None, str]]


def latest_decisive(records: Iterable[CanaryRecord]) -> CanaryRecord | None:
    """The most recently sent canary with a result (pending ones say nothing yet)."""
    decided = [r for r in records if r.status in _VERDICT]
    return max(decided, key=lambda r: r.sent_at) if decided else None


def group_verdict(records: Iterable[CanaryRecord]) -> str | None:
    """``failing`` when a canary sent after the last on-time one is missing (newer ones
    being merely late, or pending, does not hide it); ``late`` when one is late; else
    ``ok``; None without any result."""
    decided = sorted((r for r in records if r.status in _VERDICT), key=lambda r: r.sent_at)
    if not decided:
        return None
    last_ok = max((i for i, r in enumerate(decided) if r.status == "on_time"), default=-1)
    after = [_VERDICT[r.status] for r in decided[last_ok + 1 :]]
    if "failing" in after:
        return "failing"
    return "late" if after else "ok"


def path_verdicts(
    records: Iterable[CanaryRecord], tokens: Mapping[str, str], live_hosts: Iterable[str]
) -> PathVerdicts:
    """Verdicts for one domain's canaries. ``tokens`` maps a token to the host it was
    sent through; ``live_hosts`` are the hosts published now (others are history)."""
    mine = list(records)
    primary = [r for r in mine if r.path in ("primary", "live")]
    backup = [r for r in mine if r.path == "backup"]
    live = {h.rstrip(".").lower() for h in live_hosts}
    by_host: dict[str, list[CanaryRecord]] = {}
    for r in primary:
        by_host.setdefault(tokens.get(r.token, ANY_HOST), []).append(r)
    host_verdicts: dict[str, str] = {}
    for host, rs in by_host.items():
        verdict = group_verdict(rs)
        if verdict is not None and (host == ANY_HOST or host in live):
            host_verdicts[host] = verdict
    # The path as a whole, in send order across hosts: a canary missing with no on-time
    # one sent after it (through any host) is the path failing, detected as soon as the
    # first host's canary is missing, not once every host has had its turn.
    relevant = [r for host, rs in by_host.items() if host == ANY_HOST or host in live for r in rs]
    primary_verdict = group_verdict(relevant)
    failing_hosts: tuple[str, ...] = ()
    per_host = {h: v for h, v in host_verdicts.items() if h != ANY_HOST}
    if primary_verdict != "failing" and "ok" in per_host.values():
        failing_hosts = tuple(sorted(h for h, v in per_host.items() if v == "failing"))
    latest: dict[str, tuple[float, float | None, str]] = {}
    for path, rs in (("primary", primary), ("backup", backup)):
        last = latest_decisive(rs)
        if last is not None:
            latest[path] = (last.sent_at, last.delay if last.arrived_at else None, last.status)
    return PathVerdicts(
        primary_verdict,
        group_verdict(backup),
        failing_hosts,
        latest,
    )
