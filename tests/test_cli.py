"""CLI surface: help on every command, exit-code contract, error rendering, start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mxflip.cli import cli
from mxflip.errors import ExitCode
from tests.support.configs import GOOD, write_config


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(all_commands(command, (*prefix, name)))
    return found


@pytest.mark.parametrize("command", all_commands(cli), ids=" ".join)
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: cli {' '.join(command)}")
    cmd: click.Command | None = cli
    for name in command:  # down to the nested command itself (`canary send`)
        assert isinstance(cmd, click.Group)
        cmd = cmd.get_command(click.Context(cmd), name)
    assert cmd is not None and cmd.help and len(cmd.help.split()) >= 5


def test_top_level_help_documents_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for code in ExitCode:
        assert f"  {int(code)}  " in result.stdout


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("mxflip, version ")


def test_help_imports_no_provider_sdk() -> None:
    code = (
        "import sys\n"
        "from mxflip.cli import cli\n"
        "try:\n    cli(['--help'], prog_name='mxflip')\nexcept SystemExit:\n    pass\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('boto3', 'botocore', 'cloudflare', 'mxflip_route53', 'mxflip_cloudflare', "
        "'mxflip_rfc2136', 'pydantic', 'rich'))\n"
        "print('LOADED', bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "LOADED []" in out


def test_providers_lists_the_installed_adapters() -> None:
    result = CliRunner().invoke(cli, ["providers", "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    rfc = [p for p in doc["providers"] if p["type"] == "rfc2136"]
    assert rfc == [
        {
            "type": "rfc2136",
            "distribution": "mxflip-rfc2136",
            "version": metadata.version("mxflip-rfc2136"),
            "target": "mxflip_rfc2136:RFC2136Provider",
        }
    ]
    installed = {ep.name for ep in metadata.entry_points(group="mxflip.providers")}
    assert {p["type"] for p in doc["providers"]} == installed
    table = CliRunner().invoke(cli, ["providers"])
    assert "mxflip-rfc2136" in table.stdout


def test_unknown_option_is_usage_exit_2() -> None:
    result = CliRunner().invoke(cli, ["status", "--frobnicate"])
    assert result.exit_code == 2
    assert "No such option" in result.stderr


def test_internal_error_is_one_line_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mxflip.observe

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(mxflip.observe.Observer, "status", boom)
    path = write_config(tmp_path, GOOD)
    result = CliRunner().invoke(cli, ["-c", str(path), "status"])
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        "mxflip: internal error: RuntimeError: kaboom "
        "(run with --debug for the traceback, and please report it)"
    )
    debug = CliRunner().invoke(cli, ["-c", str(path), "--debug", "status"])
    assert isinstance(debug.exception, RuntimeError)


def test_interrupt_exits_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mxflip.observe

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(mxflip.observe.Observer, "status", interrupted)
    path = write_config(tmp_path, GOOD)
    result = CliRunner().invoke(cli, ["-c", str(path), "status"])
    assert result.exit_code == 130
    assert result.stderr.strip() == "mxflip: interrupted"
