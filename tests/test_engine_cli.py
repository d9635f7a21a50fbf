"""The changing commands through the CLI against a real BIND9: plans, --dry-run,
--plan-hash, confirmation, --json documents, history, rollback, status flags, the lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mxflip.journal import Journal
from mxflip.records import RRset
from tests.support.bind import BindServer
from tests.support.cli import doc_of, fake_runtime, inject, run
from tests.support.engine import (
    BACKUP,
    PRIMARY,
    FakeClock,
    domain_names,
    live,
    not_ready,
    seed,
)

pytestmark = pytest.mark.real_server


@pytest.fixture(scope="module")
def cbind(engine_bind: BindServer) -> BindServer:
    # The worker's shared engine BIND9 (root conftest): this module's tests use fresh names.
    return engine_bind


@pytest.fixture(autouse=True)
def injected(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return inject(monkeypatch)


def write_config(tmp_path: Path, bind: BindServer, names: list[str], extra: str = "") -> Path:
    text = f"""
[providers.lab]
type = "rfc2136"
server = "{bind.address}"
tsig_key_file = "{bind.key_file}"
timeout = 2

[defaults]
provider = "lab"
primary = {json.dumps(PRIMARY)}
backup = {json.dumps(BACKUP)}
ttl = 3600
failover_ttl = 60
nameservers = ["{bind.address}"]

[journal]
path = "state/journal.jsonl"
{extra}
"""
    for n in names:
        text += f'\n[domains."{n.rstrip(".")}"]\nzone = "{n.split(".", 1)[1]}"\n'
    path = tmp_path / "mxflip.toml"
    path.write_text(text)
    return path


@pytest.fixture
def setup(cbind: BindServer, tmp_path: Path) -> tuple[Path, list[str], dict[str, RRset]]:
    names = domain_names(2)
    seeded = seed(cbind, names)
    return write_config(tmp_path, cbind, names), names, seeded


def test_dry_run_prints_the_plan_and_changes_nothing(
    cbind: BindServer, setup: tuple[Path, list[str], dict[str, RRset]]
) -> None:
    path, names, seeded = setup
    result = run(path, "failover", "--all", "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "failover → backup" in out
    assert "10 mail.direct.test." in out and "→" in out
    assert "prelower-wait" in out and "Expected completion in ~1h" in out
    assert "Plan hash: " in out
    assert live(cbind, names) == seeded
    assert not (path.parent / "state" / "journal.jsonl").exists()

    doc = doc_of(run(path, "failover", "--all", "--dry-run", "--json"))
    assert doc["command"] == "failover" and doc["dry_run"] is True
    assert doc["operation"] is None
    plan = doc["plan"]
    assert len(plan["hash"]) == 12 and plan["kind"] == "failover"
    assert [p["name"] for p in plan["phases"]] == ["prelower", "prelower-wait", "switch", "verify"]
    step = plan["steps"][0]
    assert step["before"] == {"records": sorted(PRIMARY), "ttl": 3600}
    assert step["prelower"] == {"records": sorted(PRIMARY), "ttl": 60}
    assert step["after"] == {"records": BACKUP, "ttl": 60}


def test_plan_hash_pins_the_reviewed_plan(
    cbind: BindServer, setup: tuple[Path, list[str], dict[str, RRset]]
) -> None:
    path, names, seeded = setup
    reviewed = doc_of(run(path, "failover", "--all", "--now", "--dry-run", "--json"))["plan"]
    wrong = run(path, "failover", "--all", "--now", "--yes", "--plan-hash", "0123456789ab")
    assert wrong.exit_code == 3
    assert f"its hash is now {reviewed['hash']}, not 0123456789ab; nothing was changed" in (
        wrong.stderr
    )
    assert live(cbind, names) == seeded
    # The situation changes after review: the same hash no longer applies.
    seed(cbind, names[:1], ["10 mx1.proxy.test."])
    stale = run(path, "failover", "--all", "--now", "--yes", "--plan-hash", reviewed["hash"])
    assert stale.exit_code == 3
    seed(cbind, names[:1])
    ok = run(path, "failover", "--all", "--now", "--yes", "--plan-hash", reviewed["hash"], "--json")
    assert ok.exit_code == 0, ok.output
    doc = doc_of(ok)
    assert doc["operation"]["outcome"] == "done"
    assert set(doc["operation"]["states"].values()) == {"after"}
    assert doc["operation"]["old_answers_until"] is not None
    assert live(cbind, names) == {n: RRset.of(n, 60, BACKUP) for n in names}


def test_confirmation_is_required(
    cbind: BindServer, setup: tuple[Path, list[str], dict[str, RRset]]
) -> None:
    path, names, seeded = setup
    result = run(path, "failover", "--all", "--now")
    assert result.exit_code == 2
    assert "refusing to change DNS without confirmation: stdin is not a terminal" in result.stderr
    assert "--yes" in result.stderr
    assert live(cbind, names) == seeded


def test_usage_errors(setup: tuple[Path, list[str], dict[str, RRset]]) -> None:
    path, _, _ = setup
    assert run(path, "failover").exit_code == 2
    assert "--all" in run(path, "failover").stderr
    forced = run(path, "failover", "--all", "--force", "--yes")
    assert forced.exit_code == 2 and "--force needs --reason" in forced.stderr
    skip = run(path, "failover", "--all", "--skip-readiness", "--yes")
    assert skip.exit_code == 2 and "--skip-readiness needs --reason" in skip.stderr
    bad = run(path, "failover", "--all", "--restore-ttl-after", "soon")
    assert bad.exit_code == 2 and "is not a duration" in bad.stderr


def test_unready_target_is_refused_with_exit_3(
    cbind: BindServer,
    setup: tuple[Path, list[str], dict[str, RRset]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, names, seeded = setup
    monkeypatch.setattr("mxflip.readiness.default_readiness", lambda config: not_ready)
    result = run(path, "failover", "--all", "--yes")
    assert result.exit_code == 3
    assert "BLOCKED:" in result.stdout and "[target-not-ready]" in result.stdout
    assert "target set is not ready: connection refused" in result.stderr
    assert live(cbind, names) == seeded


def test_without_readiness_checks_a_switch_needs_skip_readiness(
    cbind: BindServer,
    setup: tuple[Path, list[str], dict[str, RRset]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, names, seeded = setup
    monkeypatch.setattr("mxflip.readiness.default_readiness", lambda config: None)
    refused = run(path, "failover", "--all", "--yes", "--now")
    assert refused.exit_code == 3
    assert "no SMTP readiness checks were given to the engine" in refused.stderr
    assert live(cbind, names) == seeded
    done = run(
        path, "failover", "--all", "--yes", "--now", "--skip-readiness", "--reason", "proxy down"
    )
    assert done.exit_code == 0, done.output
    assert live(cbind, names) == {n: RRset.of(n, 60, BACKUP) for n in names}


def test_failover_history_status_rollback(
    cbind: BindServer, setup: tuple[Path, list[str], dict[str, RRset]], injected: FakeClock
) -> None:
    path, names, seeded = setup
    result = run(path, "failover", "--all", "--yes", "--reason", "proxy outage #42")
    assert result.exit_code == 0, result.output
    assert "Operation " in result.stdout and ": done" in result.stdout
    assert injected.slept >= 3600  # pre-lowering waited on the injected clock

    hist = run(path, "history")
    assert hist.exit_code == 0
    assert "failover → backup" in hist.stdout and "proxy outage #42" in hist.stdout
    doc = doc_of(run(path, "history", "--json"))
    (op,) = doc["operations"]
    assert op["outcome"] == "done" and op["reason"] == "proxy outage #42"
    assert op["user"] and op["host"] and op["command"][:2] == ["mxflip", "failover"]
    assert op["steps"][0]["before"]["ttl"] == 3600

    status = doc_of(run(path, "status", "--json", "--timeout", "1"))
    d = status["domains"][0]
    assert d["active"] == "backup" and d["lowered_ttl"] is True
    assert any("left on a lowered TTL" in f for f in d["findings"])
    assert status["unsettled_operations"] == []

    back = run(path, "rollback", "--yes", "--json")
    assert back.exit_code == 0, back.output
    assert doc_of(back)["plan"]["parent"] == op["id"]
    assert live(cbind, names) == seeded
    ops = doc_of(run(path, "history", "--json"))["operations"]
    assert [(o["kind"], o["outcome"]) for o in ops] == [
        ("rollback", "done"),
        ("failover", "rolled-back"),
    ]
    nothing = run(path, "rollback", "--yes")
    assert nothing.exit_code == 2 and "no operation to roll back" in nothing.stderr


def test_prepare_status_switch_ready_and_finalize(
    cbind: BindServer, setup: tuple[Path, list[str], dict[str, RRset]]
) -> None:
    path, _, _ = setup
    assert run(path, "prepare", "--yes").exit_code == 0
    status = doc_of(run(path, "status", "--json", "--timeout", "1"))
    for d in status["domains"]:
        assert d["ttl"] == 60 and d["lowered_ttl"] is True
        assert d["switch_ready"] is False and d["switch_ready_at"]
    assert status["exit_code"] == 1
    assert run(path, "finalize", "--yes").exit_code == 0
    status = doc_of(run(path, "status", "--json", "--timeout", "1"))
    assert all(d["ttl"] == 3600 and d["lowered_ttl"] is False for d in status["domains"])
    assert status["exit_code"] == 0


def test_drain_and_restore_commands(
    cbind: BindServer, setup: tuple[Path, list[str], dict[str, RRset]]
) -> None:
    path, names, _ = setup
    result = run(path, "drain", "mx2.proxy.test", "--now", "--yes", "--reason", "bad TLS cert")
    assert result.exit_code == 0, result.output
    assert live(cbind, names) == {n: RRset.of(n, 60, ["10 mx1.proxy.test."]) for n in names}
    empty = run(path, "drain", "mx1.proxy.test", "--now", "--yes", "--force", "--reason", "x")
    assert empty.exit_code == 3 and "no MX records" in empty.stderr
    result = run(path, "restore", "mx2.proxy.test", "--now", "--yes")
    assert result.exit_code == 0, result.output
    assert live(cbind, names) == {n: RRset.of(n, 60, PRIMARY) for n in names}


def interrupted_failover(path: Path, names: list[str]) -> Journal:
    """Journal an operation whose intent was written and then the process died."""
    from mxflip.journal import OperationLog

    journal = Journal(path.parent / "state" / "journal.jsonl")
    log = OperationLog(journal, "20270115T080000Z-abcdef", lambda: 1_800_000_000.0)
    steps = [
        {
            "domain": n,
            "zone": n.split(".", 1)[1],
            "provider": "lab",
            "before": {"name": n, "ttl": 3600, "records": sorted(PRIMARY)},
            "prelower": None,
            "after": {"name": n, "ttl": 60, "records": BACKUP},
        }
        for n in names
    ]
    log.intent(
        kind="failover",
        target="backup",
        reason=None,
        command=["mxflip", "failover"],
        plan_hash="x",
        steps=steps,
        options={},
    )
    return journal


def test_failed_operation_is_reported_and_blocks_the_next(
    cbind: BindServer,
    setup: tuple[Path, list[str], dict[str, RRset]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, names, _ = setup
    journal = interrupted_failover(path, names)
    refused = run(path, "failover", "--all", "--yes", "--now")
    assert refused.exit_code == 3
    assert "operation 20270115T080000Z-abcdef (failover" in refused.stderr
    assert "mxflip resume 20270115T080000Z-abcdef" in refused.stderr
    assert "mxflip rollback 20270115T080000Z-abcdef" in refused.stderr
    status = run(path, "status", "--timeout", "1")
    assert "was interrupted; run 'mxflip resume" in status.stdout
    assert status.exit_code == 1
    resumed = run(path, "resume", "--yes")
    assert resumed.exit_code == 0, resumed.output
    assert live(cbind, names) == {n: RRset.of(n, 60, BACKUP) for n in names}
    assert Journal(journal.path).read().unsettled() == []


def test_lock_held_by_another_operation(
    setup: tuple[Path, list[str], dict[str, RRset]],
) -> None:
    path, _, _ = setup
    journal = Journal(path.parent / "state" / "journal.jsonl")
    # A lock held through another open file description behaves as another process.
    with journal.lock("mxflip failover --all"):
        result = run(path, "failover", "--all", "--yes", "--now")
    assert result.exit_code == 3
    assert "another mxflip operation is running: pid " in result.stderr
    assert "'mxflip failover --all', since " in result.stderr


def test_output_and_journal_never_show_the_tsig_secret(
    cbind: BindServer, setup: tuple[Path, list[str], dict[str, RRset]]
) -> None:
    path, _, _ = setup
    outputs = [
        run(path, "failover", "--all", "--yes", "--now", "--json"),
        run(path, "history", "--json"),
        run(path, "rollback", "--yes"),
    ]
    journal_text = (path.parent / "state" / "journal.jsonl").read_text()
    for text in [journal_text, *(r.output for r in outputs)]:
        assert cbind.secret not in text
    assert (path.parent / "state" / "journal.jsonl").stat().st_mode & 0o777 == 0o600


def test_journal_from_environment(
    cbind: BindServer,
    setup: tuple[Path, list[str], dict[str, RRset]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _, _ = setup
    monkeypatch.setenv("MXFLIP_JOURNAL", str(tmp_path / "env" / "j.jsonl"))
    assert run(path, "prepare", "--yes").exit_code == 0
    assert (tmp_path / "env" / "j.jsonl").exists()
    assert not (path.parent / "state" / "journal.jsonl").exists()


def test_json_progress_events_go_to_stderr(
    setup: tuple[Path, list[str], dict[str, RRset]],
) -> None:
    path, _, _ = setup
    result = run(path, "failover", "--all", "--yes", "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stderr.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "info" and events[0]["op_id"]
    assert "countdown" in kinds and kinds[-1] == "phase-done"
    countdowns = [e for e in events if e["event"] == "countdown"]
    assert countdowns[0]["remaining"] == 3600 and countdowns[-1]["remaining"] == 0
    assert doc_of(result)["operation"]["outcome"] == "done"


def test_on_a_terminal_the_next_command_offers_to_settle(
    cbind: BindServer,
    setup: tuple[Path, list[str], dict[str, RRset]],
    injected: FakeClock,
) -> None:
    path, names, seeded = setup
    journal = interrupted_failover(path, names)
    # Half-way: the first domain was switched before the process died.
    seed(cbind, names[:1], BACKUP, 60)
    terminal = fake_runtime(injected, interactive=True)
    result = run(path, "failback", "--all", input="rollback\ny\n", runtime=terminal)
    assert result.exit_code == 0, result.output
    assert "was interrupted and may have left zones half-way" in result.stderr
    assert "Resume it, roll it back, or abort?" in result.stderr
    assert "rollback → 20270115T080000Z-abcdef" in result.stdout
    assert live(cbind, names) == seeded
    op = journal.read().find("20270115T080000Z-abcdef")
    assert op is not None and op.outcome == "rolled-back"
    aborted = interrupted_failover(path, names)
    result = run(path, "failback", "--all", input="abort\n", runtime=terminal)
    assert result.exit_code == 3 and aborted.read().unsettled()
