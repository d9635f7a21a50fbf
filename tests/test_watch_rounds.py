"""``mxflip watch`` rounds end to end on loopback: BIND9, an inbound proxy that passes,
delays or silently holds mail, a direct backup relay, a Maildir, and a loopback receiver
for ``json://`` alerts and the heartbeat. Time is a fake clock moved a round at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from mxflip.journal import Journal
from mxflip.watch.rounds import Watcher
from mxflip.watch.store import LocalWatchStore
from tests.support.bind import BindServer
from tests.support.canary_lab import FakeClock, ca
from tests.support.watch_lab import WatchLab, make_watch_lab

__all__ = ["ca"]


@pytest.fixture
def lab(tmp_path: Path, bind: BindServer, ca: trustme.CA) -> Iterator[WatchLab]:
    yield from make_watch_lab(tmp_path, bind, ca)


def rounds(w: Watcher, clock: FakeClock, n: int, step: float = 60.0) -> list:  # type: ignore[type-arg]
    out = []
    for _ in range(n):
        out.append(w.round())
        clock.t += step
    return out


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
    assert any("automatic failover" in t for t in titles), titles
    assert any(r.path == "/hb" for r in lab.receiver.requests)
    saved = LocalWatchStore(config.journal.path.with_name("watch.json")).load()  # type: ignore[union-attr]
    assert saved.domains[lab.domain].state in ("switched", "recovering")
