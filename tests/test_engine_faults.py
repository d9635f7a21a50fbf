"""Fault injection: the operation fails or is "killed" at every phase boundary, and the
provider fails on its Nth write or wait; afterwards ``rollback`` or ``resume`` leaves every
zone exactly in its before- or after-state (never a mixture), and the journal says which.

The scenario is a failover of three domains in two zones with pre-lowering and a TTL
restore, so that every boundary of every phase is crossed. A "crash" is a BaseException
nothing catches (nothing more is journalled, as with SIGKILL); real kills are in
test_engine_kill.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mxflip.config import Config
from mxflip.engine import Engine
from mxflip.errors import MxflipError, ProviderError, UsageError
from mxflip.plan import PlanOptions
from mxflip.provider import Provider
from mxflip.records import RRset
from mxflip.rollout import BOUNDARIES, default_query
from mxflip.state.base import JournalStore
from tests.support.bind import BindServer
from tests.support.engine import (
    BACKUP,
    PRIMARY,
    Crash,
    FailingQuery,
    Failpoints,
    FakeClock,
    FlakyProvider,
    domain_names,
    engine_config,
    lab_provider,
    live,
    ready,
    seed,
)
from tests.support.engine import journal_of as local_journal_of
from tests.support.moto_s3 import s3_environment, state_config
from tests.support.s3double import (
    S3Double,
    s3_double_fixture,  # noqa: F401  (the s3_double fixture)
)

JournalFactory = Callable[[Config], JournalStore]

pytestmark = pytest.mark.real_server

# The matrix's waits (the old TTL before the switch, the restore delay after it) pass on
# the injected clock in one-second countdown ticks, each a turn of the event loop: with
# a 3600 s TTL and a 600 s delay that was ~3,000 ticks per case, a tenth of the module's
# CPU. What the cases assert does not depend on the lengths, only on TTL > failover TTL
# (so that pre-lowering and the restore happen); the 3600 s wait is kept where its
# length is the point (test_resume_waits_only_what_remains_of_the_old_ttl).
TTL = 300
RESTORE_AFTER = 120.0


@pytest.fixture(scope="module")
def fbind(engine_bind: BindServer) -> BindServer:
    # The worker's shared engine BIND9 (root conftest): this module's tests use fresh names.
    return engine_bind


@pytest.fixture(scope="module")
def s3_client(s3_double: S3Double, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One botocore client for the module's S3 cases: it holds the endpoint, the fake
    keys (read when it is built) and the HTTP connection pool, no state of a backend's or
    a bucket's (each case has its own bucket); building one per case cost more CPU than
    most of a case's requests."""
    from mxflip.state.s3 import _make_client

    with pytest.MonkeyPatch.context() as monkeypatch:
        s3_environment(monkeypatch, tmp_path_factory.mktemp("s3-client"))
        return _make_client(state_config(s3_double.url, "unused"))


@pytest.fixture(params=["local", "s3"])
def journal_of(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> JournalFactory:
    """The journal each engine gets: the local files, or the S3 backend (a fresh backend
    per call, as a new command on another machine would have) in a fresh bucket.
    The backends share the module's botocore client (``s3_client``).

    The bucket is on the S3 double (tests/support/s3double.py), not moto: mxflip's real
    backend and botocore run end to end over HTTP, and the double answers as moto does
    for everything the backend uses (tests/test_s3double_contract.py), at a fraction of
    moto's server CPU (~4,700 requests here). What is tested is the engine's handling of
    a failed write; conditional writes racing between processes are tested on moto."""
    if request.param == "local":
        return local_journal_of
    from mxflip.state.s3 import S3Backend

    s3_environment(monkeypatch, tmp_path)
    double: S3Double = request.getfixturevalue("s3_double")
    bucket = f"mxflip-{uuid.uuid4().hex[:12]}"
    double.create_bucket(bucket)
    client = request.getfixturevalue("s3_client")

    def factory(config: Config) -> JournalStore:
        return S3Backend(
            state_config(double.url, bucket),
            home=tmp_path / "home",
            sleep=lambda s: None,
            client=client,
        )

    return factory


@dataclass
class Fault:
    """One injected fault: a failpoint, a failing provider call, or failing DNS checks."""

    id: str
    boundary: str | None = None
    error: str = "error"  # error | crash | interrupt
    provider_kind: str | None = None  # apply | wait
    nth: int = 0
    land: bool = False
    verify_fails: bool = False

    def failpoints(self) -> Failpoints:
        if self.boundary is None:
            return Failpoints()
        error: BaseException = {
            "error": ProviderError("injected failure"),
            "crash": Crash(),
            "interrupt": KeyboardInterrupt(),
        }[self.error]
        return Failpoints(self.boundary, error)

    def provider(self, inner: Provider) -> Provider:
        if self.provider_kind is None:
            return inner
        return FlakyProvider(inner, fail_on=self.nth, kinds=(self.provider_kind,), land=self.land)


def all_faults() -> list[Fault]:
    faults = []
    for boundary in BOUNDARIES:
        for error in ("error", "crash"):
            faults.append(Fault(f"{error}@{boundary}", boundary=boundary, error=error))
    for boundary in ("prelower-wait:done", "switch:after-apply", "verify:before"):
        faults.append(Fault(f"interrupt@{boundary}", boundary=boundary, error="interrupt"))
    # Two zones: applies 1-2 pre-lower, 3-4 switch, 5-6 raise the TTL; the same for waits.
    for nth in range(1, 7):
        faults.append(Fault(f"apply#{nth}", provider_kind="apply", nth=nth))
        faults.append(Fault(f"apply#{nth}-landed", provider_kind="apply", nth=nth, land=True))
        faults.append(Fault(f"wait#{nth}", provider_kind="wait", nth=nth))
    faults.append(Fault("verify-dns-fails", verify_fails=True))
    # Verification fails and then the automatic rollback's first write fails too.
    faults.append(Fault("verify+rollback-apply", verify_fails=True, provider_kind="apply", nth=5))
    faults.append(
        Fault("verify+rollback-landed", verify_fails=True, provider_kind="apply", nth=6, land=True)
    )
    return faults


FAULTS = all_faults()


def states_of(
    config: Config, seeded: dict[str, RRset], got: dict[str, RRset | None]
) -> dict[str, str]:
    """Classify each live set among the operation's states."""
    out = {}
    for name, rrset in got.items():
        d = config.domains[name]
        before = seeded[name]
        states = {
            "before": before,
            "prelowered": before.with_ttl(d.failover_ttl),
            "after": RRset(name, d.failover_ttl, d.backup),
            "ttl-restored": RRset(name, d.ttl, d.backup),
        }
        out[name] = next((k for k, v in states.items() if v == rrset), f"unknown: {rrset}")
    return out


def run_faulted(
    bind: BindServer,
    tmp_path: Path,
    fault: Fault,
    journal_of: JournalFactory = local_journal_of,
) -> tuple[Config, dict[str, RRset], FakeClock, Failpoints]:
    names = domain_names(3)
    seeded = seed(bind, names, ttl=TTL)
    config = engine_config(bind, tmp_path, names, ttl=TTL)
    clock = FakeClock()
    points = fault.failpoints()
    provider = fault.provider(lab_provider(bind))
    engine = Engine(
        config,
        journal_of(config),
        clock=clock,
        readiness=ready,
        providers={"lab": provider},
        failpoint=points,
        query=FailingQuery() if fault.verify_fails else default_query,
        verify_timeout=30,
    )
    plan = asyncio.run(
        engine.plan_switch(
            "failover",
            list(config.domains.values()),
            PlanOptions(reason="fault drill", restore_ttl_after=RESTORE_AFTER),
        )
    )
    assert len(plan.changes) == 3 and not plan.blockers
    with contextlib.suppress(MxflipError, Crash, KeyboardInterrupt):
        asyncio.run(engine.execute(plan))
    if fault.boundary is not None:
        assert points.error is None, f"failpoint {fault.boundary} was never reached"
    if isinstance(provider, FlakyProvider):
        assert provider.failed, f"provider call {fault.nth} was never made"
    return config, seeded, clock, points


def assert_zone_atomic(config: Config, states: dict[str, str]) -> None:
    """Within a zone the states never mix (one UPDATE per zone); every state is known."""
    by_zone: dict[str, set[str]] = {}
    for name, state in states.items():
        assert not state.startswith("unknown"), f"{name} is {state}"
        by_zone.setdefault(config.domains[name].zone, set()).add(state)
    for zone, found in by_zone.items():
        assert len(found) == 1, f"zone {zone} holds a mixture: {found}"


@pytest.mark.parametrize("settle", ["rollback", "resume"])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_fault_then_settle(
    fbind: BindServer, tmp_path: Path, fault: Fault, settle: str, journal_of: JournalFactory
) -> None:
    config, seeded, clock, _ = run_faulted(fbind, tmp_path, fault, journal_of)
    names = list(seeded)
    journal = journal_of(config)
    op = journal.read().operations[0]
    assert op.kind == "failover"

    mid = states_of(config, seeded, live(fbind, names))
    assert_zone_atomic(config, mid)
    # What the journal recorded at the failure matches what is live.
    if op.result is not None and "states" in op.result:
        assert op.result["states"] == mid

    settler = Engine(config, journal_of(config), clock=clock, readiness=ready, verify_timeout=30)
    if settle == "rollback":
        if op.outcome == "rolled-back":  # the automatic rollback already settled it
            assert set(mid.values()) == {"before"}
            return
        plan = asyncio.run(settler.plan_rollback(None, PlanOptions()))
        assert plan.parent == op.id and not plan.blockers
        result = asyncio.run(settler.execute(plan))
        assert result.outcome in ("done", "noop")
        assert live(fbind, names) == seeded
        # The settle is over (its records landed before execute returned): one read of
        # the journal serves every check below.
        after = journal.read()
        final = after.find(op.id)
        assert final is not None and final.outcome == "rolled-back"
        assert final.notes[-1]["state"] == "before"
    else:
        if op.outcome in ("done", "rolled-back"):
            with pytest.raises(UsageError, match=r"no interrupted"):
                asyncio.run(settler.plan_resume(None, PlanOptions()))
            expected = "ttl-restored" if op.outcome == "done" else "before"
            assert set(states_of(config, seeded, live(fbind, names)).values()) == {expected}
            return
        if op.outcome == "failed" and set(mid.values()) == {"before"}:
            # Nothing was changed: no zone can be half-way, so nothing blocks the next
            # change and there is nothing to resume.
            assert journal.read().unsettled() == []
            with pytest.raises(UsageError, match=r"no interrupted"):
                asyncio.run(settler.plan_resume(None, PlanOptions()))
            return
        plan = asyncio.run(settler.plan_resume(None, PlanOptions()))
        assert plan.parent == op.id and not plan.blockers
        result = asyncio.run(settler.execute(plan))
        assert result.outcome in ("done", "noop")
        final_states = states_of(config, seeded, live(fbind, names))
        assert set(final_states.values()) == {"ttl-restored"}, final_states
        after = journal.read()  # as above: one read for the checks below
        final = after.find(op.id)
        assert final is not None and final.outcome == "done"
        assert final.notes[-1]["state"] == "after"
    # A settle with nothing to write ("Nothing to do.") still settled it and said why.
    if result.outcome == "noop":
        assert final.notes[-1]["why"].startswith("nothing to do: every zone is already in")
        assert after.operations[-1].outcome == "noop"
    # Nothing is left for the next command to warn about, and the next change is allowed.
    assert after.unsettled() == []
    settler.require_settled()


def test_enough_faults_are_injected() -> None:
    assert len(FAULTS) >= 30
    assert {f.boundary for f in FAULTS if f.boundary} == set(BOUNDARIES)


def test_clean_run_crosses_every_boundary(fbind: BindServer, tmp_path: Path) -> None:
    config, seeded, _, points = run_faulted(fbind, tmp_path, Fault("none"))
    assert points.seen == list(BOUNDARIES)
    assert set(states_of(config, seeded, live(fbind, list(seeded))).values()) == {"ttl-restored"}


def test_resume_waits_only_what_remains_of_the_old_ttl(fbind: BindServer, tmp_path: Path) -> None:
    """Killed 1000 s into the 3600 s pre-lowering wait: resume waits the other 2600 s."""
    names = domain_names(2)
    seed(fbind, names)
    config = engine_config(fbind, tmp_path, names)
    clock = FakeClock()

    class Killer:
        def __init__(self) -> None:
            self.armed = True

        def now(self) -> float:
            return clock.now()

        def sleep(self, seconds: float) -> None:
            clock.sleep(seconds)
            if self.armed and clock.slept >= 1000:
                raise Crash()

    engine = Engine(config, local_journal_of(config), clock=Killer(), readiness=ready)
    plan = asyncio.run(engine.plan_switch("failover", list(config.domains.values()), PlanOptions()))
    with pytest.raises(Crash):
        asyncio.run(engine.execute(plan))
    assert set(states_of(config, seed_like(config, names), live(fbind, names)).values()) == {
        "prelowered"
    }
    before = clock.slept
    settler = Engine(config, local_journal_of(config), clock=clock, readiness=ready)
    result = asyncio.run(settler.execute(asyncio.run(settler.plan_resume(None, PlanOptions()))))
    assert result.outcome == "done"
    waited = clock.slept - before
    assert 2590 <= waited <= 2700
    assert live(fbind, names) == {n: RRset.of(n, 60, BACKUP) for n in names}


def seed_like(config: Config, names: list[str]) -> dict[str, RRset]:
    return {n: RRset.of(n, 3600, PRIMARY) for n in names}


def test_failed_operation_blocks_the_next_one_until_settled(
    fbind: BindServer, tmp_path: Path, journal_of: JournalFactory
) -> None:
    config, _, _, _ = run_faulted(
        fbind, tmp_path, Fault("x", boundary="switch:before-apply"), journal_of
    )
    view = journal_of(config).read()
    assert [o.outcome for o in view.unsettled()] == ["failed"]
