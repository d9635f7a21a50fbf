"""The offline quickstart: the README's sandbox command, run exactly as written, and the
sandbox's own parts (loopback DNS that follows the zone file, cleanup)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from click.testing import Result

from mxflip.drill import STEPS
from mxflip.sandbox import DOMAIN, ZONE, Sandbox
from tests.support.cli import fake_runtime, invoke

ROOT = Path(__file__).resolve().parent.parent


def quickstart_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Quickstart.*?(?=^## )", text, flags=re.S | re.M)
    assert match, "the README has a '## Quickstart' section"
    return match.group(0)


def quickstart_commands() -> list[list[str]]:
    """Every `mxflip …` line of the quickstart's first shell block."""
    block = re.search(r"```sh\n(.*?)```", quickstart_section(), flags=re.S)
    assert block
    commands = []
    for line in block.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("mxflip "):
            commands.append(shlex.split(line))
    return commands


def test_the_readme_quickstart_command_runs_a_passing_drill(tmp_path: Path) -> None:
    commands = quickstart_commands()
    assert commands == [["mxflip", "drill", "--sandbox"]]
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {
        **os.environ,
        # This checkout's code, whatever `mxflip` the machine has installed.
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "MXFLIP_JOURNAL": str(tmp_path / "users-journal.jsonl"),
        "NO_COLOR": "1",
    }
    env.pop("MXFLIP_CONFIG", None)
    [argv] = commands
    result = subprocess.run(
        [sys.executable, "-m", "mxflip", *argv[1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"Drill: {DOMAIN}" in out and "Drill passed: 1 domain" in out
    for step in STEPS:
        assert re.search(rf"│ {re.escape(step)} +│ ✓ pass", out), step
    # Nothing of the user's was touched, and nothing is left behind.
    assert not (tmp_path / "users-journal.jsonl").exists()
    assert list(home.iterdir()) == [] and list(tmp.iterdir()) == []
    # The README shows the real output of this command.
    shown = quickstart_section()
    assert "Drill passed: 1 domain" in shown
    for step in STEPS:
        assert re.search(rf"│ {re.escape(step)} +│ ✓ pass", shown), step


def ask(port: int, name: str, rdtype: str, *, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(query, "127.0.0.1", port=port, timeout=2)
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=2)


def test_sandbox_dns_follows_the_zone_file_and_everything_is_cleaned_up(
    monkeypatch: object,
) -> None:
    with Sandbox() as box:
        folder = box.folder
        assert folder is not None and folder.is_dir()
        [ns] = box.config.domains[DOMAIN + "."].nameservers
        mx = ask(ns.port, DOMAIN, "MX")
        assert mx.flags & dns.flags.AA and len(mx.answer[0]) == 2
        assert ask(ns.port, DOMAIN, "MX", tcp=True).answer == mx.answer
        assert ask(ns.port, f"nothing.{ZONE}", "A").rcode() == dns.rcode.NXDOMAIN
        nodata = ask(ns.port, f"mail.{ZONE}", "TLSA")
        assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
        assert ask(ns.port, "example.org", "MX").rcode() == dns.rcode.REFUSED
        # A replaced zone file is served at once (the zone-file adapter renames over it).
        zone_file = folder / f"{ZONE}.zone"
        new = zone_file.with_suffix(".new")
        new.write_text(zone_file.read_text().replace("drill      IN MX  20 mx2.proxy\n", ""))
        new.replace(zone_file)
        assert len(ask(ns.port, DOMAIN, "MX").answer[0]) == 1
        assert box.journal_path.parent == folder
    assert not folder.exists()
    assert box.folder is None


def test_ci_examples_run_a_drill_and_keep_its_junit_report() -> None:
    import yaml  # pyyaml comes with moto[server], in requirements-dev.txt

    github = yaml.safe_load((ROOT / "examples/ci/github-actions-drill.yml").read_text())
    assert "schedule" in github[True]  # YAML 1.1 reads the key `on` as true
    steps = github["jobs"]["drill"]["steps"]
    [drill] = [s for s in steps if "mxflip" in s.get("run", "") and " drill " in s["run"]]
    assert "--junit drill-junit.xml" in drill["run"]
    [upload] = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload["if"] == "always()" and "drill-junit.xml" in upload["with"]["path"]

    gitlab = yaml.safe_load((ROOT / "examples/ci/gitlab-ci-drill.yml").read_text())
    job = gitlab["mxflip-drill"]
    assert any(" drill " in line and "--junit drill-junit.xml" in line for line in job["script"])
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == "drill-junit.xml"


def _run_sandbox(monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """``mxflip drill --sandbox --planned`` in-process, with a fake clock: the countdown and
    its lines are the command's own, only the wait for the sandbox TTL takes no real time.
    (The README's command and SIGTERM are run as real processes above and below.)"""
    monkeypatch.delenv("MXFLIP_CONFIG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return invoke(["drill", "--sandbox", "--planned", *args], runtime=fake_runtime())


def test_planned_sandbox_drill_waits_the_short_lab_ttl_with_a_countdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mxflip.sandbox import SANDBOX_TTL

    result = _run_sandbox(monkeypatch)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Drill passed: 1 domain" in result.stdout
    lines = [line for line in result.stderr.splitlines() if "left (until " in line]
    assert lines, result.stderr
    assert lines[0].startswith(
        f"  waiting for caches of the old TTL to expire: {SANDBOX_TTL}s left (until 20"
    )
    assert re.fullmatch(r".* left \(until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)", lines[-1])
    assert lines[-1].split(": ", 1)[1].startswith("0s left")


def test_planned_sandbox_drill_countdown_in_json(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    result = _run_sandbox(monkeypatch, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    countdowns = [e for e in events if e["event"] == "countdown"]
    assert countdowns and countdowns[0]["phase"] == "prelower-wait"
    assert {e["until"] for e in countdowns} == {countdowns[0]["until"]}
    assert countdowns[-1]["remaining"] == 0
    assert json.loads(result.stdout)["exit_code"] == 0


def test_sigterm_during_a_drill_puts_everything_back(tmp_path: Path) -> None:
    """What CI sends when a job is cancelled: the drill stops, restores what it changed
    and reports (it used to die with -15 and leave the drill name on backup)."""
    import json
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("MXFLIP_JOURNAL", None)
    # --planned waits out the old TTL (a few seconds in the sandbox): SIGTERM arrives
    # during that countdown, inside the failover step.
    proc = subprocess.Popen(
        [sys.executable, "-m", "mxflip", "drill", "--sandbox", "--planned", "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 90
        for line in proc.stderr:  # progress events, one JSON line each
            if '"event": "countdown"' in line:
                break
            assert time.monotonic() < deadline, "the drill never reached the pre-lowering wait"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 3, out
    report = json.loads(out)
    steps = {s["name"]: s for s in report["domains"][0]["steps"]}
    assert steps["failover"]["status"] == "fail"
    assert "interrupted" in steps["failover"]["message"]
    assert steps["restore"]["status"] == "pass"
    assert steps["final-status"]["status"] == "pass"
