"""The failover engine against a real BIND9 through the RFC 2136 adapter, with a fake
clock: full failover → verify → failback, pre-lowering and its waits, --now, automatic
rollback when verification fails, TTL restore, drain/restore, prepare/finalize, refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mxflip.engine import Engine, PlanRefused, switch_readiness
from mxflip.plan import PlanOptions
from mxflip.records import RRset
from mxflip.rollout import Event
from tests.support.bind import BindServer, zone_text
from tests.support.engine import (
    BACKUP,
    PRIMARY,
    FakeClock,
    domain_names,
    engine_config,
    journal_of,
    live,
    not_ready,
    ready,
    seed,
)

pytestmark = pytest.mark.real_server


@pytest.fixture(scope="module")
def ebind(engine_bind: BindServer) -> BindServer:
    # The worker's shared engine BIND9 (root conftest): this module's tests use fresh names.
    return engine_bind


def make_engine(
    ebind: BindServer, tmp_path: Path, names: list[str], **kw: object
) -> tuple[Engine, FakeClock, list[Event]]:
    config = engine_config(ebind, tmp_path, names, **kw)  # type: ignore[arg-type]
    clock = FakeClock()
    events: list[Event] = []
    engine = Engine(config, journal_of(config), clock=clock, readiness=ready, events=events.append)
    return engine, clock, events


def domains(engine: Engine) -> list:  # type: ignore[type-arg]
    return list(engine.config.domains.values())


def rr(name: str, records: list[str], ttl: int) -> RRset:
    return RRset.of(name, ttl, records)


def test_full_failover_verify_failback(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(4)
    seed(ebind, names)
    engine, clock, events = make_engine(ebind, tmp_path, names)

    plan = asyncio.run(
        engine.plan_switch("failover", domains(engine), PlanOptions(reason="proxy down"))
    )
    assert [p.name for p in plan.phases] == ["prelower", "prelower-wait", "switch", "verify"]
    assert not plan.blockers and len(plan.changes) == 4
    result = asyncio.run(engine.execute(plan))
    assert result.outcome == "done"
    assert set(result.states.values()) == {"after"}
    assert live(ebind, names) == {n: rr(n, BACKUP, 60) for n in names}
    # The old TTL was waited out on the injected clock, never on real time.
    assert clock.slept == pytest.approx(3600)
    assert any(e.kind == "countdown" and e.data["remaining"] == 3600 for e in events)

    back = asyncio.run(engine.plan_switch("failback", domains(engine), PlanOptions()))
    # Already at failover_ttl: no pre-lowering needed for the way back.
    assert [p.name for p in back.phases] == ["switch", "verify"]
    assert asyncio.run(engine.execute(back)).outcome == "done"
    assert live(ebind, names) == {n: rr(n, PRIMARY, 60) for n in names}

    ops = engine.journal.read().operations
    assert [(o.kind, o.outcome) for o in ops] == [("failover", "done"), ("failback", "done")]
    assert ops[0].intent["reason"] == "proxy down"
    assert [p["phase"] for p in ops[0].phases if p["status"] == "done"] == [
        "prelower",
        "prelower-wait",
        "switch",
        "verify",
    ]


def test_now_skips_prelowering_and_says_until_when(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(2)
    seed(ebind, names)
    engine, clock, _ = make_engine(ebind, tmp_path, names)
    plan = asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions(now=True)))
    assert all(s.prelower is None for s in plan.steps)
    result = asyncio.run(engine.execute(plan))
    assert result.outcome == "done"
    assert clock.slept < 60  # only verification back-off, no TTL wait
    assert result.old_answers_until == pytest.approx(result.started + 3600, abs=60)


def test_dry_plan_changes_nothing_and_hash_is_stable(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(2)
    seeded = seed(ebind, names)
    engine, _, _ = make_engine(ebind, tmp_path, names)
    first = asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions()))
    second = asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions()))
    assert first.hash == second.hash and len(first.hash) == 12
    assert live(ebind, names) == seeded
    assert engine.journal.read().operations == []
    now = asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions(now=True)))
    assert now.hash != first.hash


def test_domains_already_on_target_are_noops(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(2)
    seed(ebind, names[:1])
    seed(ebind, names[1:], BACKUP, 60)
    engine, _, _ = make_engine(ebind, tmp_path, names)
    plan = asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions(now=True)))
    assert [s.noop for s in plan.steps] == [False, True]
    asyncio.run(engine.execute(plan))
    again = asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions(now=True)))
    assert not again.changes
    assert asyncio.run(engine.execute(again)).outcome == "noop"


def test_verification_failure_rolls_back(ebind: BindServer, tmp_path: Path) -> None:
    """A second nameserver that never gets the update: verification times out, the
    change is rolled back to the exact before-state."""
    names = domain_names(2, ("engine.test.",))
    seeded = seed(ebind, names)
    stale = BindServer(
        tmp_path / "stale", {"engine.test.": zone_text("engine.test.")}, allow_update=False
    ).start()
    try:
        extra = {"defaults": {"nameservers": [ebind.address, stale.address]}}
        engine, _, events = make_engine(ebind, tmp_path, names, extra=_merge_defaults(extra))
        plan = asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions(now=True)))
        result = asyncio.run(engine.execute(plan))
    finally:
        stale.stop()
    assert result.outcome == "rolled-back"
    assert "do not serve the new set" in (result.error or "")
    assert live(ebind, names) == seeded
    assert set(result.states.values()) == {"before"}
    op = engine.journal.read().operations[-1]
    assert op.outcome == "rolled-back"
    assert any(e.kind == "rollback" for e in events)


def test_verification_failure_without_auto_rollback_fails(
    ebind: BindServer, tmp_path: Path
) -> None:
    from mxflip.rollout import VerificationFailed

    names = domain_names(1, ("engine.test.",))
    seed(ebind, names)
    engine, _, _ = make_engine(ebind, tmp_path, names)

    async def never(batch, recursive, timeout):  # type: ignore[no-untyped-def]
        from mxflip.dnsview import ServerAnswer

        return [[ServerAnswer("ns", error="injected: no answer")] for _ in batch]

    engine.query = never
    plan = asyncio.run(
        engine.plan_switch("failover", domains(engine), PlanOptions(now=True, auto_rollback=False))
    )
    with pytest.raises(VerificationFailed):
        asyncio.run(engine.execute(plan))
    assert live(ebind, names) == {n: rr(n, BACKUP, 60) for n in names}
    assert engine.journal.read().operations[-1].outcome == "failed"


def test_reprobe_failure_rolls_back(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(1)
    seeded = seed(ebind, names)
    engine, _, _ = make_engine(ebind, tmp_path, names)
    plan = asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions(now=True)))
    engine.readiness = not_ready  # ready when planned, broken after the switch
    result = asyncio.run(engine.execute(plan))
    assert result.outcome == "rolled-back"
    assert "re-probe" in (result.error or "")
    assert live(ebind, names) == seeded


def test_restore_ttl_after(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(2)
    seed(ebind, names)
    engine, clock, _ = make_engine(ebind, tmp_path, names)
    plan = asyncio.run(
        engine.plan_switch(
            "failover", domains(engine), PlanOptions(now=True, restore_ttl_after=900)
        )
    )
    assert [p.name for p in plan.phases][-2:] == ["restore-wait", "restore-ttl"]
    result = asyncio.run(engine.execute(plan))
    assert result.outcome == "done"
    assert set(result.states.values()) == {"ttl-restored"}
    assert live(ebind, names) == {n: rr(n, BACKUP, 3600) for n in names}
    assert clock.slept >= 900


def test_refuses_unready_target(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(1)
    seeded = seed(ebind, names)
    engine, _, _ = make_engine(ebind, tmp_path, names)
    engine.readiness = not_ready
    plan = asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions()))
    assert [f.code for _, f in plan.blockers] == ["target-not-ready"]
    with pytest.raises(PlanRefused, match="not ready: connection refused"):
        asyncio.run(engine.execute(plan))
    forced = asyncio.run(
        engine.plan_switch(
            "failover", domains(engine), PlanOptions(force=True, reason="drill", now=True)
        )
    )
    assert not forced.blockers and [f.code for _, f in forced.forced] == ["target-not-ready"]
    assert live(ebind, names) == seeded


def test_refuses_without_readiness_unless_skipped(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(1)
    seed(ebind, names)
    engine, _, _ = make_engine(ebind, tmp_path, names)
    engine.readiness = None
    plan = asyncio.run(
        engine.plan_switch("failover", domains(engine), PlanOptions(force=True, reason="x"))
    )
    # Unknown is never "ready", and --force does not override it.
    assert [f.code for _, f in plan.blockers] == ["readiness-unavailable"]
    skipped = asyncio.run(
        engine.plan_switch(
            "failover", domains(engine), PlanOptions(skip_readiness=True, reason="emergency")
        )
    )
    assert not skipped.blockers
    assert [f.code for s in skipped.steps for f in s.findings] == ["readiness-skipped"]


def test_refuses_unexpected_live_records(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(1)
    seed(ebind, names, ["10 elsewhere.example.net."])
    engine, _, _ = make_engine(ebind, tmp_path, names)
    plan = asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions()))
    assert [f.code for _, f in plan.blockers] == ["unexpected-live"]


def test_stale_plan_is_refused_by_the_provider(ebind: BindServer, tmp_path: Path) -> None:
    from mxflip.errors import StaleExpectationError

    names = domain_names(1)
    seed(ebind, names)
    engine, _, _ = make_engine(ebind, tmp_path, names)
    plan = asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions(now=True)))
    seed(ebind, names, ["10 mx1.proxy.test."])  # someone else changes it after planning
    with pytest.raises(StaleExpectationError):
        asyncio.run(engine.execute(plan))
    assert live(ebind, names)[names[0]] == rr(names[0], ["10 mx1.proxy.test."], 3600)


def test_drain_and_restore(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(3)
    seed(ebind, names[:2])
    seed(ebind, names[2:], ["10 mx1.proxy.test."])  # mx1 only: draining it would empty it
    engine, _, _ = make_engine(ebind, tmp_path, names)

    plan = asyncio.run(engine.plan_drain("mx1.proxy.test", PlanOptions(now=True)))
    assert [f.code for d, f in plan.blockers] == ["empty-target"]
    with pytest.raises(PlanRefused):
        asyncio.run(engine.execute(plan))
    # --force cannot override an empty set.
    forced = asyncio.run(
        engine.plan_drain("mx1.proxy.test", PlanOptions(now=True, force=True, reason="x"))
    )
    assert [f.code for d, f in forced.blockers] == ["empty-target"]

    plan = asyncio.run(engine.plan_drain("mx2.proxy.test", PlanOptions(now=True)))
    assert {s.name for s in plan.changes} == set(names[:2])
    assert asyncio.run(engine.execute(plan)).outcome == "done"
    assert live(ebind, names) == {
        names[0]: rr(names[0], ["10 mx1.proxy.test."], 60),
        names[1]: rr(names[1], ["10 mx1.proxy.test."], 60),
        names[2]: rr(names[2], ["10 mx1.proxy.test."], 3600),
    }
    plan = asyncio.run(engine.plan_drain("mx2.proxy.test", PlanOptions(now=True), restore=True))
    # The third domain never had mx2 live either; its profile lists it, so it gets it too.
    assert {s.name for s in plan.changes} == set(names)
    assert asyncio.run(engine.execute(plan)).outcome == "done"
    assert live(ebind, names) == {n: rr(n, PRIMARY, 60) for n in names}


def test_drain_rechecks_remaining_hosts(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(1)
    seed(ebind, names)
    engine, _, _ = make_engine(ebind, tmp_path, names)
    seen: dict[str, RRset] = {}

    async def spy(domains, targets):  # type: ignore[no-untyped-def]
        seen.update(targets)
        return await not_ready(domains, targets)

    engine.readiness = spy
    plan = asyncio.run(engine.plan_drain("mx1.proxy.test", PlanOptions(now=True)))
    assert seen == {names[0]: rr(names[0], ["20 mx2.proxy.test."], 60)}
    assert [f.code for _, f in plan.blockers] == ["target-not-ready"]


def test_prepare_then_switch_ready_then_finalize(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(2)
    seed(ebind, names)
    engine, clock, _ = make_engine(ebind, tmp_path, names)
    statuses = asyncio.run(engine.observe(domains(engine)))
    view = engine.journal.read()
    assert not any(switch_readiness(s, view, clock.now()).switch_ready for s in statuses)

    plan = asyncio.run(engine.plan_prepare(domains(engine), PlanOptions()))
    assert asyncio.run(engine.execute(plan)).outcome == "done"
    assert live(ebind, names) == {n: rr(n, PRIMARY, 60) for n in names}
    statuses = asyncio.run(engine.observe(domains(engine)))
    flags = [switch_readiness(s, engine.journal.read(), clock.now()) for s in statuses]
    assert all(f.lowered_ttl and not f.switch_ready for f in flags)
    assert flags[0].ready_at == pytest.approx(clock.now() + 3600, abs=5)
    clock.sleep(3601)
    flags = [switch_readiness(s, engine.journal.read(), clock.now()) for s in statuses]
    assert all(f.switch_ready for f in flags)
    # Already low: a failover now needs no pre-lowering wait.
    switch = asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions()))
    assert "prelower-wait" not in [p.name for p in switch.phases]

    fin = asyncio.run(engine.plan_finalize(domains(engine), PlanOptions()))
    assert asyncio.run(engine.execute(fin)).outcome == "done"
    assert live(ebind, names) == {n: rr(n, PRIMARY, 3600) for n in names}


def test_rollback_restores_exact_before_state(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(3)
    seeded = seed(ebind, names, PRIMARY, 1800)
    engine, _, _ = make_engine(ebind, tmp_path, names)
    asyncio.run(
        engine.execute(asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions())))
    )
    plan = asyncio.run(engine.plan_rollback(None, PlanOptions()))
    assert plan.kind == "rollback" and len(plan.changes) == 3
    assert asyncio.run(engine.execute(plan)).outcome == "done"
    assert live(ebind, names) == seeded  # records and TTL 1800
    ops = engine.journal.read().operations
    assert ops[0].outcome == "rolled-back" and ops[1].kind == "rollback"
    # Nothing left to roll back.
    from mxflip.errors import UsageError

    with pytest.raises(UsageError):
        asyncio.run(engine.plan_rollback(None, PlanOptions()))


def test_rollback_refuses_records_changed_since(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(1)
    seed(ebind, names)
    engine, _, _ = make_engine(ebind, tmp_path, names)
    op = asyncio.run(
        engine.execute(
            asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions(now=True)))
        )
    )
    seed(ebind, names, ["10 third.example.net."])
    plan = asyncio.run(engine.plan_rollback(op.op_id, PlanOptions()))
    assert [f.code for _, f in plan.blockers] == ["changed-since"]
    forced = asyncio.run(
        engine.plan_rollback(op.op_id, PlanOptions(force=True, reason="put it back"))
    )
    assert asyncio.run(engine.execute(forced)).outcome == "done"
    assert live(ebind, names)[names[0]] == rr(names[0], PRIMARY, 3600)


def test_journal_never_holds_the_tsig_secret(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(1)
    seed(ebind, names)
    engine, _, events = make_engine(ebind, tmp_path, names)
    asyncio.run(
        engine.execute(
            asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions(now=True)))
        )
    )
    text = Path(str(engine.journal.path)).read_text()
    assert ebind.secret not in text
    assert ebind.secret not in repr(events)
    assert (Path(str(engine.journal.path)).stat().st_mode & 0o777) == 0o600


def _merge_defaults(extra: dict[str, dict[str, object]]) -> dict[str, object]:
    """engine_config replaces whole sections; rebuild [defaults] with the override."""
    base = {
        "provider": "lab",
        "primary": PRIMARY,
        "backup": BACKUP,
        "ttl": 3600,
        "failover_ttl": 60,
    }
    base.update(extra["defaults"])
    return {"defaults": base}


def test_refuses_a_cname_target(ebind: BindServer, tmp_path: Path) -> None:
    names = domain_names(1, ("engine.test.",))
    seed(ebind, names)
    domains_table = {
        names[0].rstrip("."): {"zone": "engine.test", "backup": ["10 alias.engine.test"]}
    }
    engine, _, _ = make_engine(ebind, tmp_path, names, extra={"domains": domains_table})
    plan = asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions(now=True)))
    assert [f.code for _, f in plan.blockers] == ["cname-target"]
    assert "alias.engine.test. is a CNAME (to mx1.proxy.test.)" in plan.blockers[0][1].message


def test_resolvers_still_caching_the_old_set_are_reported(
    ebind: BindServer, tmp_path: Path
) -> None:
    names = domain_names(1, ("engine.test.",))
    seed(ebind, names)
    label = names[0].split(".")[0]
    # A "resolver" that still hands out the old set with 1200 s left in its cache.
    cache = BindServer(
        tmp_path / "cache",
        {"engine.test.": zone_text("engine.test.", f"{label} 1200 IN MX 10 mx1.proxy.test.")},
        allow_update=False,
    ).start()
    try:
        table = {names[0].rstrip("."): {"zone": "engine.test", "resolvers": [cache.address]}}
        engine, clock, events = make_engine(ebind, tmp_path, names, extra={"domains": table})
        result = asyncio.run(
            engine.execute(
                asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions(now=True)))
            )
        )
    finally:
        cache.stop()
    assert result.outcome == "done"
    (cached,) = result.cached
    assert cached.server == cache.address and cached.records == ("10 mx1.proxy.test.",)
    assert cached.until == pytest.approx(clock.now() + 1200, abs=5)
    assert any(e.kind == "cached" for e in events)


def test_switch_ready_after_a_prelowered_failover(ebind: BindServer, tmp_path: Path) -> None:
    """After a pre-lowered switch the new set replaced one with the short TTL: the way
    back is switch-ready once that short TTL has passed."""
    names = domain_names(1)
    seed(ebind, names)
    engine, clock, _ = make_engine(ebind, tmp_path, names)
    asyncio.run(
        engine.execute(asyncio.run(engine.plan_switch("failover", domains(engine), PlanOptions())))
    )
    (status,) = asyncio.run(engine.observe(domains(engine)))
    flags = switch_readiness(status, engine.journal.read(), clock.now())
    assert flags.lowered_ttl and flags.ready_at == pytest.approx(clock.now() + 60, abs=5)
    clock.sleep(61)
    assert switch_readiness(status, engine.journal.read(), clock.now()).switch_ready
