"""The canary's Prometheus metrics, on prometheus-client's registry: written as a
node_exporter textfile by ``canary check|run --prometheus`` and served by ``mxflip watch
--listen`` under ``/metrics``, with the same names and labels."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mxflip.canary._base import CanaryError
from mxflip.canary.state import PathSummary

#: The states ``mxflip_canary_status`` has a series for (one is 1, the others 0).
PROMETHEUS_STATES = ("on_time", "late", "missing", "send_failed")


class CanaryCollector(Collector):
    """Delay, last success, last check and state per domain and path, read from
    ``summaries()`` at every scrape (every path in the state file, not only the ones the
    last run touched)."""

    def __init__(self, summaries: Callable[[], Iterable[PathSummary]]) -> None:
        self._summaries = summaries

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["domain", "path"]
        delay = GaugeMetricFamily(
            "mxflip_canary_delay_seconds",
            "Delivery delay of the last canary; for one not found yet, its age.",
            labels=labels,
        )
        success = GaugeMetricFamily(
            "mxflip_canary_last_success_timestamp_seconds",
            "Unix time the last canary delivered on time arrived (0: never).",
            labels=labels,
        )
        checked = GaugeMetricFamily(
            "mxflip_canary_last_check_timestamp_seconds",
            "Unix time of the last canary result.",
            labels=labels,
        )
        status = GaugeMetricFamily(
            "mxflip_canary_status",
            "Result of the last canary: 1 for the current state, 0 for the others.",
            labels=[*labels, "state"],
        )
        for s in sorted(self._summaries(), key=lambda s: (s.domain, s.path)):
            key = [s.domain, s.path]
            delay.add_metric(key, round(s.delay or 0.0, 3))
            success.add_metric(key, s.last_success_at or 0.0)
            checked.add_metric(key, s.checked_at)
            for state in PROMETHEUS_STATES:
                status.add_metric([*key, state], 1.0 if s.status == state else 0.0)
        yield from (delay, success, checked, status)


def write_canary_textfile(path: Path, summaries: Iterable[PathSummary]) -> None:
    """Write the node_exporter textfile (prometheus-client writes a temporary file and
    renames it, so the collector never reads half a file)."""
    rows = list(summaries)
    registry = CollectorRegistry()
    registry.register(CanaryCollector(lambda: rows))
    try:
        write_to_textfile(str(path), registry)
    except OSError as exc:
        raise CanaryError(f"cannot write {path}: {exc.strerror or exc}") from None
