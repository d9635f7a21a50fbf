"""The Runtime: what a command runs in, built once at the CLI boundary and injectable."""

from __future__ import annotations

import io
import json
from pathlib import Path

from mxflip.clock import SystemClock
from mxflip.runtime import Runtime
from tests.support.cli import fake_runtime, invoke
from tests.support.configs import GOOD, write_config
from tests.support.engine import FakeClock


def test_defaults_are_the_process_surroundings() -> None:
    runtime = Runtime()
    assert isinstance(runtime.clock, SystemClock)
    assert runtime.logger.name == "mxflip"


def test_state_paths_follow_the_runtime_environment_not_the_process(tmp_path: Path) -> None:
    runtime = Runtime(environ={"XDG_STATE_HOME": str(tmp_path / "xdg")})
    assert runtime.state_dir() == tmp_path / "xdg" / "mxflip"
    assert runtime.journal_path() == tmp_path / "xdg" / "mxflip" / "journal.jsonl"
    assert runtime.journal_path(tmp_path / "j.jsonl") == tmp_path / "j.jsonl"
    pinned = Runtime(environ={"MXFLIP_JOURNAL": str(tmp_path / "env.jsonl")})
    assert pinned.journal_path(tmp_path / "j.jsonl") == tmp_path / "env.jsonl"
    # A relative XDG_STATE_HOME is ignored, as the XDG spec asks.
    relative = Runtime(environ={"XDG_STATE_HOME": "rel", "HOME": str(tmp_path)})
    assert relative.state_dir().is_absolute()


def test_interactivity_and_streams_can_be_injected() -> None:
    out, err = io.StringIO(), io.StringIO()
    runtime = Runtime(interactive=False, stdout=out, stderr=err)
    assert not runtime.can_prompt() and not runtime.stderr_is_terminal()
    runtime.stdout_console().print("result")
    runtime.stderr_console().print("progress")
    assert out.getvalue() == "result\n" and err.getvalue() == "progress\n"
    assert Runtime(interactive=True).can_prompt()


def test_the_clock_is_the_runtime_s() -> None:
    clock = FakeClock(1000.0)
    runtime = fake_runtime(clock)
    runtime.sleep(30)
    assert runtime.now() == 1030.0 and clock.sleeps == [30]


def test_the_cli_uses_the_injected_runtime(tmp_path: Path) -> None:
    """An injected environment decides where `history` looks for the journal."""
    config = write_config(tmp_path, GOOD)
    (tmp_path / "state" / "mxflip").mkdir(parents=True)
    (tmp_path / "state" / "mxflip" / "journal.jsonl").write_text("not json\n")
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    runtime = Runtime(environ=env, interactive=False)
    result = invoke(["-c", str(config), "history", "--json"], runtime=runtime)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped_lines"] == 1


# ----------------------------------------------------------------- --color / --quiet


def test_colour_and_quietness_come_from_the_runtime() -> None:
    out = io.StringIO()
    loud = Runtime(stdout=out, color="always")
    loud.stdout_console().print("[red]x[/red]")
    assert "\x1b[" in out.getvalue()

    out = io.StringIO()
    plain = Runtime(stdout=out, color="never")
    plain.stdout_console().print("[red]x[/red]")
    assert out.getvalue() == "x\n"

    out = io.StringIO()
    quiet = Runtime(stdout=out, quiet=True)
    quiet.stdout_console().print("table")
    quiet.people_stream().write("text")
    assert out.getvalue() == ""


def test_quiet_is_per_command_not_left_behind_in_the_process() -> None:
    from click.testing import CliRunner

    from mxflip.cli import cli

    runner = CliRunner()
    assert runner.invoke(cli, ["--quiet", "providers"]).output == ""
    assert "rfc2136" in runner.invoke(cli, ["providers"]).output
