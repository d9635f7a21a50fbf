"""Running the CLI in-process for flow tests: a Runtime (fake clock, no terminal) and a
readiness check injected, one invocation, and the --json document checked against the
exit code.

The Runtime goes in the way an embedding program would pass it: as click's ``obj``.
Nothing in mxflip is patched for time or the terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mxflip.cli import cli
from mxflip.clock import Clock
from mxflip.runtime import Runtime
from tests.support.engine import FakeClock, ready

#: The Runtime of the running test's CLI invocations (set through :func:`use_runtime`,
#: which undoes it after the test); None: the real clock, and nobody at a terminal.
RUNTIME: Runtime | None = None


def fake_runtime(clock: Clock | None = None, *, interactive: bool = False) -> Runtime:
    """A Runtime whose clock only moves when slept on and where nobody answers prompts."""
    return Runtime(clock=clock or FakeClock(), interactive=interactive)


def use_runtime(monkeypatch: pytest.MonkeyPatch, runtime: Runtime) -> Runtime:
    """Make ``runtime`` the one every :func:`invoke` of this test passes to the CLI."""
    monkeypatch.setattr(sys.modules[__name__], "RUNTIME", runtime)
    return runtime


def inject(monkeypatch: pytest.MonkeyPatch, clock: FakeClock | None = None) -> FakeClock:
    """A fake clock and a readiness check that says "ready" for every CLI run."""
    clock = clock or FakeClock()
    use_runtime(monkeypatch, fake_runtime(clock))
    monkeypatch.setattr("mxflip.readiness.default_readiness", lambda config: ready)
    monkeypatch.delenv("MXFLIP_JOURNAL", raising=False)
    return clock


def invoke(
    args: Sequence[str], *, input: str | None = None, runtime: Runtime | None = None
) -> Result:
    """One in-process ``mxflip`` run with ``runtime`` (default: the test's, see above)."""
    chosen = runtime or RUNTIME or Runtime(interactive=False)
    return CliRunner().invoke(cli, list(args), input=input, obj=chosen)


def run(path: Path, *args: str, input: str | None = None, runtime: Runtime | None = None) -> Result:
    return invoke(["-c", str(path), *args], input=input, runtime=runtime)


def doc_of(result: Result) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(result.stdout)
    assert doc["version"] == 1 and doc["exit_code"] == result.exit_code
    return doc
