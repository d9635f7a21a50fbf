"""``mxflip doctor``'s notification check against loopback receivers: a working ``json://``
channel, one answering 500, a dead port, none; the heartbeat URL; ``--test-notify`` sends
exactly one message per channel; lines name channels by scheme only (URLs hold secrets)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mxflip.cli import cli
from mxflip.doctor import check_config, check_notify, run_doctor
from mxflip.sandbox import Sandbox
from tests.support.ports import free_port
from tests.support.receiver import Receiver

SECRET = "s3cr3t-token"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    good, bad = Receiver(), Receiver(mode="error")
    yield good, bad
    good.stop()
    bad.stop()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MXFLIP_JOURNAL", str(tmp_path / "state" / "journal.jsonl"))
    with Sandbox() as box:
        assert box.folder is not None
        yield box.folder / "mxflip.toml"


def with_watch(path: Path, table: str) -> Path:
    with path.open("a") as f:
        f.write(f'\n[watch]\ntimeout = "3s"\n{table}\n')
    return path


def test_each_channel_checked_and_tested_by_scheme_only(
    config: Path, receivers: tuple[Receiver, Receiver]
) -> None:
    good, bad = receivers
    dead = f"jsons://127.0.0.1:{free_port()}/{SECRET}"
    with_watch(
        config,
        f'notify = ["{good.url(path=SECRET)}", "{bad.url(path=SECRET)}", "{dead}"]\n'
        f'heartbeat_url = "http://127.0.0.1:{good.port}/hb-{SECRET}"',
    )
    result = run("-c", str(config), "doctor", "--test-notify", "--json")
    assert SECRET not in result.output
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 3
    notify = [c for c in doc["checks"] if c["check"] == "notify"]
    assert [(c["title"], c["status"]) for c in notify] == [
        ("notification channel 1 (json://…)", "ok"),
        ("notification channel 2 (json://…)", "fail"),
        ("notification channel 3 (jsons://…)", "fail"),
        ("heartbeat (http://…)", "ok"),
    ]
    assert notify[0]["detail"] == "a test message went through"
    assert notify[1]["detail"].startswith("the test message failed")
    assert "alerts through this channel would be lost" in notify[1]["fix"]
    assert notify[2]["detail"].startswith("cannot connect to its host")
    # Exactly one test message per reachable channel; the heartbeat is never requested.
    assert [a["title"] for a in good.alerts()] == ["mxflip: test notification"]
    assert len(bad.requests) == 1
    assert not [r for r in good.requests if r.path.startswith("/hb")]


def test_without_test_notify_nothing_is_sent(
    config: Path, receivers: tuple[Receiver, Receiver]
) -> None:
    good, _ = receivers
    with_watch(config, f'notify = ["{good.url(path=SECRET)}"]')
    result = run("-c", str(config), "doctor")
    assert SECRET not in result.output
    assert (
        "✓ notification channel 1 (json://…): reachable (not tested: --test-notify sends a message)"
    ) in result.stdout.splitlines()
    assert good.requests == []


def test_a_dead_port_is_a_failure_line_with_a_fix(config: Path) -> None:
    with_watch(config, f'notify = ["json://127.0.0.1:{free_port()}/{SECRET}"]')
    result = run("-c", str(config), "doctor")
    lines = result.stdout.splitlines()
    assert result.exit_code == 3
    (line,) = [ln for ln in lines if "notification channel 1" in ln]
    assert line.startswith("✗ notification channel 1 (json://…): cannot connect to its host")
    assert lines[lines.index(line) + 1].strip().startswith("fix: check the URL in [watch] notify")
    assert SECRET not in result.output


def test_no_channels_is_the_one_skip_line(config: Path) -> None:
    with_watch(config, "")
    report = asyncio.run(
        run_doctor(str(config), checks=[check_config, check_notify], test_notify=True)
    )
    (notify,) = [r for r in report.results if r.check == "notify"]
    assert (notify.status, notify.detail) == (
        "skip",
        "no notification channels are configured ([watch] notify); nothing to test",
    )
