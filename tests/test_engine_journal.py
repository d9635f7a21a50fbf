"""The journal and lock on their own, and the ``[journal]`` config section."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mxflip.cli import cli
from mxflip.config import load_config
from mxflip.journal import (
    Journal,
    LockedError,
    OperationLog,
    default_journal_path,
    new_operation_id,
)
from tests.support.configs import GOOD, write_config


def intent(log: OperationLog) -> None:
    log.intent(
        kind="failover",
        target="backup",
        reason="r",
        command=["mxflip", "failover"],
        plan_hash="h",
        steps=[
            {
                "domain": "a.test.",
                "zone": "a.test.",
                "provider": "lab",
                "before": {"name": "a.test.", "ttl": 3600, "records": ["10 mx.a.test."]},
                "prelower": None,
                "after": {"name": "a.test.", "ttl": 60, "records": ["10 mx.b.test."]},
            }
        ],
        options={},
    )


def test_records_and_outcomes(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "deep" / "journal.jsonl")
    log = OperationLog(journal, "op1", lambda: 1_800_000_000.0)
    intent(log)
    assert journal.read().operations[0].outcome == "interrupted"
    log.phase("switch", "done")
    log.result("done")
    (op,) = journal.read().operations
    assert (op.kind, op.outcome, op.phase_done_at("switch")) == ("failover", "done", 1.8e9)
    assert op.steps[0].after is not None and op.steps[0].after.ttl == 60
    assert (journal.path.stat().st_mode & 0o777) == 0o600
    assert (journal.path.parent.stat().st_mode & 0o777) == 0o700


def test_torn_last_line_is_skipped_and_not_glued_to_the_next(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    log = OperationLog(journal, "op1", lambda: 1.0)
    intent(log)
    with journal.path.open("a") as f:
        f.write('{"type": "result", "op": "op1", "outc')  # a crash mid-write
    view = journal.read()
    assert view.skipped_lines == 1 and view.operations[0].outcome == "interrupted"
    log.result("failed")
    view = journal.read()
    assert view.skipped_lines == 1 and view.operations[0].outcome == "failed"
    lines = journal.path.read_text().splitlines()
    assert json.loads(lines[-1])["outcome"] == "failed"


def test_operation_ids_sort_by_time() -> None:
    a, b = new_operation_id(1_800_000_000.0), new_operation_id(1_800_000_001.0)
    assert a < b and a.startswith("20270115T080000Z-")


def test_lock_names_the_holder_and_is_released(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    with journal.lock("mxflip failover --all", now=1_800_000_000.0):
        with pytest.raises(LockedError) as info, Journal(journal.path).lock("mxflip failback"):
            pass
        message = str(info.value)
        assert f"pid {os.getpid()}, " in message
        assert "'mxflip failover --all', since 2027-01-15T08:00:00Z" in message
    with journal.lock("again"):
        pass
    assert (journal.lock_path.stat().st_mode & 0o777) == 0o600


def test_unwritable_journal_is_a_clear_error(tmp_path: Path) -> None:
    from mxflip.journal import JournalError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(JournalError, match="cannot create the journal folder"):
        Journal(blocker / "journal.jsonl").append({"op": "x", "type": "intent"})


def test_default_path_follows_xdg_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MXFLIP_JOURNAL", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_journal_path() == tmp_path / "state" / "mxflip" / "journal.jsonl"
    assert default_journal_path(tmp_path / "cfg.jsonl") == tmp_path / "cfg.jsonl"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_journal_path() == Path.home() / ".local/state/mxflip/journal.jsonl"
    monkeypatch.setenv("MXFLIP_JOURNAL", str(tmp_path / "env.jsonl"))
    assert default_journal_path(tmp_path / "cfg.jsonl") == tmp_path / "env.jsonl"


def test_journal_section_is_relative_to_the_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD + '\n[journal]\npath = "ops/journal.jsonl"\n')
    assert load_config(path).journal.path == tmp_path.resolve() / "ops" / "journal.jsonl"
    assert load_config(write_config(tmp_path / "b", GOOD)).journal.path is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[journal]\npath = 5\n", "journal.path: Input should be a valid string"),
        ('[journal]\npath = ""\n', "journal.path: String should have at least 1 character"),
        ('[journal]\nfile = "x"\n', "journal.file: unknown key"),
        ('journal = "x"\n', "journal: must be a table, not a string"),
    ],
)
def test_bad_journal_section(tmp_path: Path, text: str, message: str) -> None:
    # The section goes first so that a bare key is not read as part of another table.
    path = write_config(tmp_path, text + GOOD)
    result = CliRunner().invoke(cli, ["-c", str(path), "validate"])
    assert result.exit_code == 2
    assert message in result.stderr, result.stderr
