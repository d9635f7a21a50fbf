"""The failover engine end to end against Knot DNS and PowerDNS (gsqlite3), not only BIND:
planned failover (pre-lowered, old TTL waited out on a fake clock), verification on the
real server, failback, and the "old answers may stay cached until" time."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from mxflip.engine import Engine
from mxflip.plan import PlanOptions
from mxflip.records import RRset
from mxflip.rollout import Event
from tests.support.bind import zone_text
from tests.support.cli import run
from tests.support.engine import (
    BACKUP,
    PRIMARY,
    ZONES,
    FakeClock,
    LabServer,
    domain_names,
    engine_config,
    journal_of,
    live,
    ready,
    seed,
)
from tests.support.knot import KnotServer
from tests.support.pdns import PowerDNSServer

pytestmark = pytest.mark.real_server


@pytest.fixture(scope="module", params=["knot", "pdns"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabServer]:
    zones = {z: zone_text(z) for z in ZONES}
    folder = tmp_path_factory.mktemp(f"engine-{request.param}")
    started: KnotServer | PowerDNSServer = (
        KnotServer(folder, zones).start()
        if request.param == "knot"
        else PowerDNSServer(folder, zones).start()
    )
    yield started
    started.stop()


def make_engine(
    server: LabServer, tmp_path: Path, names: list[str]
) -> tuple[Engine, FakeClock, list[Event]]:
    config = engine_config(server, tmp_path, names)
    clock = FakeClock()
    events: list[Event] = []
    engine = Engine(config, journal_of(config), clock=clock, readiness=ready, events=events.append)
    return engine, clock, events


def test_planned_failover_and_failback(server: LabServer, tmp_path: Path) -> None:
    names = domain_names(4)
    seed(server, names)
    engine, clock, events = make_engine(server, tmp_path, names)
    doms = list(engine.config.domains.values())

    plan = asyncio.run(engine.plan_switch("failover", doms, PlanOptions(reason="proxy down")))
    assert [p.name for p in plan.phases] == ["prelower", "prelower-wait", "switch", "verify"]
    result = asyncio.run(engine.execute(plan))
    assert result.outcome == "done"
    assert live(server, names) == {n: RRset.of(n, 60, BACKUP) for n in names}
    assert clock.slept == pytest.approx(3600, abs=30)
    # pre-lowered: caches hold the lowered set (TTL 60) for up to a minute after the switch
    assert result.old_answers_until is not None
    assert result.old_answers_until == float(result.old_answers_until)
    assert result.old_answers_until.is_integer()
    switched = next(
        e for e in events if e.kind == "info" and e.message == "old answers may stay cached"
    )
    assert switched.data["until"] == result.old_answers_until
    assert result.started + 3600 + 60 < result.old_answers_until <= result.finished + 62

    back = asyncio.run(engine.plan_switch("failback", doms, PlanOptions(now=True)))
    back_result = asyncio.run(engine.execute(back))
    assert back_result.outcome == "done"
    assert live(server, names) == {n: RRset.of(n, 60, PRIMARY) for n in names}
    assert back_result.old_answers_until is not None
    assert back_result.old_answers_until >= math.ceil(back_result.started + 60) + 1
    ops = engine.journal.read().operations
    assert [(o.kind, o.outcome) for o in ops] == [("failover", "done"), ("failback", "done")]


def test_cached_until_rounds_up_and_adds_a_second(tmp_path: Path) -> None:
    from mxflip.config import parse_config
    from mxflip.plan import Step
    from mxflip.rollout import cached_until

    (tmp_path / "z.zone").write_text(zone_text("example.test."))
    config = parse_config(
        {
            "providers": {"p": {"type": "zonefile", "file": "z.zone"}},
            "defaults": {"provider": "p", "zone": "example.test", "primary": PRIMARY},
            "domains": {"a.example.test": {"backup": BACKUP}},
        },
        path=tmp_path / "mxflip.toml",
    )
    d = next(iter(config.domains.values()))
    before = RRset.of(d.name, 300, PRIMARY)
    lowered = before.with_ttl(60)
    after = RRset.of(d.name, 60, BACKUP)
    unlowered = Step(d, before, after)
    prelowered = Step(d, before, after, prelower=lowered)
    assert cached_until(1000.0, [unlowered]) == 1301.0  # exact second: +1
    assert cached_until(1000.2, [unlowered]) == 1302.0  # 1300.2 rounds up to 1301, +1
    assert cached_until(1000.2, [prelowered]) == 1062.0  # the lowered TTL is what caches hold
    assert cached_until(1000.0, [Step(d, None, after)]) is None


@pytest.fixture
def cli_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    from tests.support.cli import inject

    return inject(monkeypatch)


def test_failover_and_failback_through_the_cli(
    server: LabServer, tmp_path: Path, cli_clock: FakeClock
) -> None:
    """``mxflip failover --yes --json`` then ``failback``: records served by the real
    server, and the cached-until time in the JSON document and the human output."""
    import json
    import re

    names = domain_names(2)
    seed(server, names)
    text = (
        f'[providers.lab]\ntype = "rfc2136"\nserver = "{server.address}"\n'
        f'tsig_key_file = "{server.key_file}"\n\n'
        f'[defaults]\nprovider = "lab"\nprimary = {json.dumps(PRIMARY)}\n'
        f'backup = {json.dumps(BACKUP)}\nnameservers = ["{server.address}"]\n\n'
        f'[journal]\npath = "{tmp_path / "journal.jsonl"}"\n'
    )
    for n in names:
        text += f'\n[domains."{n.rstrip(".")}"]\nzone = "{n.split(".", 1)[1]}"\n'
    path = tmp_path / "mxflip.toml"
    path.write_text(text)

    ran = run(path, "failover", "--all", "--yes", "--json")
    assert ran.exit_code == 0, ran.output
    doc = json.loads(ran.stdout)
    assert doc["operation"]["outcome"] == "done"
    until = doc["operation"]["old_answers_until"]
    assert until is not None and until > doc["operation"]["started"]
    assert live(server, names) == {n: RRset.of(n, 60, BACKUP) for n in names}

    back = run(path, "failback", "--all", "--yes")
    assert back.exit_code == 0, back.output
    [line] = [x for x in back.stdout.splitlines() if x.startswith("Old answers may stay")]
    assert re.fullmatch(
        r"Old answers may stay cached until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\.", line
    )
    assert live(server, names) == {n: RRset.of(n, 60, PRIMARY) for n in names}


def test_cached_until_holds_at_a_real_caching_resolver(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The promise checked where it matters: Unbound caches the old set just before the
    switch; after it, Unbound still hands out the old set, and its remaining TTL ends no
    later than the "old answers may stay cached until" time. Real clock, no waiting."""
    import time
    from datetime import datetime

    import dns.message
    import dns.query

    from mxflip.render.common import when
    from mxflip.rollout import SystemClock
    from tests.support.engine import start_engine_bind
    from tests.support.unbound import UnboundServer

    folder = tmp_path_factory.mktemp("cached-until")
    bind = start_engine_bind(folder / "bind")
    unbound = None
    try:
        unbound = UnboundServer(
            folder / "unbound", {z: bind.address for z in ZONES}, cache=True
        ).start()
        names = domain_names(2)
        seed(bind, names, ttl=60)  # already at failover_ttl: a --now switch, no waiting

        def ask(name: str) -> tuple[set[str], int]:
            q = dns.message.make_query(name, "MX")
            r = dns.query.udp(q, "127.0.0.1", port=unbound.port, timeout=3) if unbound else None
            assert r is not None and r.answer
            return {rd.to_text() for rd in r.answer[0]}, r.answer[0].ttl

        for n in names:
            assert ask(n)[0] == set(PRIMARY)  # now cached for 60 s
        config = engine_config(bind, tmp_path, names)
        engine = Engine(config, journal_of(config), clock=SystemClock(), readiness=ready)
        doms = list(engine.config.domains.values())
        result = asyncio.run(
            engine.execute(asyncio.run(engine.plan_switch("failover", doms, PlanOptions(now=True))))
        )
        assert result.outcome == "done" and result.old_answers_until is not None
        # what the user is told (whole seconds, as printed and in --json)
        shown = datetime.fromisoformat(when(result.old_answers_until).replace("Z", "+00:00"))
        for n in names:
            asked = time.time()
            records, remaining = ask(n)
            assert records == set(PRIMARY)  # the resolver still hands out the old set
            # Unbound serves an answer through the last whole second of its TTL
            served_until = math.floor(asked) + remaining + 1
            assert served_until <= shown.timestamp()
    finally:
        if unbound is not None:
            unbound.stop()
        bind.stop()
