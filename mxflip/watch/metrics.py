"""``/metrics``: the watcher's and the canary's metrics on one prometheus-client
registry."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from mxflip.canary.metrics import CanaryCollector
from mxflip.canary.state import PathSummary
from mxflip.config import Config
from mxflip.watch.alerts import Delivery
from mxflip.watch.machine import STATES

if TYPE_CHECKING:
    from mxflip.watch.rounds import Hooks, RoundReport, Watcher
    from mxflip.watch.store import WatchState


class WatchMetrics:
    """Counters and gauges updated after each round, plus the canary's per-path gauges
    read from its state file at scrape time."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.registry = CollectorRegistry()
        self.watcher: Watcher | None = None
        self.last_report: RoundReport | None = None
        self.last_state: WatchState | None = None
        r = self.registry
        self.rounds = Counter("mxflip_watch_rounds", "Rounds completed.", registry=r)
        self.overruns = Counter(
            "mxflip_watch_round_overruns", "Rounds that took longer than the interval.", registry=r
        )
        self.duration = Gauge(
            "mxflip_watch_round_duration_seconds", "How long the last round took.", registry=r
        )
        self.last_round = Gauge(
            "mxflip_watch_last_round_timestamp_seconds",
            "Unix time the last round finished.",
            registry=r,
        )
        self.state = Gauge(
            "mxflip_watch_domain_state",
            "The domain's watch state: 1 for the current one, 0 for the others.",
            ["domain", "state"],
            registry=r,
        )
        self.alerts = Gauge(
            "mxflip_watch_active_alerts",
            "Alert conditions active per domain.",
            ["domain"],
            registry=r,
        )
        self.proposals = Gauge("mxflip_watch_open_proposals", "Open proposals.", registry=r)
        self.leader = Gauge(
            "mxflip_watch_leader",
            "1 while this watcher leads (acts), 0 while it follows another.",
            registry=r,
        )
        self.notifications = Counter(
            "mxflip_watch_notifications",
            "Alerts delivered, per channel scheme.",
            ["channel"],
            registry=r,
        )
        self.notify_failures = Counter(
            "mxflip_watch_notification_failures",
            "Alert deliveries that failed (down, slow, refused), per channel scheme.",
            ["channel"],
            registry=r,
        )
        self.outbox = Gauge(
            "mxflip_watch_undelivered_alerts", "Alerts waiting to be retried.", registry=r
        )
        self.heartbeats = Counter("mxflip_watch_heartbeats", "Heartbeats answered.", registry=r)
        self.heartbeat_failures = Counter(
            "mxflip_watch_heartbeat_failures", "Heartbeat requests that failed.", registry=r
        )
        self.auto_switches = Gauge(
            "mxflip_watch_auto_switches_recent",
            "Automatic switches within auto_window.",
            registry=r,
        )
        r.register(CanaryCollector(self._canary_paths))

    def attach(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def _canary_paths(self) -> Iterable[PathSummary]:
        config = self.watcher.config if self.watcher is not None else self.config
        if config.canary is None:
            return []
        from mxflip.canary import CanaryError, canary_store

        try:
            return canary_store(config).load().paths
        except CanaryError:
            return []

    def hooks(self) -> Hooks:
        from mxflip.watch.rounds import Hooks

        return Hooks(
            on_round=self.on_round, on_delivery=self.on_delivery, on_heartbeat=self.on_heartbeat
        )

    def on_round(self, report: RoundReport, st: WatchState) -> None:
        self.last_report, self.last_state = report, st
        self.rounds.inc()
        if report.overrun:
            self.overruns.inc()
        self.duration.set(report.finished - report.started)
        self.last_round.set(report.finished)
        for d in report.domains:
            for s in STATES:
                self.state.labels(d.domain, s).set(1.0 if d.state == s else 0.0)
            self.alerts.labels(d.domain).set(len(d.conditions))
        self.proposals.set(len(report.proposals))
        self.leader.set(1.0 if report.role == "leader" else 0.0)
        self.outbox.set(len(st.outbox))
        window = self.watcher.settings.auto_window if self.watcher else 86400.0
        self.auto_switches.set(len([t for t in st.auto_switches if report.finished - t < window]))

    def on_delivery(self, delivery: Delivery) -> None:
        if delivery.ok:
            self.notifications.labels(delivery.channel).inc()
        else:
            self.notify_failures.labels(delivery.channel).inc()

    def on_heartbeat(self, error: str | None) -> None:
        (self.heartbeats if error is None else self.heartbeat_failures).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
