"""``mxflip watch`` under faults: a delaying proxy seen through Dovecot, a rejecting
proxy, restarts, reloads (good and bad), SIGTERM, overrunning rounds, slow and failing
notification channels, expired proposals and plans that changed before approval."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import trustme

from mxflip.config import load_config
from mxflip.errors import ConfigError
from mxflip.journal import Journal
from mxflip.watch.alerts import send_test_notification
from mxflip.watch.metrics import WatchMetrics
from mxflip.watch.rounds import Watcher
from mxflip.watch.store import LocalWatchStore
from tests.support.bind import BindServer
from tests.support.canary_lab import FakeClock, ca
from tests.support.cli import fake_runtime, invoke, use_runtime
from tests.support.dovecot import DovecotServer, dovecot
from tests.support.ports import free_port
from tests.support.watch_lab import WatchLab, hold, lab, make_watch_lab, rounds

__all__ = ["ca", "dovecot", "lab"]
HOLD = 'interval = "60s"\non_primary_failing = "failover"\nfailing_rounds = 2\n'


# ------------------------------------------------------------------ proxies and mailboxes


def test_a_delaying_proxy_seen_through_dovecot_is_suspect_not_failing(
    tmp_path: Path,
    bind: BindServer,
    ca: trustme.CA,
    dovecot: DovecotServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCH_IMAP_USER", dovecot.user)
    monkeypatch.setenv("WATCH_IMAP_PASSWORD", dovecot.password)
    for box_lab in make_watch_lab(tmp_path, bind, ca, maildir=dovecot.maildir):
        imap = (
            f'mailbox = "imap"\nimap_host = "127.0.0.1"\nimap_port = {dovecot.port}\n'
            'imap_user_env = "WATCH_IMAP_USER"\nimap_password_env = "WATCH_IMAP_PASSWORD"\n'
            f'ca_file = "{dovecot.ca_file}"'
        )
        clock = FakeClock()
        config = box_lab.config(HOLD, mailbox=imap)
        # Delivered three minutes after acceptance: later than warn_after (2m), not missing.
        box_lab.proxy.handler.delay = box_lab.proxy2.handler.delay = 180
        w = Watcher(config, clock=clock)
        try:
            # The relay dates deliveries by the real clock: keep the fake one beside it.
            reports = rounds(w, clock, 4, step=1)
        finally:
            w.close()
        states = [r.domains[0].state for r in reports]
        assert states[-1] == "suspect", states
        assert reports[-1].domains[0].primary_path == "late"
        assert reports[-1].domains[0].backup_path == "ok"
        assert box_lab.served() == sorted(box_lab.primary)


def test_a_rejecting_proxy_is_failing(lab: WatchLab, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    lab.proxy.handler.reject_rcpt = lab.proxy2.handler.reject_rcpt = "550 5.7.1 rejected"
    w = Watcher(lab.config('interval = "60s"'), clock=clock)
    try:
        last = rounds(w, clock, 2)[-1].domains[0]
    finally:
        w.close()
    assert (last.state, last.primary_path, last.backup_path) == ("failing", "failing", "ok")
    assert last.command is not None and last.command.startswith("mxflip failover")


# ------------------------------------------------------------------ restarts and reloads


def test_state_survives_a_restart(lab: WatchLab) -> None:
    clock = FakeClock()
    config = lab.config(HOLD)
    hold(lab)
    first = Watcher(config, clock=clock)
    try:
        reports = rounds(first, clock, 5)
    finally:
        first.close()
    assert reports[-1].domains[0].state == "failing"
    assert lab.served() == sorted(lab.primary)  # one failing round so far: not yet
    second = Watcher(load_config(config.path), clock=clock)  # a new process, same state
    try:
        after = asyncio.run(second.round()).domains[0]
    finally:
        second.close()
    assert after.actions and "automatic failover" in after.actions[0]
    assert lab.served() == sorted(lab.backup_set)


def test_reload_validates_first_and_keeps_the_running_config(lab: WatchLab) -> None:
    clock = FakeClock()
    url = lab.receiver.url()
    path = lab.write(f'interval = "60s"\nnotify = ["{url}"]')
    w = Watcher(load_config(path), clock=clock, load_config=lambda: load_config(path))
    try:
        asyncio.run(w.round())
        path.write_text(path.read_text().replace('interval = "60s"', 'interval = "soon"'))
        w.request_reload()
        asyncio.run(w.round())
        assert w.settings.interval == 60
        titles = [a["title"] for a in lab.receiver.alerts()]
        assert "mxflip: configuration reload failed; the running configuration stays" in titles
        failed = next(a for a in lab.receiver.alerts() if "reload failed" in a["title"])
        assert "watch.interval" in failed["message"]
        path.write_text(path.read_text().replace('interval = "soon"', 'interval = "90s"'))
        w.request_reload()
        asyncio.run(w.round())
        assert w.settings.interval == 90
    finally:
        w.close()


def test_sighup_reloads_and_sigterm_ends_after_the_current_round(
    lab: WatchLab, tmp_path: Path
) -> None:
    path = lab.write('interval = "1h"')
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mxflip", "-c", str(path), "watch", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        healthy = False
        for _ in range(300):  # bounded: at most ~30 s for the first round
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    healthy = r.status == 200
            except OSError:
                pass
            if healthy or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert healthy, proc.stderr.read().decode() if proc.poll() is not None else "no round"
        # SIGHUP: reloaded at once (the sleep wakes), a second round runs.
        proc.send_signal(signal.SIGHUP)
        for _ in range(300):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                if b"mxflip_watch_rounds_total 2.0" in r.read():
                    break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert code == 0
    assert b"mxflip.watch: configuration reloaded" in proc.stderr.read()
    saved = LocalWatchStore(lab.folder / "state" / "watch.json").load()
    assert saved.domains[lab.domain].state == "ok"


class SlowClock(FakeClock):
    """Every look at the clock costs 40 s: a round that overruns its interval."""

    def now(self) -> float:
        self.t += 40
        return self.t


def test_an_overrunning_round_is_reported(lab: WatchLab) -> None:
    config = lab.config('interval = "60s"')
    metrics = WatchMetrics(config)
    w = Watcher(config, clock=SlowClock(), hooks=metrics.hooks())
    metrics.attach(w)
    try:
        report = w.run(max_rounds=2)
    finally:
        w.close()
    assert report is not None and report.overrun
    assert "mxflip_watch_round_overruns_total 2.0" in metrics.exposition().decode()


# ------------------------------------------------------------------ channels


def test_a_slow_channel_is_bounded_and_retried_next_round(lab: WatchLab) -> None:
    clock = FakeClock()
    lab.receiver.mode = "slow"
    config = lab.config(f'interval = "60s"\ntimeout = "1s"\nnotify = ["{lab.receiver.url()}"]')
    hold(lab)
    w = Watcher(config, clock=clock)
    try:
        rounds(w, clock, 5)
        saved = LocalWatchStore(lab.folder / "state" / "watch.json").load()
        assert any("failing" in a["title"] for a in saved.outbox)
        lab.receiver.mode = "ok"
        lab.receiver.release.set()
        asyncio.run(w.round())
    finally:
        w.close()
    assert LocalWatchStore(lab.folder / "state" / "watch.json").load().outbox == []
    assert any("failing" in a["title"] for a in lab.receiver.alerts())


def test_test_notification_for_doctor(lab: WatchLab) -> None:
    config = lab.config(f'notify = ["{lab.receiver.url()}", "json://127.0.0.1:1/closed"]')
    assert config.watch is not None
    results = send_test_notification(config.watch)
    assert sorted((r.channel, r.ok) for r in results) == [("json://…", False), ("json://…", True)]
    assert lab.receiver.alerts()[0]["title"] == "mxflip: test notification"


def test_notify_urls_from_the_environment(lab: WatchLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCH_URLS", lab.receiver.url())
    config = lab.config('notify_env = "WATCH_URLS"')
    assert config.watch is not None
    assert [r.ok for r in send_test_notification(config.watch)] == [True]
    monkeypatch.setenv("WATCH_URLS", "nosuch://x")
    result = invoke(["-c", str(config.path), "watch", "--once"])
    assert result.exit_code == 2
    assert "watch.notify_env ($WATCH_URLS): Apprise cannot use this nosuch://… URL" in result.stderr
    with pytest.raises(ConfigError):
        from mxflip.watch.config import check_env_urls

        check_env_urls(config.watch)


# ------------------------------------------------------------------ proposals


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    use_runtime(monkeypatch, fake_runtime(clock))
    return clock


def once(path: Path) -> dict:  # type: ignore[type-arg]
    result = invoke(["-c", str(path), "watch", "--once", "--json"])
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_an_expired_proposal_is_proposed_again(lab: WatchLab, fake: FakeClock) -> None:
    path = lab.write('interval = "60s"\non_primary_failing = "propose"\nproposal_ttl = "90s"')
    hold(lab)
    ids = []
    for _ in range(9):
        doc = once(path)
        ids += [p["id"] for p in doc["proposals"] if p["id"] not in ids]
        fake.t += 60
    assert len(ids) >= 2
    result = invoke(["-c", str(path), "approve", ids[0]])
    assert result.exit_code == 2 and "expired" in result.stderr
    assert lab.served() == sorted(lab.primary)


def test_approve_refuses_a_plan_that_changed(lab: WatchLab, fake: FakeClock) -> None:
    path = lab.write('interval = "60s"\non_primary_failing = "propose"')
    hold(lab)
    for _ in range(6):
        doc = once(path)
        fake.t += 60
    (p,) = doc["proposals"]
    lab.set_mx(lab.primary, ttl=600)  # someone changed the TTL: the reviewed plan is stale
    result = invoke(["-c", str(path), "approve", p["id"]])
    assert result.exit_code == 3
    assert f"not {p['plan_hash']}; nothing was changed" in result.stderr
    assert lab.served() == sorted(lab.primary)
    assert Journal(lab.folder / "state" / "journal.jsonl").read().operations == []
    listed = json.loads(invoke(["-c", str(path), "proposals", "--all", "--json"]).stdout)
    assert listed["proposals"][0]["status"] == "failed"


# ------------------------------------------------------------------ journal and drift


def test_hand_edits_and_a_long_held_lock_are_alerted(lab: WatchLab) -> None:
    clock = FakeClock()
    config = lab.config('interval = "60s"\nlock_warn_after = "10m"')
    w = Watcher(config, clock=clock)
    journal = Journal(lab.folder / "state" / "journal.jsonl")
    try:
        asyncio.run(w.round())
        lab.set_mx([lab.primary[0]])  # someone removed mx2 by hand, no operation journalled
        clock.t += 60
        with journal.lock("mxflip failover stuck", now=clock.t - 3600):
            report = asyncio.run(w.round())
    finally:
        w.close()
    keys = {k: m for k, _, m in report.domains[0].conditions}
    assert "changed" in keys and "no journalled operation" in keys["changed"]
    watcher = {k: m for k, _, m in report.watcher}
    assert "lock" in watcher and "'mxflip failover stuck'" in watcher["lock"]


def test_listen_binds_loopback_by_default(lab: WatchLab, fake: FakeClock) -> None:
    path = lab.write('interval = "60s"')
    bad = invoke(["-c", str(path), "watch", "--once", "--listen", "x:y"])
    assert bad.exit_code == 2 and "--listen 'x:y'" in bad.stderr


def test_a_failed_round_does_not_end_the_watcher(lab: WatchLab, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the state folder should be")
    config = lab.config(
        f'interval = "60s"\nnotify = ["{lab.receiver.url()}"]\n'
        f'state_file = "{blocked / "watch.json"}"'
    )
    w = Watcher(config, clock=FakeClock())
    try:
        assert w.run(max_rounds=2) is None
        with pytest.raises(Exception, match="watch state"):
            w.run(once=True)
    finally:
        w.close()
    titles = [a["title"] for a in lab.receiver.alerts()]
    assert titles.count("mxflip: watcher round failed") == 2


def test_an_unsettled_operation_is_alerted_and_holds_automatic_switches(lab: WatchLab) -> None:
    from mxflip.journal import OperationLog, rrset_json
    from mxflip.records import RRset

    clock = FakeClock()
    config = lab.config(
        HOLD.replace("failing_rounds = 2", "failing_rounds = 1")
        + f'notify = ["{lab.receiver.url()}"]'
    )
    name = f"{lab.domain}."
    log = OperationLog(Journal(config.journal.path), "20260101T000000Z-abcdef", clock.now)  # type: ignore[arg-type]
    log.intent(
        kind="failover",
        target="backup",
        reason="test",
        command=["mxflip", "failover", lab.domain],
        plan_hash="0" * 12,
        steps=[
            {
                "domain": name,
                "zone": "example.test.",
                "provider": "lab",
                "before": rrset_json(RRset.of(name, 300, lab.primary)),
                "prelower": None,
                "after": rrset_json(RRset.of(name, 60, lab.backup_set)),
            }
        ],
        options={},
    )  # and no result: interrupted
    hold(lab)
    w = Watcher(config, clock=clock)
    try:
        reports = rounds(w, clock, 6)
    finally:
        w.close()
    last = reports[-1]
    assert any(
        k == "unsettled" and "mxflip resume 20260101T000000Z-abcdef" in m
        for k, _, m in last.watcher
    )
    assert any("earlier operation is unsettled" in f for r in reports for f in r.failed_actions)
    assert lab.served() == sorted(lab.primary)
    held = [a for a in lab.receiver.alerts() if "could not failover" in a["title"]]
    assert len(held) == 1, held  # alerted once, not once per round
