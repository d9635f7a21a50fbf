"""The watcher: rounds of observation, the state machine, decisions and alerts.

One round, for every watched domain at once (each phase is concurrent across domains):
DNS (provider and every verification nameserver), readiness of the backup and the live
set, canary results, the state machine, actions (alert, proposal, or a failover through
the engine under the journal lock), then new canaries (through one live host in turn and
straight to the backup hosts), alerts, state saved, heartbeat. A stop request (SIGTERM,
SIGINT) is honoured between phases, never inside an operation; a reload request (SIGHUP)
at the start of the next round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from mxflip import loop
from mxflip.clock import Clock, SystemClock
from mxflip.config import Config, DomainConfig
from mxflip.errors import ExitCode, MxflipError
from mxflip.journal import JournalView, default_journal_path
from mxflip.observe import DomainStatus, Observer
from mxflip.records import MX, RRset
from mxflip.state import JournalStore, StateBackend, open_state
from mxflip.state.lease import Leader, Renewer
from mxflip.watch.actions import Actions, Outcome, open_proposals
from mxflip.watch.alerts import Alert, Delivery, Notifier, heartbeat, track
from mxflip.watch.config import WatchConfig
from mxflip.watch.machine import Signals, Want, advance
from mxflip.watch.signals import ANY_HOST, PathVerdicts, path_verdicts
from mxflip.watch.store import (
    DomainState,
    Proposal,
    WatchState,
    WatchStateConflict,
    WatchStore,
    open_store,
)

log = logging.getLogger("mxflip.watch")
#: Pseudo-domain for conditions that concern the watcher itself.
WATCHER = "(watcher)"


@dataclass(frozen=True)
class DomainReport:
    """What one round found and decided for one domain."""

    domain: str
    state: str
    since: float
    cause: str
    live: str
    records: tuple[str, ...] | None
    ttl: int | None
    consistent: bool
    unreachable: bool
    nameservers: tuple[tuple[str, str, str | None], ...]  # (server, active, error)
    backup_ready: str | None = None
    backup_reasons: tuple[str, ...] = ()
    live_ready: str | None = None
    primary_path: str | None = None
    backup_path: str | None = None
    failing_hosts: tuple[str, ...] = ()
    conditions: tuple[tuple[str, str, str], ...] = ()  # (key, severity, message)
    command: str | None = None
    actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoundReport:
    """One round's result; ``exit_code`` follows ``status`` (0 ok, 1 attention, 3 failure)."""

    started: float
    finished: float
    domains: tuple[DomainReport, ...]
    proposals: tuple[Proposal, ...] = ()
    watcher: tuple[tuple[str, str, str], ...] = ()
    overrun: bool = False
    failed_actions: tuple[str, ...] = ()
    interrupted: bool = False
    #: ``leader`` (this watcher acts) or ``follower`` (another watcher leads; this one
    #: only reports what the leader stored, and takes over when its lease expires).
    role: str = "leader"
    #: Who leads, as the lease says ("pid 12, ops@host, 'mxflip watch', since …").
    leader: str | None = None

    @property
    def exit_code(self) -> ExitCode:
        if self.failed_actions or any(d.unreachable for d in self.domains):
            return ExitCode.FAILURE
        if (
            any(d.state != "ok" or d.conditions for d in self.domains)
            or self.watcher
            or self.proposals
        ):
            return ExitCode.ATTENTION
        return ExitCode.OK


@dataclass
class Hooks:
    """What the watcher reports to ``/metrics`` and the page (all optional)."""

    on_round: Callable[[RoundReport, WatchState], None] = lambda r, s: None
    on_delivery: Callable[[Delivery], None] = lambda d: None
    on_heartbeat: Callable[[str | None], None] = lambda e: None


class Watcher:
    """Runs rounds for ``names`` (default: every configured domain)."""

    def __init__(
        self,
        config: Config,
        names: Sequence[str] = (),
        *,
        clock: Clock | None = None,
        load_config: Callable[[], Config] | None = None,
        store: WatchStore | None = None,
        notifier_factory: Callable[[WatchConfig], Notifier] | None = None,
        hooks: Hooks | None = None,
        dns_timeout: float = 3.0,
        verify_timeout: float = 120.0,
    ) -> None:
        self.clock = clock or SystemClock()
        self.names = tuple(names)
        self._load_config = load_config
        self._store_override = store
        self.hooks = hooks or Hooks()
        self.dns_timeout = dns_timeout
        self.verify_timeout = verify_timeout
        self._notifier_factory = notifier_factory or (
            lambda w: Notifier(w.notify_urls(), timeout=w.timeout, on_result=self.hooks.on_delivery)
        )
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mxflip-heartbeat")
        self.last: RoundReport | None = None
        self.notifier: Notifier | None = None
        self.leader: Leader | None = None
        self._renewer: Renewer | None = None
        self._elected_at = 0.0
        self._apply(config)

    # ---------------------------------------------------------------- lifecycle

    def _apply(self, config: Config) -> None:
        self.config = config
        self.settings = config.watch or WatchConfig()
        self.domains = config.select(self.names)
        if getattr(self, "journal", None) is not None:
            self._resign()
            self.journal.close()
        # The configured state backend: a shared journal and lock ([state] backend = "s3")
        # make an automatic switch wait for a person's operation anywhere, and vice versa.
        self.journal: StateBackend = open_state(config, clock=self.clock)
        self.store = self._store_override or open_store(
            self.settings.state_file, default_journal_path(config.journal.path), self.journal
        )
        # Of several watchers sharing the state, one leads (acts: alerts, proposals,
        # switches); the others observe and take over when its lease expires.
        self.leader = Leader(self.journal, duration=config.state.lease, clock=self.clock)
        if self.notifier is not None:
            self.notifier.close()
        self.notifier = self._notifier_factory(self.settings)

    def close(self) -> None:
        self._resign()
        self.journal.close()
        if self.notifier is not None:
            self.notifier.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------------- leadership

    def elect(self) -> bool:
        """Renew the leader lease or try to take it; True while this watcher leads. A
        leader renews in a thread too, so that a round longer than the lease keeps it."""
        assert self.leader is not None
        was = self.leader.is_leader
        leading = self.leader.step()
        self._elected_at = self.clock.now()
        if leading and (self._renewer is None or self._renewer.lost):
            if self._renewer is not None:
                self._renewer.stop()
            self._renewer = Renewer(self.leader.lease).start()
        elif not leading and self._renewer is not None:
            self._renewer.stop()
            self._renewer = None
        if leading and not was:
            log.info("leading: this watcher acts (alerts, proposals, switches)")
        elif was and not leading:
            log.warning("no longer the leader: another watcher took over the lease")
        return leading

    def _resign(self) -> None:
        if self._renewer is not None:
            self._renewer.stop()
            self._renewer = None
        if self.leader is not None and self.leader.lease.held:
            try:
                self.leader.resign()
            except MxflipError as exc:
                log.warning("could not hand the leader lease back: %s", exc)

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _reload_now(self) -> list[Alert]:
        self._reload.clear()
        if self._load_config is None:
            return []
        try:
            new = self._load_config()
            new.select(self.names)
            if new.watch is not None:
                from mxflip.watch.config import check_env_urls

                check_env_urls(new.watch)
        except MxflipError as exc:
            log.error("configuration reload failed, keeping the running one: %s", exc)
            return [
                Alert(
                    "mxflip: configuration reload failed; the running configuration stays",
                    str(exc),
                    "failure",
                )
            ]
        log.info("configuration reloaded")
        self._apply(new)
        return [Alert("mxflip: configuration reloaded", "the new configuration is in use", "info")]

    # ---------------------------------------------------------------- the loop

    def run(self, *, once: bool = False, max_rounds: int | None = None) -> RoundReport | None:
        """Rounds every ``interval`` until stopped (``once``: one round). A round that
        overruns its interval is reported and the next starts at once: never two at a
        time, never a backlog."""
        rounds = 0
        while not self._stop.is_set():
            started = self.clock.now()
            if once:
                self.last = self.round()
            else:
                self._guarded_round()
            rounds += 1
            if once or (max_rounds is not None and rounds >= max_rounds):
                break
            elapsed = self.clock.now() - started
            self._sleep(max(0.0, self.settings.interval - elapsed))
        return self.last

    def _guarded_round(self) -> None:
        """A long-running watcher survives a failed round (a state file it cannot write, a
        bug): logged, alerted, and the next round tries again."""
        try:
            self.last = self.round()
        except Exception as exc:
            log.exception("round failed")
            assert self.notifier is not None
            self.notifier.send([Alert("mxflip: watcher round failed", str(exc), "failure")])

    def _sleep(self, seconds: float) -> None:
        """Wait, waking early on a stop or reload request (bounded steps)."""
        end = self.clock.now() + seconds
        steps = int(seconds / min(1.0, self.config.state.lease / 3)) + 2
        for _ in range(steps):
            left = end - self.clock.now()
            if left <= 0 or self._stop.is_set() or self._reload.is_set():
                return
            # A follower looks at the lease every third of it (take-over within about
            # one lease after the leader's expires), however long the interval.
            if self.clock.now() - self._elected_at >= self.config.state.lease / 3:
                self.elect()
            self.clock.sleep(min(1.0, left, self.config.state.lease / 3))

    # ---------------------------------------------------------------- one round

    def round(self) -> RoundReport:
        extra: list[Alert] = []
        if self._reload.is_set():
            extra += self._reload_now()
        if not self.elect():
            return self._follow(extra)
        now = self.clock.now()
        settings = self.settings
        try:
            return self._lead(now, settings, extra)
        except WatchStateConflict:
            # ``approve`` (or a watcher that took over while this round ran) saved the
            # shared state meanwhile: the round is lost, theirs is kept; the next round
            # starts from what they wrote.
            log.warning("the shared watch state changed during the round; it runs again next")
            raise

    def _follow(self, extra: list[Alert]) -> RoundReport:
        """A follower's round: no checks, no alerts, no actions; it reports who leads and
        the domains and proposals as the leader stored them."""
        assert self.leader is not None
        now = self.clock.now()
        holder = self.leader.holder()
        who = holder.describe() if holder else None
        log.info("following: %s leads", who or "no watcher")
        for alert in extra:
            log.info("%s (not sent: a follower sends no alerts)", alert.title)
        st = self.store.load()
        # The domains as the leader last saved them: what a person or a cron job running
        # `watch --once` next to a leading daemon needs (and the exit code follows them).
        domains = []
        for d in self.domains:
            ds = st.domains.get(d.display) or DomainState()
            domains.append(
                DomainReport(
                    domain=d.display,
                    state=ds.state,
                    since=ds.since,
                    cause="as the leader last saw it",
                    live="?",
                    records=tuple(ds.last_records) if ds.last_records is not None else None,
                    ttl=None,
                    consistent=True,
                    unreachable=False,
                    nameservers=(),
                    backup_ready=ds.readiness.get("backup"),
                    live_ready=ds.readiness.get("live"),
                    conditions=tuple(
                        (k, c.severity, c.message)
                        for k, c in sorted({**ds.conditions, **ds.action_conditions}.items())
                    ),
                )
            )
        report = RoundReport(
            now,
            self.clock.now(),
            tuple(domains),
            tuple(p for p in st.proposals if p.open(now)),
            role="follower",
            leader=who,
        )
        self.hooks.on_round(report, st)
        return report

    def _lead(self, now: float, settings: WatchConfig, extra: list[Alert]) -> RoundReport:
        with self.store.update() as st:
            overrun = (
                st.last_round_at is not None
                and now - st.last_round_at > 2 * settings.interval
                and self.last is not None
            )
            report = self._round(st, now, extra)
            finished = self.clock.now()
            overrun = overrun or finished - now > settings.interval
            report = RoundReport(
                report.started,
                finished,
                report.domains,
                report.proposals,
                report.watcher,
                overrun,
                report.failed_actions,
                report.interrupted,
                "leader",
                self.leader.lease.info.describe()
                if self.leader is not None and self.leader.lease.info
                else None,
            )
            log.info(
                "round finished in %.1fs: %s",
                finished - now,
                ", ".join(f"{d.domain} {d.state}" for d in report.domains) or "no domains",
            )
            if overrun:
                log.warning(
                    "round took %.1fs, longer than the interval (%.0fs)",
                    finished - now,
                    settings.interval,
                )
            st.last_round_at = finished
            st.trim(finished)
        self.hooks.on_round(report, st)
        if not report.interrupted:
            self._heartbeat()
        return report

    def _round(self, st: WatchState, now: float, extra: list[Alert]) -> RoundReport:
        cfg, settings = self.config, self.settings
        domains = self.domains
        observer = Observer(cfg, dns_timeout=self.dns_timeout)
        actions = Actions(
            cfg, self.journal, st, clock=self.clock, verify_timeout=self.verify_timeout
        )
        failed: list[str] = []
        watcher_conditions: dict[str, tuple[str, str]] = {}
        try:
            # 1. DNS
            statuses = {s.domain.name: s for s in loop.run(observer.status(domains))}
            try:
                view = self.journal.read()
            except MxflipError as exc:
                view = JournalView([])
                watcher_conditions["journal"] = ("warning", f"journal unreadable: {exc}")
            # 2. new canaries first, so that a check a whole number of intervals later
            # sees them at least that old (a check first would see them a little younger
            # than fail_after and lose a round to detection)
            if not self.stopping and cfg.canary is not None:
                self._send_canaries(st, domains, statuses, observer, reread=False)
            # 3. readiness
            readiness: dict[str, dict[str, Any]] = {}
            if not self.stopping:
                readiness = self._readiness(domains, statuses)
            # 4. canary results
            verdicts: dict[str, PathVerdicts] = {}
            if not self.stopping and cfg.canary is not None:
                try:
                    verdicts = self._canary_verdicts(st, domains, statuses)
                except MxflipError as exc:
                    watcher_conditions["canary"] = ("warning", f"canary check failed: {exc}")
            # 5. the machine, conditions, and the quick decisions (notify, propose)
            rows: dict[str, _Row] = {}
            automatic: list[tuple[DomainConfig, Want]] = []
            for d in domains:
                status = statuses[d.name]
                ds = st.domain(d.display)
                v = verdicts.get(d.display)
                rd = readiness.get(d.name, {})
                sig = Signals(
                    live=status.match.active if status.provider_error is None else "error",
                    primary_path=v.primary if v else None,
                    backup_path=v.backup if v else None,
                    failing_hosts=v.failing_hosts if v else (),
                    backup_ready=rd.get("backup"),
                )
                step = advance(
                    ds, sig, now, settings, domain=d.display, auto_history=st.auto_switches
                )
                new = step.state
                row = rows[d.name] = _Row(d, status, new, step.cause, rd, sig)
                for want in step.wants:
                    if want.mode == "auto":
                        automatic.append((d, want))
                    elif not self.stopping:
                        self._record(row, actions.handle(d, want, now), st, extra, failed)
                st.domains[d.display] = new
                active = self._conditions(
                    d, status, view, rd, sig, step.cause, new.state, row.command
                )
                active.update(self._changed(d, status, view, new, now))
                new.conditions, alerts = track(
                    ds.conditions, active, now, settings.remind_every, domain=d.display
                )
                extra += alerts
                new.readiness = {k: str(x) for k, x in rd.items() if k in ("backup", "live")}
                new.last_records = (
                    list(status.provider_rrset.strings()) if status.provider_rrset else None
                )
                new.last_round_at = now
                if v is not None:
                    for path, (sent_at, delay, cstatus) in v.latest.items():
                        sample = (sent_at, d.display, path, delay, cstatus)
                        if sample not in st.series:
                            st.series.append(sample)
            # 6. people hear of it before a switch starts (one may take minutes)
            self._deliver(st, extra, now)
            extra = []
            # 7. automatic switches, through the engine under the journal lock
            for d, want in automatic:
                if not self.stopping:
                    self._record(rows[d.name], actions.handle(d, want, now), st, extra, failed)
            for row in rows.values():
                failures = {f"action:{i}": ("failure", f) for i, f in enumerate(row.failures)}
                row.state.action_conditions, alerts = track(
                    row.state.action_conditions,
                    failures,
                    now,
                    settings.remind_every,
                    domain=row.domain.display,
                )
                extra += alerts
            reports = [r.report() for r in rows.values()]
            # 8. after a switch, a canary through what is live now
            if not self.stopping and cfg.canary is not None and any(r.actions for r in reports):
                self._send_canaries(st, domains, statuses, observer, reread=True)
            # 9. watcher-wide conditions and alerts
            watcher_conditions.update(self._watcher_conditions(view, now))
            wc = st.domain(WATCHER)
            wc.conditions, alerts = track(
                wc.conditions, watcher_conditions, now, settings.remind_every, domain="watcher"
            )
            extra += alerts
            self._deliver(st, extra, now, retry=False)
        finally:
            actions.close()
            observer.close()
        open_props = tuple(open_proposals(st, now))
        return RoundReport(
            now,
            self.clock.now(),
            tuple(reports),
            open_props,
            tuple((k, s, m) for k, (s, m) in sorted(watcher_conditions.items())),
            False,
            tuple(failed),
            self.stopping,
        )

    # ---------------------------------------------------------------- phases

    def _readiness(
        self, domains: Sequence[DomainConfig], statuses: dict[str, DomainStatus]
    ) -> dict[str, dict[str, Any]]:
        from mxflip.readiness import check_domains

        out: dict[str, dict[str, Any]] = {d.name: {} for d in domains}
        try:
            for r in loop.run(check_domains(self.config, domains, "backup")):
                out[r.domain]["backup"] = r.verdict.value
                out[r.domain]["backup_reasons"] = tuple(
                    f"{w}: {f.message}" if w else f.message
                    for w, f in r.located_findings()
                    if str(f.severity) != "info"
                )[:5]
            live = {
                n: s.provider_rrset
                for n, s in statuses.items()
                if s.provider_error is None and s.provider_rrset is not None
            }
            # A live set that is the backup set was just checked: no second handshake.
            for d in domains:
                rrset = live.get(d.name)
                if rrset is not None and rrset.records == d.backup and "backup" in out[d.name]:
                    out[d.name]["live"] = out[d.name]["backup"]
            probe = [d for d in domains if d.name in live and "live" not in out[d.name]]
            if probe:
                for r in loop.run(check_domains(self.config, probe, "live", live_records=live)):
                    out[r.domain]["live"] = r.verdict.value
        except MxflipError as exc:
            log.warning("readiness checks failed: %s", exc)
        return out

    def _canary_domains(self, domains: Sequence[DomainConfig]) -> list[DomainConfig]:
        return [d for d in domains if d.canary_address]

    def _canary_verdicts(
        self, st: WatchState, domains: Sequence[DomainConfig], statuses: dict[str, DomainStatus]
    ) -> dict[str, PathVerdicts]:
        from mxflip.canary import canary_store, check_canaries

        chosen = self._canary_domains(domains)
        if not chosen:
            return {}
        assert self.config.canary is not None
        clock = self.clock  # mxflip's one clock, as the canary takes it
        check_canaries(self.config, domains=[d.display for d in chosen], clock=clock)
        records = canary_store(self.config).load().records
        out = {}
        for d in chosen:
            status = statuses[d.name]
            live = status.provider_rrset.hosts if status.provider_rrset else frozenset()
            mine = [r for r in records if r.domain == d.display]
            ds = st.domain(d.display)
            known = {r.token for r in mine}
            ds.tokens = {t: h for t, h in ds.tokens.items() if t in known}
            out[d.display] = path_verdicts(mine, ds.tokens, live)
        return out

    def _send_canaries(
        self,
        st: WatchState,
        domains: Sequence[DomainConfig],
        statuses: dict[str, DomainStatus],
        observer: Observer,
        *,
        reread: bool,
    ) -> None:
        from mxflip.canary import send_canaries

        chosen = self._canary_domains(domains)
        if not chosen:
            return
        clock = self.clock  # mxflip's one clock, as the canary takes it
        live: dict[str, RRset | None] = {}
        if reread:
            for name, (rrset, error) in loop.run(observer.read_provider(chosen)).items():
                live[name] = rrset if error is None else None
        else:
            live = {n: s.provider_rrset for n, s in statuses.items()}
        # Live path: one host per round in turn (or every host), each its own canary.
        slots: dict[int, dict[str, MX]] = {}
        on_backup, on_primary = [], []
        for d in chosen:
            rrset = live.get(d.name)
            if rrset is None:
                continue
            hosts = sorted(rrset.records, key=lambda mx: (mx.preference, mx.host))
            ds = st.domain(d.display)
            picks = (
                hosts if self.settings.canary_every_host else [hosts[ds.host_cursor % len(hosts)]]
            )
            ds.host_cursor = (ds.host_cursor + 1) % max(1, len(hosts))
            for i, mx in enumerate(picks):
                slots.setdefault(i, {})[d.name] = mx
            if rrset.records <= d.backup:
                on_backup.append(d)
            else:
                on_primary.append(d)
        for slot in slots.values():
            members = [d for d in chosen if d.name in slot]

            async def reader(
                ds: Sequence[DomainConfig], slot: dict[str, MX] = slot
            ) -> dict[str, tuple[RRset | None, str | None]]:
                return {
                    d.name: (RRset(d.name, d.failover_ttl, frozenset({slot[d.name]})), None)
                    for d in ds
                }

            sent = loop.run(
                send_canaries(self.config, members, "live", live_reader=reader, clock=clock)
            )
            for r in sent:
                host = slot[_key(chosen, r.domain)].host.rstrip(".").lower()
                st.domain(r.domain).tokens[r.token] = host
        # Differential: straight to the backup while on primary; straight to the primary
        # (is the proxy back?) while on backup.
        if on_primary:
            loop.run(send_canaries(self.config, on_primary, "backup", clock=clock))
        if on_backup:
            for r in loop.run(send_canaries(self.config, on_backup, "primary", clock=clock)):
                st.domain(r.domain).tokens[r.token] = ANY_HOST

    def _conditions(
        self,
        d: DomainConfig,
        status: DomainStatus,
        view: JournalView,
        rd: dict[str, Any],
        sig: Signals,
        cause: str,
        state: str,
        command: str | None,
    ) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        if state != "ok":
            text = f"{state}: {cause}" if cause else state
            if command:
                text += f"; to switch: {command}"
            out["state"] = ("failure" if state == "failing" else "warning", text)
        if status.unreachable:
            why = status.provider_error or status.nameserver_error or "no nameserver answered"
            out["unreachable"] = ("failure", f"cannot observe: {why}")
        drifted = [
            v.server
            for v in status.nameservers
            if v.match is not None and v.match.active not in ("primary", "backup")
        ]
        if status.provider_error is None and status.match.active not in ("primary", "backup"):
            drifted.insert(0, "the provider")
        if drifted:
            out["drift"] = (
                "warning",
                f"drift: the MX set at {', '.join(drifted)} is neither profile "
                f"({status.match.active})",
            )
        elif not status.consistent and status.provider_error is None:
            out["drift"] = ("warning", "nameservers disagree with the provider")
        if rd.get("backup") not in (None, "ready"):
            reasons = "; ".join(rd.get("backup_reasons", ())[:2])
            out["backup-readiness"] = (
                "warning",
                f"backup set is {rd['backup']}" + (f": {reasons}" if reasons else ""),
            )
        if rd.get("live") == "not-ready":
            out["live-readiness"] = ("failure", "the live MX set is not ready")
        if sig.primary_path == "failing" and sig.backup_path == "failing":
            out["mailbox"] = (
                "failure",
                "canaries fail through both paths: check the mailbox and the final server",
            )
        for host in sig.failing_hosts:
            out[f"host:{host}"] = (
                "warning",
                f"canaries through {host} fail while other live hosts deliver; "
                f"consider: mxflip drain {host} --now",
            )
        from mxflip.engine import switch_readiness

        if switch_readiness(status, view, self.clock.now()).lowered_ttl:
            out["lowered-ttl"] = ("info", "left on a lowered TTL (mxflip finalize raises it)")
        return out

    def _changed(
        self, d: DomainConfig, status: DomainStatus, view: JournalView, ds: Any, now: float
    ) -> dict[str, tuple[str, str]]:
        """Records that changed since the last round with no operation explaining it."""
        current = list(status.provider_rrset.strings()) if status.provider_rrset else None
        before = ds.last_records
        if status.provider_error is not None or ds.last_round_at is None:
            return {}
        if current == before:
            old = ds.conditions.get("changed")
            return {"changed": (old.severity, old.message)} if old else {}
        since = (ds.last_round_at or now) - self.settings.interval
        for op in view.operations:
            if op.time < since:
                continue
            for step in op.steps:
                if step.domain == d.name:
                    return {}
        return {
            "changed": (
                "warning",
                f"the MX records changed with no journalled operation: {before} → {current}",
            )
        }

    def _watcher_conditions(self, view: JournalView, now: float) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        unsettled = view.unsettled()
        if unsettled:
            op = unsettled[-1]
            out["unsettled"] = (
                "warning",
                f"operation {op.id} ({op.kind}) is {op.outcome}: mxflip resume {op.id} or "
                f"mxflip rollback {op.id}",
            )
        holder = lock_holder(self.journal)
        if holder is not None and now - holder[0] > self.settings.lock_warn_after:
            out["lock"] = ("warning", f"the journal lock is held for long: {holder[1]}")
        return out

    def _record(
        self, row: _Row, outcome: Outcome, st: WatchState, alerts: list[Alert], failed: list[str]
    ) -> None:
        row.command = row.command or outcome.command
        row.done += outcome.messages
        alerts += outcome.alerts
        if outcome.failed:
            failed.append(outcome.failed)
            row.failures.append(outcome.failed)
        if outcome.switched:
            row.state.last_switch_at = self.clock.now()
            st.auto_switches.append(row.state.last_switch_at)

    def _deliver(
        self, st: WatchState, alerts: list[Alert], now: float, *, retry: bool = True
    ) -> None:
        """Send ``alerts`` (and, with ``retry``, what earlier rounds could not deliver);
        what no channel took stays in the outbox."""
        queued = [Alert(a["title"], a["body"], a["kind"], a.get("domain")) for a in st.outbox]
        assert self.notifier is not None
        left = self.notifier.send((queued if retry else []) + alerts)
        kept = [] if retry else st.outbox
        st.outbox = kept + [
            {"title": a.title, "body": a.body, "kind": a.kind, "domain": a.domain, "at": now}
            for a in left
        ]

    def _heartbeat(self) -> None:
        url = self.settings.heartbeat()
        if not url:
            return
        job = self._pool.submit(heartbeat, url, self.settings.timeout)
        try:
            error = job.result(timeout=self.settings.timeout + 1)
        except FutureTimeout:
            error = "timed out"
        if error:
            log.warning("heartbeat failed: %s", error)
        self.hooks.on_heartbeat(error)


@dataclass
class _Row:
    """One domain's round in the making."""

    domain: DomainConfig
    status: DomainStatus
    state: DomainState
    cause: str
    readiness: dict[str, Any]
    signals: Signals
    command: str | None = None
    done: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def report(self) -> DomainReport:
        return _report(
            self.domain,
            self.status,
            self.state,
            self.cause,
            self.readiness,
            self.signals,
            self.command,
            tuple(self.done),
        )


def _key(domains: Sequence[DomainConfig], display: str) -> str:
    return next(d.name for d in domains if d.display == display)


def _report(
    d: DomainConfig,
    status: DomainStatus,
    ds: Any,
    cause: str,
    rd: dict[str, Any],
    sig: Signals,
    command: str | None,
    actions: tuple[str, ...],
) -> DomainReport:
    rrset = status.provider_rrset
    return DomainReport(
        domain=d.display,
        state=ds.state,
        since=ds.since,
        cause=cause,
        live=status.match.active if status.provider_error is None else "error",
        records=tuple(rrset.strings()) if rrset else None,
        ttl=rrset.ttl if rrset else None,
        consistent=status.consistent,
        unreachable=status.unreachable,
        nameservers=tuple(
            (v.server, v.match.active if v.match else "?", v.answer.error)
            for v in status.nameservers
        ),
        backup_ready=rd.get("backup"),
        backup_reasons=tuple(rd.get("backup_reasons", ())),
        live_ready=rd.get("live"),
        primary_path=sig.primary_path,
        backup_path=sig.backup_path,
        failing_hosts=sig.failing_hosts,
        conditions=tuple(
            (k, c.severity, c.message)
            for k, c in sorted({**ds.conditions, **ds.action_conditions}.items())
        ),
        command=command,
        actions=actions,
    )


def lock_holder(journal: JournalStore) -> tuple[float, str] | None:
    """(since, who) when another process holds the local journal lock; else None (a
    shared backend's lock expires by itself)."""
    from datetime import datetime

    from mxflip.journal import lock_record

    lock_path = getattr(journal, "lock_path", None)
    info = lock_record(lock_path) if lock_path is not None else None
    if not info:
        return None
    try:
        since = datetime.fromisoformat(str(info["since"]).replace("Z", "+00:00"))
        who = f"pid {info['pid']}, {info['user']}@{info['host']}, '{info['command']}'"
    except (ValueError, KeyError, TypeError):
        return None
    return since.timestamp(), who


__all__ = ["WATCHER", "DomainReport", "Hooks", "RoundReport", "Watcher", "lock_holder"]
