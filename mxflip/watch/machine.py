"""The per-domain state machine: ``ok → suspect → failing → switched → recovering``.

A pure function of the previous state, one round's :class:`Signals`, the time (from the
injected clock) and the ``[watch]`` settings. It returns the next state and what it
wants done (:class:`Want`); it never acts. Hysteresis: one late canary makes a domain
``suspect``; only a primary path that fails while the backup path delivers makes it
``failing``, and only ``failing_rounds`` of those in a row lead to an automatic switch.
Failback is only ever proposed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from mxflip.watch.config import WatchConfig
from mxflip.watch.store import DomainState

STATES = ("ok", "suspect", "failing", "switched", "recovering")


@dataclass(frozen=True)
class Signals:
    """What one round found for one domain (inputs of the machine)."""

    #: The profile the provider serves: primary, backup, mixed, unknown, absent; or
    #: "error" when the provider could not be read.
    live: str
    #: Verdict of the canaries through the primary path (the live path while on
    #: primary; straight to the primary hosts while on backup).
    primary_path: str | None = None
    #: Verdict of the canaries straight to the backup hosts.
    backup_path: str | None = None
    #: Live hosts whose own canaries fail while other live hosts deliver.
    failing_hosts: tuple[str, ...] = ()
    #: The backup set's readiness verdict (None: not checked).
    backup_ready: str | None = None


@dataclass(frozen=True)
class Want:
    """Something the machine wants done. ``mode``: notify (alert with the command),
    propose (store a proposal), auto (switch now)."""

    kind: str  # failover, failback, drain
    target: str
    mode: str
    evidence: str


@dataclass(frozen=True)
class Transition:
    """One domain's move in a round: its new state and what it wants done (not a plan's
    ``Step``, which is a change to one zone)."""

    state: DomainState
    wants: tuple[Want, ...] = field(default=())
    #: Why the state is what it is, for alerts and the page.
    cause: str = ""


def auto_allowed(history: Sequence[float], now: float, settings: WatchConfig) -> bool:
    recent = [t for t in history if now - t < settings.auto_window]
    return len(recent) < settings.max_auto_switches


def advance(
    prev: DomainState,
    sig: Signals,
    now: float,
    settings: WatchConfig,
    *,
    domain: str,
    auto_history: Sequence[float] = (),
) -> Transition:
    """The next state of ``domain`` and what it wants done."""
    s = replace(
        prev,
        conditions=dict(prev.conditions),
        action_conditions=dict(prev.action_conditions),
        tokens=dict(prev.tokens),
    )

    def move(state: str) -> None:
        if s.state != state:
            s.state, s.since = state, now

    wants: list[Want] = []

    if sig.live == "backup":
        if s.state not in ("switched", "recovering"):
            move("switched")
            s.last_switch_at = now
            s.recovered_rounds = 0
        s.failing_rounds = 0
        if sig.primary_path == "ok":
            s.recovered_rounds += 1
            move("recovering")
        elif sig.primary_path in ("late", "failing"):
            s.recovered_rounds = 0
            move("switched")
        cause = f"on the backup set; primary path {sig.primary_path or 'not measured yet'}"
        if s.state == "recovering" and s.recovered_rounds >= settings.recovered_rounds:
            cause = (
                f"primary-path canaries on time for {s.recovered_rounds} rounds; failback proposed"
            )
            if s.last_switch_at is None or now - s.last_switch_at >= settings.cooldown:
                wants.append(Want("failback", domain, "propose", cause))
        return Transition(s, tuple(wants), cause)

    if sig.live != "primary":
        # Mixed, unknown, absent or unreadable: drift is alerted elsewhere; switching on
        # top of a set nobody recognises would only add to the confusion.
        return Transition(s, (), f"live set is {sig.live}")

    if s.state in ("switched", "recovering"):
        move("ok")  # someone failed back
        s.recovered_rounds = 0
    s.recovered_rounds = 0
    cause = ""
    if sig.primary_path == "failing":
        if sig.backup_path == "failing":
            # Both paths fail: the mailbox or the final server is at fault; a switch
            # would not help, so it is never one.
            s.failing_rounds = 0
            move("suspect")
            cause = (
                "canaries fail through the primary AND the backup path: the mailbox or "
                "the final server is at fault, not the proxy (no switch)"
            )
        else:
            s.failing_rounds += 1
            move("failing")
            cause = (
                f"primary-path canaries missing for {s.failing_rounds} round(s); "
                f"backup-path canaries {_backup_words(sig.backup_path)}"
            )
            wants.extend(_failover_wants(s, sig, now, settings, domain, cause, auto_history))
    elif sig.primary_path == "late":
        s.failing_rounds = 0
        if s.state != "failing":
            move("suspect")
        cause = "primary-path canaries are late"
    elif sig.primary_path == "ok":
        s.failing_rounds = 0
        move("ok")
    if sig.failing_hosts and sig.primary_path != "failing":
        for host in sig.failing_hosts:
            wants.append(
                Want(
                    "drain",
                    host,
                    "propose",
                    f"canaries through {host} fail while the other live hosts deliver",
                )
            )
    return Transition(s, tuple(wants), cause)


def _backup_words(verdict: str | None) -> str:
    return {"ok": "arrive", "late": "are late", None: "not measured yet"}.get(verdict, "fail")


def _failover_wants(
    s: DomainState,
    sig: Signals,
    now: float,
    settings: WatchConfig,
    domain: str,
    cause: str,
    auto_history: Sequence[float],
) -> list[Want]:
    policy = settings.on_primary_failing
    if policy == "notify":
        return [Want("failover", domain, "notify", cause)]
    if s.last_switch_at is not None and now - s.last_switch_at < settings.cooldown:
        return [Want("failover", domain, "notify", cause + " (cooldown after the last switch)")]
    if policy == "propose":
        return [Want("failover", domain, "propose", cause)]
    if s.failing_rounds < settings.failing_rounds:
        return []  # the state-change alert has gone out; the next rounds confirm it
    evidence_ok = sig.backup_path == "ok" and sig.backup_ready == "ready"
    if (
        s.failing_rounds >= settings.failing_rounds
        and evidence_ok
        and auto_allowed(auto_history, now, settings)
    ):
        return [Want("failover", domain, "auto", cause)]
    why = (
        "backup not proven (backup-path canaries and readiness)"
        if not evidence_ok
        else f"max_auto_switches ({settings.max_auto_switches}) reached within auto_window"
    )
    return [Want("failover", domain, "propose", f"{cause} (automatic switch held: {why})")]
