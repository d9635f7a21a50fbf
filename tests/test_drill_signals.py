"""Ctrl-C and SIGTERM reaching a real ``mxflip drill`` process (the sandbox lab), at points
the drill is held at, so no signal races a step (tests/support/drill_child.py).

- Ctrl-C during the failover operation (a planned one, waiting out the old TTL): the
  operation is interrupted and journalled, the drill rolls it back and reports (exit 3);
- one signal during the post-switch probe: that step fails as interrupted, the drill
  restores (rolls its failover back), the final status is the before-state, exit 3 and
  the JSON report;
- a second signal during that restore: the restore's rollback is interrupted and
  journalled as such, and the command ends "interrupted" (exit 130, the JSON error
  document), leaving the operation for ``mxflip rollback``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from mxflip.drill import STEPS
from mxflip.journal import Journal

ROOT = Path(__file__).resolve().parent.parent

#: The longest any wait of these tests lasts (the child's holds are as bounded).
TIMEOUT = 60.0


class Child:
    """The held drill process, its stderr read line by line on a thread (bounded waits)."""

    def __init__(self, tmp_path: Path, mode: str, *extra: str) -> None:
        self.journal = tmp_path / "journal-copy.jsonl"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TMPDIR": str(tmp_path),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "DRILL_CHILD_JOURNAL": str(self.journal),
            "NO_COLOR": "1",
        }
        env.pop("MXFLIP_JOURNAL", None)
        env.pop("MXFLIP_CONFIG", None)
        argv = [mode, "--json", "--verify-timeout", str(int(TIMEOUT)), *extra]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.drill_child", *argv],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def held(self, step: str) -> None:
        """Wait until the child says it is held in ``step``."""
        self.until(event="test-hold", step=step)

    def until(self, **fields: str) -> None:
        """Wait for a JSON line on stderr that has ``fields``."""
        while True:
            try:
                line = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"never saw {fields}: {''.join(self.stderr)}")
            if line is None:
                pytest.fail(f"the drill ended before {fields}: {''.join(self.stderr)}")
            self.stderr.append(line)
            if line.startswith("{") and fields.items() <= json.loads(line).items():
                return

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self) -> tuple[int, dict[str, Any], str]:
        """Exit code, the JSON document on stdout, and the rest of stderr."""
        self.proc.wait(timeout=TIMEOUT)  # the report is small: the pipe never fills
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        while (line := self.lines.get(timeout=TIMEOUT)) is not None:
            self.stderr.append(line)
        return self.proc.returncode, json.loads(out), "".join(self.stderr)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def operations(self) -> list[tuple[str, str]]:
        return [(op.kind, op.outcome) for op in Journal(self.journal).read().operations]


@pytest.fixture
def child_factory(tmp_path: Path) -> Any:
    made: list[Child] = []

    def make(mode: str, *extra: str) -> Child:
        made.append(Child(tmp_path, mode, *extra))
        return made[-1]

    yield make
    for c in made:
        c.kill()


def steps_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in report["domains"][0]["steps"]}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_one_signal_during_the_probe_fails_it_restores_and_reports(
    child_factory: Any, signum: int
) -> None:
    child = child_factory("probe")
    child.held("probe")
    child.send(signum)
    code, report, _ = child.finish()
    assert code == 3, report
    assert report["exit_code"] == 3 and report["passed"] is False
    steps = steps_of(report)
    # Every step of a drill, and the restore before the final status.
    order = [*STEPS[:-1], "restore", STEPS[-1]]
    assert [s["name"] for s in report["domains"][0]["steps"]] == order
    assert steps["probe"] == {**steps["probe"], "status": "fail", "message": "interrupted (Ctrl-C)"}
    assert steps["failback"]["status"] == "skipped"
    assert steps["restore"]["status"] == "pass"
    assert steps["restore"]["message"].startswith("rolled back operation ")
    assert steps["final-status"]["status"] == "pass"
    # The failover was settled by the drill's own rollback.
    assert sorted(child.operations()) == [("failover", "rolled-back"), ("rollback", "done")]


def test_ctrl_c_during_the_failover_interrupts_it_and_the_drill_restores(
    child_factory: Any,
) -> None:
    # --planned waits out the sandbox's old TTL (seconds) inside the failover operation.
    child = child_factory("probe", "--planned")
    child.until(event="countdown")
    child.send(signal.SIGINT)
    code, report, _ = child.finish()
    assert code == 3, report
    steps = steps_of(report)
    assert steps["failover"] == {
        **steps["failover"],
        "status": "fail",
        "message": "interrupted (Ctrl-C)",
    }
    assert steps["restore"]["status"] == "pass"
    assert steps["final-status"]["status"] == "pass"
    # The failover journalled its interruption; the drill's rollback settled it.
    assert sorted(child.operations()) == [("failover", "rolled-back"), ("rollback", "done")]


@pytest.mark.parametrize(
    ("first", "second"),
    [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGTERM)],
    ids=["ctrl-c-twice", "sigterm-twice"],
)
def test_a_second_signal_interrupts_the_restore_and_the_command(
    child_factory: Any, first: int, second: int
) -> None:
    child = child_factory("restore")
    child.held("probe")
    child.send(first)
    child.held("restore")  # the rollback was written; its verification is polling
    child.send(second)
    code, doc, stderr = child.finish()
    assert code == 130, (doc, stderr)
    assert doc == {"version": 1, "command": "drill", "exit_code": 130, "error": "interrupted"}
    assert "mxflip: interrupted" in stderr.splitlines()
    assert "Traceback" not in stderr
    # The drill's failover and the restore's rollback are both in the journal; the
    # rollback says it was interrupted, for 'mxflip rollback' to settle.
    assert sorted(child.operations()) == [("failover", "done"), ("rollback", "interrupted")]
