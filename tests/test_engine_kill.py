"""Real kills and real concurrency: a child process running the engine SIGKILLs itself
at a phase boundary, then ``mxflip rollback`` / ``mxflip resume`` in this process settles
every zone; a second failover while the first holds the lock is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mxflip.journal import Journal
from mxflip.records import RRset
from tests.support.bind import BindServer
from tests.support.cli import inject, run
from tests.support.engine import (
    BACKUP,
    FakeClock,
    domain_names,
    live,
    seed,
)
from tests.test_engine_cli import write_config

pytestmark = pytest.mark.real_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def kbind(engine_bind: BindServer) -> BindServer:
    # The worker's shared engine BIND9 (root conftest): this module's tests use fresh names.
    return engine_bind


@pytest.fixture(autouse=True)
def injected(monkeypatch: pytest.MonkeyPatch) -> None:
    # The child's fake clock starts at the real time; so does this one.
    inject(monkeypatch, FakeClock(time.time() + 5))


def child(config: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MXFLIP_JOURNAL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.engine_child", str(config), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def journal(config: Path) -> Journal:
    return Journal(config.parent / "state" / "journal.jsonl")


@pytest.mark.parametrize(
    ("boundary", "settle"),
    [
        ("prelower:after-apply", "rollback"),
        ("prelower-wait:done", "resume"),
        ("switch:after-apply", "rollback"),
        ("verify:before", "resume"),
        ("restore-ttl:after-apply", "rollback"),
        ("switch:before-apply", "resume"),
    ],
)
def test_sigkill_at_a_phase_boundary_then_settle(
    kbind: BindServer, tmp_path: Path, boundary: str, settle: str
) -> None:
    names = domain_names(4)
    seeded = seed(kbind, names)
    config = write_config(tmp_path, kbind, names)
    proc = child(config, "kill", boundary)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()

    (op,) = journal(config).read().operations
    assert op.outcome == "interrupted" and op.result is None
    # The next changing command notices and refuses until it is settled.
    refused = run(config, "failback", "--all", "--yes")
    assert refused.exit_code == 3 and f"mxflip {settle} {op.id}" in refused.stderr

    result = run(config, settle, "--yes", "--json")
    assert result.exit_code == 0, result.output
    final = journal(config).read().find(op.id)
    assert final is not None
    if settle == "rollback":
        assert live(kbind, names) == seeded
        assert final.outcome == "rolled-back" and final.notes[-1]["state"] == "before"
    else:
        assert live(kbind, names) == {n: RRset.of(n, 3600, BACKUP) for n in names}
        assert final.outcome == "done" and final.notes[-1]["state"] == "after"
    assert journal(config).read().unsettled() == []


@pytest.mark.parametrize("boundary", ["switch:served", "verify:before", "verify:done", "result"])
def test_sigkill_after_the_switch_then_resume_has_nothing_to_do_and_settles(
    kbind: BindServer, tmp_path: Path, boundary: str
) -> None:
    """Killed once every zone is switched (at "result" the result line is then torn): the
    resume writes nothing, settles the operation, journals why, and the next change is
    allowed (it used to say "Nothing to do." and leave every change refused)."""
    names = domain_names(2)
    seed(kbind, names)
    config = write_config(tmp_path, kbind, names)
    proc = child(config, "kill-now", boundary)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    if boundary == "result":
        data = journal(config).path.read_bytes()
        journal(config).path.write_bytes(data[:-10])
    (op,) = journal(config).read().operations
    assert op.outcome == "interrupted"
    assert live(kbind, names) == {n: RRset.of(n, 60, BACKUP) for n in names}
    result = run(config, "resume", "--yes")
    assert result.exit_code == 0, result.output
    assert "Nothing to do: every zone is already in operation" in result.stdout
    final = journal(config).read().find(op.id)
    assert final is not None and final.outcome == "done"
    assert final.notes[-1]["why"].startswith("nothing to do")
    assert journal(config).read().unsettled() == []
    nxt = run(config, "failback", "--all", "--yes", "--now")
    assert nxt.exit_code == 0, nxt.output


def test_second_concurrent_failover_is_refused_by_the_lock(
    kbind: BindServer, tmp_path: Path
) -> None:
    names = domain_names(2)
    seed(kbind, names)
    config = write_config(tmp_path, kbind, names)
    ready_file, release = tmp_path / "ready", tmp_path / "release"
    proc = child(config, "block", "prelower-wait:done", str(ready_file), str(release))
    try:
        deadline = time.monotonic() + 60
        while not ready_file.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "child never reached the boundary"
            time.sleep(0.02)
        second = run(config, "failover", "--all", "--yes", "--now")
        assert second.exit_code == 3
        assert f"another mxflip operation is running: pid {proc.pid}, " in second.stderr
        assert "'mxflip failover --all --restore-ttl-after 600', since " in second.stderr
        release.write_text("go")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    # The first finished; only one operation was recorded.
    assert [o.outcome for o in journal(config).read().operations] == ["done"]
    assert live(kbind, names) == {n: RRset.of(n, 3600, BACKUP) for n in names}
