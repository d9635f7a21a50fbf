"""Delivery canaries: send a uniquely tagged message through the live MX path, find it in
the destination mailbox, and say how long the path took.

MX and SMTP checks see only whether a proxy *accepts* mail; a canary sees whether the mail
*arrives*, and when. The pieces, one module each: ``send`` (:func:`build_message` puts a
token in a header and the subject; :func:`send_canaries` submits over SMTP in threads,
STARTTLS when offered, one attempt per host), ``mailbox`` (:class:`MaildirMailbox` and
:class:`ImapMailbox` find and remove canaries), ``state`` (:class:`CanaryStore`: what was
sent, when, and the last result per domain and path, as JSON beside the operations
journal). This module judges: :func:`check_canaries` (delay per canary against
``warn_after``/``fail_after``), :func:`run_canaries` (send, bounded wait, check) and
:func:`canary_status` (what ``mxflip status`` shows). Nothing here prints; results are
plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from mxflip import loop
from mxflip.canary._base import (
    FAILING,
    PATH_HEADER,
    SENT_HEADER,
    STATUSES,
    SYSTEM_CLOCK,
    TOKEN_HEADER,
    VIA_CHOICES,
    CanaryError,
    require_canary,
    status_by_age,
)
from mxflip.canary.mailbox import (
    FoundCanary,
    ImapMailbox,
    Mailbox,
    MaildirMailbox,
    open_mailbox,
)
from mxflip.canary.send import (
    LiveReader,
    SendAttempt,
    SendResult,
    build_message,
    canary_domains,
    new_token,
    send_canaries,
    send_one,
)
from mxflip.canary.state import (
    CanaryRecord,
    CanaryState,
    CanaryStore,
    PathSummary,
    _by_sent,
    canary_store,
    default_state_dir,
    state_file,
)
from mxflip.clock import Clock
from mxflip.config import CanaryConfig, Config, DomainConfig
from mxflip.errors import ExitCode

__all__ = [
    "FAILING",
    "PATH_HEADER",
    "SENT_HEADER",
    "STATUSES",
    "SYSTEM_CLOCK",
    "TOKEN_HEADER",
    "VIA_CHOICES",
    "CanaryError",
    "CanaryOutcome",
    "CanaryRecord",
    "CanaryState",
    "CanaryStatus",
    "CanaryStore",
    "CheckReport",
    "Clock",
    "FoundCanary",
    "ImapMailbox",
    "LiveReader",
    "Mailbox",
    "MaildirMailbox",
    "PathSummary",
    "SendAttempt",
    "SendResult",
    "WaitProgress",
    "build_message",
    "canary_domains",
    "canary_status",
    "canary_store",
    "check_canaries",
    "default_state_dir",
    "new_token",
    "open_mailbox",
    "require_canary",
    "run_canaries",
    "send_canaries",
    "send_one",
    "state_file",
    "status_by_age",
    "wait_for",
]


# ----------------------------------------------------------------------- checking


@dataclass(frozen=True)
class CanaryOutcome:
    """One canary's result in a check."""

    domain: str
    path: str
    token: str
    status: str
    address: str
    sent_at: float
    arrived_at: float | None
    #: Seconds from sending to arrival; for a canary not found yet, its age.
    delay: float
    host: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class CheckReport:
    """The result of ``mxflip canary check`` (or of the check in ``run``)."""

    checked_at: float
    warn_after: float
    fail_after: float
    outcomes: tuple[CanaryOutcome, ...]
    deleted: int = 0
    sent: tuple[SendResult, ...] = ()

    @property
    def exit_code(self) -> ExitCode:
        """0 on time (or still within warn_after), 1 late, 3 missing or not sent."""
        statuses = {o.status for o in self.outcomes}
        if statuses & {"missing", "send_failed"}:
            return ExitCode.FAILURE
        if "late" in statuses:
            return ExitCode.ATTENTION
        return ExitCode.OK


def check_canaries(
    config: Config,
    *,
    mailbox: Mailbox | None = None,
    domains: Sequence[str] = (),
    delete: bool | None = None,
    clock: Clock = SYSTEM_CLOCK,
    only: Sequence[str] = (),
) -> CheckReport:
    """Look for every outstanding canary (of ``domains``, default all; of the tokens in
    ``only`` when given), record each result, remove the ones found.

    A canary found counts from its send time to its arrival in the mailbox; one not found
    counts by its age: pending before ``warn_after``, late before ``fail_after``, missing
    after. A missing canary stays watched for twice the retry window in case it turns up
    late; after that it is given up on (kept in the bounded history, no longer looked for).
    """
    canary = require_canary(config)
    delete = canary.delete_after_check if delete is None else delete
    wanted = {d.rstrip(".").lower() for d in domains}
    own_box = mailbox is None
    box = mailbox or open_mailbox(config)
    store = canary_store(config)
    try:
        with store.update() as state:
            now = clock.now()
            for r in state.records:
                if r.outstanding and now - r.sent_at >= 2 * canary.retry_window:
                    # Every sender has given up on it by now: so do we (the record moves
                    # to the bounded history instead of being kept forever).
                    r.given_up_at = now
            watch = [
                r
                for r in state.records
                if r.outstanding
                and (not wanted or r.domain in wanted)
                and (not only or r.token in only)
            ]
            if not watch:
                return CheckReport(now, canary.warn_after, canary.fail_after, ())
            found = {f.token: f for f in box.find()}
            now = clock.now()
            outcomes = []
            arrived: list[FoundCanary] = []
            for r in sorted(watch, key=_by_sent):
                f = found.get(r.token)
                if f is not None:
                    arrived.append(f)
                    r.arrived_at = f.arrived_at
                    # Clocks differ between this host and the mailbox: never below zero.
                    r.delay = max(0.0, f.arrived_at - r.sent_at)
                    status = status_by_age(r.delay, True, canary.warn_after, canary.fail_after)
                else:
                    status = status_by_age(
                        now - r.sent_at, False, canary.warn_after, canary.fail_after
                    )
                if r.status == "missing" and status == "missing":
                    # Reported once already; watched quietly in case it turns up late,
                    # so that a recovered path is not reported as failing for days.
                    continue
                r.status = status
                r.checked_at = now
                state.record_result(r, status, now)
                outcomes.append(
                    CanaryOutcome(
                        domain=r.domain,
                        path=r.path,
                        token=r.token,
                        status=status,
                        address=r.address,
                        sent_at=r.sent_at,
                        arrived_at=r.arrived_at,
                        delay=r.delay if r.delay is not None else now - r.sent_at,
                        host=r.host,
                    )
                )
            if delete and arrived:
                box.delete(arrived)
            return CheckReport(
                now,
                canary.warn_after,
                canary.fail_after,
                tuple(outcomes),
                deleted=len(arrived) if delete else 0,
            )
    finally:
        if own_box:
            box.close()


# ----------------------------------------------------------------------- run


@dataclass(frozen=True)
class WaitProgress:
    """Reported while ``run`` waits: how many of the canaries have arrived."""

    arrived: int
    total: int
    elapsed: float
    wait: float


def wait_for(
    mailbox: Mailbox,
    tokens: Sequence[str],
    *,
    wait: float,
    poll_interval: float,
    clock: Clock = SYSTEM_CLOCK,
    progress: Callable[[WaitProgress], None] | None = None,
) -> set[str]:
    """Poll the mailbox until every token has arrived or ``wait`` seconds have passed
    (bounded: at most ``wait / poll_interval + 1`` looks). Returns the tokens found."""
    start = clock.now()
    wanted = set(tokens)
    seen: set[str] = set()
    looks = int(wait / poll_interval) + 2
    for _ in range(looks):
        seen = wanted & {f.token for f in mailbox.find()}
        elapsed = clock.now() - start
        if progress:
            progress(WaitProgress(len(seen), len(wanted), elapsed, wait))
        if seen == wanted or elapsed >= wait:
            break
        clock.sleep(min(poll_interval, wait - elapsed))
    return seen


def run_canaries(
    config: Config,
    domains: Sequence[DomainConfig],
    via: str,
    *,
    wait: float | None = None,
    live_reader: LiveReader | None = None,
    mailbox: Mailbox | None = None,
    clock: Clock = SYSTEM_CLOCK,
    progress: Callable[[WaitProgress], None] | None = None,
) -> CheckReport:
    """Send, wait (bounded; default ``fail_after``), check: for cron or CI.

    The check also covers canaries still outstanding from earlier runs of these domains.
    """
    canary = require_canary(config)
    own_box = mailbox is None
    box = mailbox or open_mailbox(config)
    try:
        # Look once before sending: missing credentials or an unreachable mailbox should
        # stop the run before a canary goes out that nobody can look for.
        box.find()
        sent = loop.run(send_canaries(config, domains, via, live_reader=live_reader, clock=clock))
        tokens = [s.token for s in sent if s.ok]
        if tokens:
            wait_for(
                box,
                tokens,
                wait=canary.fail_after if wait is None else wait,
                poll_interval=canary.poll_interval,
                clock=clock,
                progress=progress,
            )
        report = check_canaries(
            config, mailbox=box, domains=[d.display for d in domains], clock=clock
        )
    finally:
        if own_box:
            box.close()
    failed = tuple(
        CanaryOutcome(
            domain=s.domain,
            path=s.path,
            token=s.token,
            status="send_failed",
            address=s.address,
            sent_at=s.sent_at,
            arrived_at=None,
            delay=0.0,
            error=s.error,
        )
        for s in sent
        if not s.ok
    )
    return replace(report, outcomes=failed + report.outcomes, sent=tuple(sent))


# ----------------------------------------------------------------------- status


@dataclass(frozen=True)
class CanaryStatus:
    """The last canary result for one domain and path, as ``mxflip status`` shows it."""

    summary: PathSummary
    #: The primary path has been late or failing for longer than ``fail_after``.
    alert: bool
    failing_since: float | None
    failing_for: float | None
    #: Seconds until typical senders' retry windows run out (negative: already over).
    retry_left: float | None


def canary_status(
    config: Config, domains: Sequence[DomainConfig], *, clock: Clock = SYSTEM_CLOCK
) -> dict[str, list[CanaryStatus]]:
    """Per domain (display name), the last result of each path from the state file.

    Canaries still outstanding count too: one sent to the primary path long ago and never
    found makes the path failing even if nobody ran ``check`` since.
    """
    if config.canary is None:
        return {}
    canary = config.canary
    state = canary_store(config).load()
    now = clock.now()
    names = {d.display for d in domains}
    out: dict[str, list[CanaryStatus]] = {}
    for s in state.paths:
        if s.domain in names:
            out.setdefault(s.domain, []).append(_path_status(s, state, canary, now))
    # Outstanding canaries on a path that has no summary yet.
    for r in state.records:
        if r.domain in names and r.outstanding and state.summary(r.domain, r.path) is None:
            status = status_by_age(now - r.sent_at, False, canary.warn_after, canary.fail_after)
            if status != "pending" and not any(
                c.summary.path == r.path for c in out.get(r.domain, [])
            ):
                summary = PathSummary(
                    r.domain, r.path, status, now, r.sent_at, now - r.sent_at, r.token
                )
                summary.failing_since = r.sent_at
                out.setdefault(r.domain, []).append(_path_status(summary, state, canary, now))
    return out


def _path_status(
    s: PathSummary, state: CanaryState, canary: CanaryConfig, now: float
) -> CanaryStatus:
    failing_since = s.failing_since
    if failing_since is None:
        # An outstanding canary, sent after the last result, older than warn_after.
        late = [
            r.sent_at
            for r in state.records
            if r.domain == s.domain
            and r.path == s.path
            and r.outstanding
            and now - r.sent_at >= canary.warn_after
            and r.sent_at > s.sent_at
        ]
        if late:
            failing_since = min(late)
            age = now - failing_since
            s = replace(
                s,
                status=status_by_age(age, False, canary.warn_after, canary.fail_after),
                delay=age,
            )
    if failing_since is None:
        return CanaryStatus(s, False, None, None, None)
    failing_for = now - failing_since
    alert = s.path == "primary" and failing_for >= canary.fail_after
    left = failing_since + canary.retry_window - now
    return CanaryStatus(s, alert, failing_since, failing_for, left)
