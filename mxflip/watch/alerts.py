"""Alerts through Apprise, the heartbeat, and the condition tracker that decides when to
raise, remind and resolve.

A channel that is down, slow or answers 500 never blocks a round: every request has a
bounded timeout, runs in a worker thread the round waits on for at most ``timeout``
seconds, and what was not delivered stays in the outbox for the next round (counted in
``/metrics``). Channel URLs are secrets: logs and errors show only their scheme.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from mxflip.watch.config import WatchConfig, scheme
from mxflip.watch.store import Condition

log = logging.getLogger("mxflip.watch")


@dataclass(frozen=True)
class Alert:
    """One message for people: a title line and a body."""

    title: str
    body: str
    kind: str = "warning"  # info, warning, failure, success
    domain: str | None = None


@dataclass(frozen=True)
class Delivery:
    """What became of one alert on one channel (the channel as its scheme only)."""

    channel: str
    ok: bool
    error: str | None = None


def track(
    conditions: Mapping[str, Condition],
    active: Mapping[str, tuple[str, str]],
    now: float,
    remind_every: float,
    *,
    domain: str,
) -> tuple[dict[str, Condition], list[Alert]]:
    """Raise new conditions, remind of old ones every ``remind_every``, resolve the ones
    that cleared. ``active`` maps key → (severity, message). Pure: returns the new map and
    the alerts to send."""
    out: dict[str, Condition] = {}
    alerts: list[Alert] = []
    for key, (severity, message) in active.items():
        old = conditions.get(key)
        if old is None:
            out[key] = Condition(message, now, now, severity)
            alerts.append(Alert(f"mxflip: {domain}: {message}", message, severity, domain))
        elif key == "state" and old.message.split(":")[0] != message.split(":")[0]:
            # A change of state is news, not a reminder.
            out[key] = Condition(message, now, now, severity)
            alerts.append(Alert(f"mxflip: {domain}: {message}", message, severity, domain))
        elif now - old.last_sent >= remind_every:
            out[key] = Condition(message, old.since, now, severity)
            alerts.append(
                Alert(f"mxflip: reminder: {domain}: {message}", message, severity, domain)
            )
        else:
            # Same condition: keep the newest wording (round counts), no new alert.
            out[key] = Condition(message, old.since, old.last_sent, severity)
    for key, old in conditions.items():
        if key not in active:
            alerts.append(
                Alert(
                    f"mxflip: resolved: {domain}: {old.message}",
                    f"resolved: {old.message}",
                    "success",
                    domain,
                )
            )
    return out, alerts


Sender = Callable[[str, Alert, float], None]


def apprise_send(url: str, alert: Alert, timeout: float) -> None:
    """Send one alert to one Apprise URL; raises on failure (never with the URL)."""
    import apprise

    box = apprise.Apprise()
    # cto/rto bound Apprise's own HTTP requests; the worker thread bounds the rest.
    sep = "&" if "?" in url else "?"
    if not box.add(f"{url}{sep}cto={timeout:g}&rto={timeout:g}") and not box.add(url):
        raise RuntimeError(f"Apprise cannot use this {scheme(url)} URL")
    notify_type = {
        "info": apprise.NotifyType.INFO,
        "success": apprise.NotifyType.SUCCESS,
        "failure": apprise.NotifyType.FAILURE,
    }.get(alert.kind, apprise.NotifyType.WARNING)
    if not box.notify(title=alert.title, body=alert.body, notify_type=notify_type):
        raise RuntimeError(f"the {scheme(url)} channel did not accept the alert")


class Notifier:
    """Delivers alerts to every channel, bounded in time; reports what failed."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float,
        sender: Sender = apprise_send,
        on_result: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.urls = list(urls)
        self.timeout = timeout
        self.sender = sender
        self.on_result = on_result or (lambda d: None)
        # Daemon-like workers: a hung channel keeps its thread, never the round.
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="mxflip-notify")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def send(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Send every alert to every channel; returns the alerts no channel took (to
        retry next round). With no channel configured, alerts go to the log only."""
        for a in alerts:
            log.warning("alert: %s", a.title)
        if not self.urls or not alerts:
            return []
        jobs = [
            (a, url, self._pool.submit(self.sender, url, a, self.timeout))
            for a in alerts
            for url in self.urls
        ]
        delivered: set[int] = set()
        for a, url, job in jobs:
            try:
                job.result(timeout=self.timeout + 1)
                delivered.add(id(a))
                self.on_result(Delivery(scheme(url), True))
            except FutureTimeout:
                self._failed(url, "timed out")
            except Exception as exc:
                self._failed(url, _safe(exc, url))
        return [a for a in alerts if id(a) not in delivered]

    def _failed(self, url: str, error: str) -> None:
        log.warning("notification channel %s failed: %s", scheme(url), error)
        self.on_result(Delivery(scheme(url), False, error))


def _safe(exc: BaseException, url: str) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace(url, scheme(url))


def send_test_notification(watch: WatchConfig, *, sender: Sender = apprise_send) -> list[Delivery]:
    """Send one test alert to each configured channel and say how each went (for
    ``mxflip doctor``): a channel is only trusted once a message has gone through it."""
    results: list[Delivery] = []
    notifier = Notifier(
        watch.notify_urls(), timeout=watch.timeout, sender=sender, on_result=results.append
    )
    try:
        notifier.send(
            [Alert("mxflip: test notification", "mxflip can reach this channel.", "info")]
        )
    finally:
        notifier.close()
    return results


#: Apprise schemes whose URL host is the server a message goes to (for the others, such as
#: ``slack://`` or ``tgram://``, the "host" is a token and the server is the service's own).
_HOST_SCHEMES = frozenset(
    {"json", "xml", "form", "ntfy", "gotify", "apprise", "mmost", "rocket", "matrix", "http"}
)


def check_channel(url: str, timeout: float, *, apprise_url: bool = True) -> str | None:
    """Without sending anything: None when Apprise accepts ``url`` and, where the scheme
    names a host, that host resolves and a TCP connection to it opens within ``timeout``;
    else why not (never the URL: it holds secrets). The system resolver decides, as it
    does for Apprise's own requests."""
    import socket
    import urllib.parse

    import apprise

    kind = scheme(url)
    if apprise_url and not apprise.Apprise().add(url):
        return f"Apprise cannot use this {kind} URL (unknown scheme or missing parts)"
    raw = url.partition("://")[0].lower()
    # The trailing "s" is the TLS variant of a scheme (jsons, ntfys, https).
    base = raw.rstrip("s")
    if base not in _HOST_SCHEMES:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        return f"the {kind} URL is malformed: {str(exc).replace(url, kind)}"
    if not host:
        return f"the {kind} URL names no host"
    secure = base != raw
    try:
        with socket.create_connection((host, port or (443 if secure else 80)), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"its host does not resolve: {exc.strerror or exc}"
    except TimeoutError:
        return f"no connection to its host within {timeout:g} s"
    except OSError as exc:
        return f"cannot connect to its host: {exc.strerror or exc}"


def heartbeat(url: str, timeout: float) -> str | None:
    """Request the dead man's switch URL; None when it answered 2xx, else why not (the
    URL itself never appears: it usually holds the check's secret id)."""
    try:
        req = urllib.request.Request(url, method="GET", headers={"User-Agent": "mxflip-watch"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if 200 <= resp.status < 300:
                return None
            return f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        return str(getattr(exc.reason, "strerror", None) or exc.reason)
    except (TimeoutError, OSError) as exc:
        return str(getattr(exc, "strerror", None) or exc or "timed out")
