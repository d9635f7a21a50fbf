"""The changing commands through the CLI on MemoryProvider: no BIND, no SMTP. Plans,
--dry-run, --plan-hash, blocked plans, failover → history → status → rollback.

Verification is real: the engine asks the provider for nameservers, and the memory store
serves its records over DNS on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from mxflip.records import RRset
from mxflip.testing.memory import MemoryStore
from tests.support.cli import doc_of, inject, run
from tests.support.engine import BACKUP, PRIMARY, FakeClock, not_ready
from tests.support.memory import ZONE, seed, write_config

NAMES = [f"a.{ZONE}", f"b.{ZONE}"]


@pytest.fixture(autouse=True)
def injected(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return inject(monkeypatch)


@pytest.fixture
def path(memory_store: MemoryStore, tmp_path: Path) -> Path:
    seed(memory_store, NAMES)
    return write_config(tmp_path, memory_store, NAMES)


def live(store: MemoryStore) -> dict[str, RRset | None]:
    return {n: store.get(n) for n in NAMES}


SEEDED = {n: RRset.of(n, 3600, PRIMARY) for n in NAMES}
ON_BACKUP = {n: RRset.of(n, 60, BACKUP) for n in NAMES}


def test_dry_run_prints_the_plan_and_changes_nothing(path: Path, memory_store: MemoryStore) -> None:
    result = run(path, "failover", "--all", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "failover → backup" in result.stdout
    assert "Plan hash: " in result.stdout
    doc = doc_of(run(path, "failover", "--all", "--dry-run", "--json"))
    assert doc["dry_run"] is True and doc["operation"] is None
    plan = doc["plan"]
    assert [p["name"] for p in plan["phases"]] == ["prelower", "prelower-wait", "switch", "verify"]
    step = plan["steps"][0]
    assert step["before"] == {"records": sorted(PRIMARY), "ttl": 3600}
    assert step["after"] == {"records": BACKUP, "ttl": 60}
    assert live(memory_store) == SEEDED
    assert memory_store.applied == []
    assert not (path.parent / "state" / "journal.jsonl").exists()


def test_plan_hash_pins_the_reviewed_plan(path: Path, memory_store: MemoryStore) -> None:
    reviewed = doc_of(run(path, "failover", "--all", "--now", "--dry-run", "--json"))["plan"]
    again = doc_of(run(path, "failover", "--all", "--now", "--dry-run", "--json"))["plan"]
    assert again["hash"] == reviewed["hash"]  # same situation, same hash

    wrong = run(path, "failover", "--all", "--now", "--yes", "--plan-hash", "0123456789ab")
    assert wrong.exit_code == 3
    assert reviewed["hash"] in wrong.stderr
    assert memory_store.applied == []

    # The situation changes after review: the reviewed hash no longer applies.
    seed(memory_store, NAMES[:1], ["10 mx1.proxy.test."])
    stale = run(path, "failover", "--all", "--now", "--yes", "--plan-hash", reviewed["hash"])
    assert stale.exit_code == 3
    assert memory_store.applied == []

    seed(memory_store, NAMES[:1])
    ok = run(path, "failover", "--all", "--now", "--yes", "--plan-hash", reviewed["hash"], "--json")
    assert ok.exit_code == 0, ok.output
    op = doc_of(ok)["operation"]
    assert op["outcome"] == "done" and set(op["states"].values()) == {"after"}
    assert live(memory_store) == ON_BACKUP


def test_blocked_plan_is_refused_and_changes_nothing(
    path: Path, memory_store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mxflip.readiness.default_readiness", lambda config: not_ready)
    result = run(path, "failover", "--all", "--yes")
    assert result.exit_code == 3
    assert "BLOCKED:" in result.stdout and "[target-not-ready]" in result.stdout
    assert "connection refused" in result.stderr
    doc = doc_of(run(path, "failover", "--all", "--yes", "--json"))
    assert doc["exit_code"] == 3 and doc["operation"] is None
    assert doc["plan"]["blocked"] is True
    assert "target-not-ready" in {f["code"] for s in doc["plan"]["steps"] for f in s["findings"]}
    assert live(memory_store) == SEEDED and memory_store.applied == []

    # The emergency override: a reason is recorded and the switch goes through.
    done = run(
        path, "failover", "--all", "--yes", "--now", "--skip-readiness", "--reason", "proxy down"
    )
    assert done.exit_code == 0, done.output
    assert live(memory_store) == ON_BACKUP


def test_failover_history_status_rollback(
    path: Path, memory_store: MemoryStore, injected: FakeClock
) -> None:
    result = run(path, "failover", "--all", "--yes", "--reason", "proxy outage #42")
    assert result.exit_code == 0, result.output
    assert "Operation " in result.stdout and ": done" in result.stdout
    assert injected.slept >= 3600  # pre-lowering waited out the old TTL on the fake clock
    assert live(memory_store) == ON_BACKUP
    # Pre-lowering, then the switch: two writes per zone.
    assert len(memory_store.applied) == 2

    doc = doc_of(run(path, "history", "--json"))
    (op,) = doc["operations"]
    assert op["kind"] == "failover" and op["outcome"] == "done"
    assert op["reason"] == "proxy outage #42"
    assert op["command"][:2] == ["mxflip", "failover"]
    assert "proxy outage #42" in run(path, "history").stdout

    status = doc_of(run(path, "status", "--json", "--timeout", "1"))
    assert {d["active"] for d in status["domains"]} == {"backup"}
    assert all(d["lowered_ttl"] is True for d in status["domains"])
    assert status["unsettled_operations"] == []

    back = run(path, "rollback", "--yes", "--json")
    assert back.exit_code == 0, back.output
    assert doc_of(back)["plan"]["parent"] == op["id"]
    assert live(memory_store) == SEEDED
    ops = doc_of(run(path, "history", "--json"))["operations"]
    assert [(o["kind"], o["outcome"]) for o in ops] == [
        ("rollback", "done"),
        ("failover", "rolled-back"),
    ]
    nothing = run(path, "rollback", "--yes")
    assert nothing.exit_code == 2 and "no operation to roll back" in nothing.stderr


def test_nothing_to_do_changes_nothing(path: Path, memory_store: MemoryStore) -> None:
    result = run(path, "failback", "--all", "--yes", "--now")
    assert result.exit_code == 0, result.output
    assert "Nothing to do." in result.stdout
    assert memory_store.applied == []


def test_confirmation_is_required(path: Path, memory_store: MemoryStore) -> None:
    result = run(path, "failover", "--all", "--now")
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert memory_store.applied == []


def test_a_nameserver_that_never_gets_the_change_rolls_it_back(
    memory_store: MemoryStore, tmp_path: Path
) -> None:
    """A second authority that keeps serving the old set: verification times out (on the
    fake clock) and the switch is rolled back to the exact before-state."""
    seed(memory_store, NAMES)
    stale = MemoryStore.named(f"{memory_store.name}-stale")
    try:
        stale.add_zone(ZONE, list(SEEDED.values()))
        servers = [memory_store.address(), stale.address()]
        path = write_config(tmp_path, memory_store, NAMES, nameservers=servers)
        result = run(path, "failover", "--all", "--now", "--yes", "--verify-timeout", "30s")
    finally:
        MemoryStore.drop(stale.name)
    assert result.exit_code == 3
    assert "verification failed and the change was rolled back" in result.stderr
    assert live(memory_store) == SEEDED
    ops = doc_of(run(path, "history", "--json"))["operations"]
    assert [(o["kind"], o["outcome"]) for o in ops] == [("failover", "rolled-back")]


def test_drill_asks_the_readiness_checks_about_sets_it_did_not_prove(
    path: Path, tmp_path: Path
) -> None:
    # The drill answers the engine from its own proof; a set it did not prove goes to the
    # real checks, awaited on the same loop (no second loop inside the running one).
    import asyncio

    from mxflip.config import load_config
    from mxflip.drill import Drill
    from mxflip.journal import Journal
    from mxflip.plan import ReadinessVerdict

    config = load_config(path)
    asked: list[str] = []

    async def readiness(domains, targets):  # type: ignore[no-untyped-def]
        asked.extend(targets)
        return {n: ReadinessVerdict("ready") for n in targets}

    domains = list(config.domains.values())
    drill = Drill(
        config, domains, Journal(tmp_path / "journal.jsonl"), readiness=readiness, clock=FakeClock()
    )
    target = {d.name: RRset(d.name, 300, d.backup) for d in domains}
    verdicts = asyncio.run(drill._proven_readiness(domains, target))
    assert asked == list(target) and {v.verdict for v in verdicts.values()} == {"ready"}
