"""``mxflip watch`` rounds end to end on loopback: BIND9, an inbound proxy that passes,
delays or silently holds mail, a direct backup relay, a Maildir, and a loopback receiver
for ``json://`` alerts and the heartbeat. Time is a fake clock moved a round at a time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mxflip.config import load_config
from mxflip.journal import Journal
from mxflip.watch.rounds import Watcher
from mxflip.watch.store import LocalWatchStore
from tests.support.canary_lab import FakeClock, ca
from tests.support.cli import fake_runtime, invoke, use_runtime
from tests.support.watch_lab import WatchLab, hold, lab, rounds

__all__ = ["ca", "lab"]


def test_a_holding_proxy_leads_to_a_journalled_automatic_failover(lab: WatchLab) -> None:
    clock = FakeClock()
    config = lab.config(
        f'interval = "60s"\non_primary_failing = "failover"\nfailing_rounds = 1\n'
        f'notify = ["{lab.receiver.url()}"]\nheartbeat_url = "http://127.0.0.1:{lab.receiver.port}/hb"'
    )
    w = Watcher(config, clock=clock)
    try:
        first = rounds(w, clock, 2)
        assert [r.domains[0].state for r in first] == ["ok", "ok"]
        assert first[1].domains[0].primary_path == "ok"
        assert first[1].domains[0].backup_path == "ok"
        lab.proxy.handler.drop = lab.proxy2.handler.drop = True  # t0: the proxy holds mail
        states = [r.domains[0] for r in rounds(w, clock, 7)]
    finally:
        w.close()
    names = [d.state for d in states]
    assert "suspect" in names and "switched" in names, names
    switch = next(d for d in states if d.actions)
    assert "automatic failover" in switch.actions[0]
    assert lab.served() == sorted(lab.backup_set)
    op = Journal(config.journal.path).read().operations[-1]  # type: ignore[arg-type]
    assert (op.kind, op.outcome, op.intent["user"]) == ("failover", "done", "watch")
    assert "primary-path canaries missing" in op.intent["reason"]
    titles = [a["title"] for a in lab.receiver.alerts()]
    assert any("failing" in t for t in titles), titles
    auto = next(i for i, t in enumerate(titles) if "automatic failover" in t)
    # People hear of the failing path before the switch starts (it may take minutes).
    assert any("failing" in t for t in titles[:auto]), titles
    assert any(r.path == "/hb" for r in lab.receiver.requests)
    saved = LocalWatchStore(config.journal.path.with_name("watch.json")).load()  # type: ignore[union-attr]
    assert saved.domains[lab.domain].state in ("switched", "recovering")


def cli_(config: Path, *args: str):  # type: ignore[no-untyped-def]
    return invoke(["-c", str(config), *args])


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    use_runtime(monkeypatch, fake_runtime(clock))
    return clock


def test_once_proposes_and_approve_executes_exactly_that_plan(
    lab: WatchLab, fake: FakeClock
) -> None:
    path = lab.write('interval = "60s"\non_primary_failing = "propose"\nproposal_ttl = "1h"')
    first = cli_(path, "watch", "--once", "--json")
    doc = json.loads(first.stdout)
    assert (first.exit_code, doc["exit_code"], doc["command"]) == (0, 0, "watch")
    assert doc["domains"][0]["state"] == "ok" and doc["domains"][0]["live"] == "primary"
    lab.proxy.handler.drop = lab.proxy2.handler.drop = True
    for _ in range(6):
        fake.t += 60
        result = cli_(path, "watch", "--once", "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 1, result.output
    (d,) = doc["domains"]
    assert d["state"] == "failing"
    (p,) = doc["proposals"]
    assert (p["kind"], p["domain"]) == ("failover", lab.domain)
    assert p["command"] == f"mxflip approve {p['id']}"
    listed = cli_(path, "proposals", "--json")
    assert listed.exit_code == 1 and json.loads(listed.stdout)["proposals"][0]["id"] == p["id"]
    assert lab.served() == sorted(lab.primary)  # nothing switched without approval
    approved = cli_(path, "approve", p["id"], "--json")
    assert approved.exit_code == 0, approved.output
    assert lab.served() == sorted(lab.backup_set)
    op = Journal(lab.folder / "state" / "journal.jsonl").read().operations[-1]
    assert op.intent["plan_hash"] == p["plan_hash"]
    assert op.intent["reason"].startswith(f"approved watch proposal {p['id']}")
    again = cli_(path, "approve", p["id"])
    assert again.exit_code == 2 and "is approved" in again.stderr
    unknown = cli_(path, "approve", "nope")
    assert unknown.exit_code == 2 and "no proposal 'nope'" in unknown.stderr


def test_notify_policy_alerts_with_the_exact_command(lab: WatchLab, fake: FakeClock) -> None:
    path = lab.write(f'interval = "60s"\nnotify = ["{lab.receiver.url()}"]')
    lab.proxy.handler.drop = lab.proxy2.handler.drop = True
    for _ in range(7):
        result = cli_(path, "watch", "--once", "--json")
        fake.t += 60
    d = json.loads(result.stdout)["domains"][0]
    assert d["state"] == "failing"
    assert d["command"].startswith(f"mxflip failover {lab.domain} --now --plan-hash ")
    plan_hash = d["command"].rsplit(" ", 1)[1]
    dry = cli_(path, "failover", lab.domain, "--now", "--dry-run", "--json")
    assert json.loads(dry.stdout)["plan"]["hash"] == plan_hash
    failing = [a for a in lab.receiver.alerts() if "failing" in a["title"]]
    assert len(failing) == 1  # one alert per state change, not one per round
    assert plan_hash in failing[0]["message"]
    assert lab.served() == sorted(lab.primary)


def test_both_paths_failing_is_the_mailbox_never_a_switch(lab: WatchLab) -> None:
    clock = FakeClock()
    config = lab.config('interval = "60s"\non_primary_failing = "failover"\nfailing_rounds = 1')
    lab.proxy.handler.drop = lab.proxy2.handler.drop = lab.backup.handler.drop = True
    w = Watcher(config, clock=clock)
    try:
        last = rounds(w, clock, 7)[-1].domains[0]
    finally:
        w.close()
    assert last.state == "suspect"
    assert any(k == "mailbox" for k, _, _ in last.conditions)
    assert lab.served() == sorted(lab.primary)


def test_one_bad_host_in_rotation_is_a_drain_proposal(lab: WatchLab) -> None:
    clock = FakeClock()
    config = lab.config('interval = "60s"\non_primary_failing = "failover"\nfailing_rounds = 1')
    lab.proxy2.handler.drop = True  # mx2 takes mail and never delivers it
    w = Watcher(config, clock=clock)
    try:
        reports = rounds(w, clock, 9)
    finally:
        w.close()
    last = reports[-1]
    assert last.domains[0].failing_hosts == (f"mx2.{lab.domain}",)
    assert last.domains[0].state == "ok"
    (p,) = last.proposals
    assert (p.kind, p.target) == ("drain", f"mx2.{lab.domain}")
    assert lab.served() == sorted(lab.primary)


def test_a_down_or_failing_channel_never_blocks_a_round(lab: WatchLab) -> None:
    clock = FakeClock()
    lab.receiver.mode = "error"
    config = lab.config(
        f'interval = "60s"\ntimeout = "2s"\nnotify = ["{lab.receiver.url()}", '
        f'"json://127.0.0.1:1/closed"]\nheartbeat_url = "http://127.0.0.1:{lab.receiver.port}/hb"'
    )
    from mxflip.watch.metrics import WatchMetrics

    metrics = WatchMetrics(config)
    w = Watcher(config, clock=clock, hooks=metrics.hooks())
    metrics.attach(w)
    lab.backup.handler.drop = True  # an alert: backup path failing → mailbox? no: readiness ok
    try:
        lab.set_mx(["10 stray.example.net."])  # drift: neither profile
        report = asyncio.run(w.round())
    finally:
        w.close()
    assert any(k == "drift" for k, _, _ in report.domains[0].conditions)
    text = metrics.exposition().decode()
    assert 'mxflip_watch_notification_failures_total{channel="json://…"}' in text
    assert "mxflip_watch_heartbeat_failures_total 1.0" in text  # the receiver answers 500
    saved = LocalWatchStore(lab.folder / "state" / "watch.json").load()
    assert saved.outbox, "undelivered alerts are kept for the next round"


def test_failback_is_proposed_once_the_proxy_recovers_and_approved_back_to_ok(
    lab: WatchLab, fake: FakeClock
) -> None:
    path = lab.write(
        'interval = "60s"\non_primary_failing = "failover"\nfailing_rounds = 1\n'
        'recovered_rounds = 2\ncooldown = "1s"'
    )
    config = load_config(path)
    hold(lab)
    w = Watcher(config, clock=fake)
    try:
        rounds(w, fake, 6, step=60)
        assert lab.served() == sorted(lab.backup_set)
        lab.proxy.handler.drop = lab.proxy2.handler.drop = False  # the proxy is fixed
        reports = rounds(w, fake, 4, step=60)
    finally:
        w.close()
    states = [r.domains[0].state for r in reports]
    assert "recovering" in states, states
    (p,) = reports[-1].proposals
    assert (p.kind, p.target) == ("failback", lab.domain)
    assert lab.served() == sorted(lab.backup_set)  # never automatic
    approved = cli_(path, "approve", p.id)
    assert approved.exit_code == 0, approved.output
    assert lab.served() == sorted(lab.primary)
    w = Watcher(load_config(path), clock=fake)
    try:
        fake.t += 60
        assert asyncio.run(w.round()).domains[0].state == "ok"
    finally:
        w.close()


def test_every_host_each_round(lab: WatchLab) -> None:
    clock = FakeClock()
    config = lab.config('interval = "60s"\ncanary_every_host = true')
    lab.proxy2.handler.drop = True
    w = Watcher(config, clock=clock)
    try:
        last = rounds(w, clock, 5)[-1].domains[0]
    finally:
        w.close()
    hosts = set(
        LocalWatchStore(lab.folder / "state" / "watch.json")
        .load()
        .domains[lab.domain]
        .tokens.values()
    )
    assert {f"mx1.{lab.domain}", f"mx2.{lab.domain}"} <= hosts
    assert last.failing_hosts == (f"mx2.{lab.domain}",)


def test_watch_puts_back_the_signal_handlers_it_found(lab: WatchLab, fake: FakeClock) -> None:
    """The watcher's stop/reload handlers live as long as it does: a caller running the
    command in its own process (an embedding program, these tests) gets its own back."""
    import signal

    mine = {s: (lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    before = {s: signal.signal(s, h) for s, h in mine.items()}
    try:
        result = cli_(lab.write('interval = "60s"'), "watch", "--once", "--json")
        assert json.loads(result.stdout)["command"] == "watch"
        assert {s: signal.getsignal(s) for s in mine} == mine
    finally:
        for s, h in before.items():
            signal.signal(s, h)
