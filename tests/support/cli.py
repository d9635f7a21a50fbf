"""Running the CLI in-process for flow tests: a fake clock and a readiness check injected,
one invocation, and the --json document checked against the exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mxflip import cli as cli_module
from mxflip.cli import cli
from tests.support.engine import FakeClock, ready


def inject(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fake clock and a readiness check that says "ready" for every CLI run."""
    clock = FakeClock()
    monkeypatch.setattr(cli_module, "_clock", lambda: clock)
    monkeypatch.setattr("mxflip.readiness_api.default_readiness", lambda config: ready)
    monkeypatch.delenv("MXFLIP_JOURNAL", raising=False)
    return clock


def run(path: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["-c", str(path), *args], input=input)


def doc_of(result: Result) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(result.stdout)
    assert doc["version"] == 1 and doc["exit_code"] == result.exit_code
    return doc
