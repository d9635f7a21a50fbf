"""Shell completion (domains, operation ids, commands, options), ``--color``/``NO_COLOR``
and ``--quiet``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mxflip.cli import cli
from mxflip.journal import Journal, OperationLog
from tests.support.configs import GOOD, write_config

MORE = (
    GOOD
    + """
[domains."lists.example.test"]
provider = "lab"
primary = ["10 mx1.proxy.test"]
backup = ["10 mail.example.test"]
"""
)


def complete(args: str, *, shell: str = "bash", env: dict[str, str] | None = None) -> list[str]:
    words = ["mxflip", *args.split(" ")]
    result = CliRunner().invoke(
        cli,
        [],
        prog_name="mxflip",
        env={
            "_MXFLIP_COMPLETE": f"{shell}_complete",
            "COMP_WORDS": " ".join(words),
            "COMP_CWORD": str(len(words) - 1),
            **(env or {}),
        },
    )
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MXFLIP_JOURNAL", str(tmp_path / "journal.jsonl"))
    return write_config(tmp_path, MORE)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_script_names_the_completion_variable(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0
    assert "_MXFLIP_COMPLETE" in result.stdout
    assert f"{shell}_complete" in result.stdout


def test_unknown_shell_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["completion", "tcsh"])
    assert result.exit_code == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.output


def test_commands_and_options_complete(cfg: Path) -> None:
    assert {"doctor", "drain", "drill"} <= set(complete("d"))
    assert complete("--co") == ["--config", "--color"]
    assert complete("--color ") == ["auto", "always", "never"]
    assert "--test-notify" in complete("doctor --")


def test_configured_domains_complete(cfg: Path) -> None:
    assert complete(f"-c {cfg} status ") == ["example.test", "lists.example.test"]
    assert complete(f"-c {cfg} failover li") == ["lists.example.test"]
    assert complete(f"-c {cfg} check example.test ") == ["lists.example.test"]
    assert complete("status ", env={"MXFLIP_CONFIG": str(cfg)}) == [
        "example.test",
        "lists.example.test",
    ]


def test_init_provider_completes_from_a_file_without_domains(tmp_path: Path) -> None:
    cfg = tmp_path / "new.toml"
    cfg.write_text('[providers.cf]\ntype = "cloudflare"\n[providers.aws]\ntype = "route53"\n')
    assert complete(f"-c {cfg} init --provider ") == ["cf", "aws"]
    assert complete(f"-c {cfg} init --provider a") == ["aws"]


def test_broken_config_completes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[oops")
    assert complete(f"-c {bad} status ") == []


def test_operation_ids_complete_newest_first(cfg: Path, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    for op_id, ts in (("20261101T100000Z-aaaaaa", 1.0), ("20261102T100000Z-bbbbbb", 2.0)):
        log = OperationLog(journal, op_id, lambda ts=ts: ts)
        log.intent(
            kind="failover",
            target="backup",
            reason="t",
            command=["mxflip"],
            plan_hash="h",
            steps=[],
            options={},
        )
        log.result("done")
    assert complete(f"-c {cfg} rollback ") == [
        "20261102T100000Z-bbbbbb",
        "20261101T100000Z-aaaaaa",
    ]
    assert complete(f"-c {cfg} resume 20261101") == ["20261101T100000Z-aaaaaa"]


def test_color_always_never_and_no_color(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner = CliRunner()
    doctor = ["-c", str(tmp_path / "missing.toml"), "doctor"]  # one red ✗ line
    red = "\x1b[31m✗"
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert red in runner.invoke(cli, ["--color", "always", *doctor]).stdout
    assert red not in runner.invoke(cli, doctor).stdout  # auto, and not a terminal
    assert red in runner.invoke(cli, doctor, env={"FORCE_COLOR": "1"}).stdout
    monkeypatch.setenv("NO_COLOR", "1")
    assert red in runner.invoke(cli, ["--color=always", *doctor]).stdout
    no_color = runner.invoke(cli, doctor, env={"FORCE_COLOR": "1"})
    assert "\x1b[31m" not in no_color.stdout
    assert "\x1b[1m" in no_color.stdout  # NO_COLOR removes colours, not bold
    monkeypatch.delenv("NO_COLOR")
    never = runner.invoke(cli, ["--color", "never", *doctor], env={"FORCE_COLOR": "1"})
    assert "\x1b[" not in never.stdout
    assert "✗ configuration: " in never.stdout


def test_quiet_prints_only_errors_and_json(cfg: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    quiet = runner.invoke(cli, ["--quiet", "-c", str(cfg), "validate"])
    assert (quiet.exit_code, quiet.stdout) == (0, "")
    assert runner.invoke(cli, ["-c", str(cfg), "validate"]).stdout != ""
    as_json = runner.invoke(cli, ["-q", "-c", str(cfg), "validate", "--json"])
    assert json.loads(as_json.stdout)["version"] == 1
    missing = runner.invoke(cli, ["-q", "-c", str(tmp_path / "none.toml"), "validate"])
    assert missing.exit_code == 2
    assert "configuration file not found" in missing.stderr


def test_bash_script_completes_in_a_real_bash(cfg: Path) -> None:
    """The printed script, sourced by bash, asks mxflip and fills COMPREPLY."""
    import shutil
    import subprocess
    import sys

    mxflip = Path(sys.executable).parent / "mxflip"
    bash = shutil.which("bash")
    if bash is None or not mxflip.exists():
        pytest.skip("needs bash and the mxflip console script beside this Python")
    script = (
        f'eval "$({mxflip} completion bash)"\n'
        f'COMP_WORDS=(mxflip -c {cfg} status ""); COMP_CWORD=4\n'
        f"_mxflip_completion {mxflip}\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["example.test", "lists.example.test"]
