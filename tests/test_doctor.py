"""``mxflip doctor`` against a healthy lab (the sandbox's zone file, loopback DNS and SMTP,
plus a private Dovecot for the canary mailbox) and broken ones; every broken case names
its fix."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from mxflip.cli import cli
from mxflip.clock import SystemClock
from mxflip.doctor import (
    check_canary,
    check_config,
    check_nameservers,
    check_providers,
    check_state,
    run_doctor,
)
from mxflip.sandbox import Sandbox
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from tests.support.bind import BindServer
from tests.support.canary_lab import ca
from tests.support.dovecot import DovecotServer
from tests.support.ports import free_port
from tests.support.required import server_unavailable

__all__ = ["ca"]

USER_ENV = "MXFLIP_DOCTOR_IMAP_USER"
PASSWORD_ENV = "MXFLIP_DOCTOR_IMAP_PASSWORD"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[DovecotServer]:
    server = DovecotServer(tmp_path_factory.mktemp("dovecot"), ca).start()
    yield server
    server.stop()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("MXFLIP_JOURNAL", str(folder / "journal.jsonl"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    return folder


@pytest.fixture
def sandbox(
    dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch, state_dir: Path
) -> Iterator[Path]:
    """The sandbox lab's configuration, with an IMAP canary mailbox on Dovecot."""
    monkeypatch.setenv(USER_ENV, dovecot.user)
    monkeypatch.setenv(PASSWORD_ENV, dovecot.password)
    with Sandbox() as box:
        assert box.folder is not None
        path = box.folder / "mxflip.toml"
        with path.open("a") as f:
            f.write(
                f'\n[canary]\nmailbox = "imap"\nimap_host = "127.0.0.1"\n'
                f'imap_port = {dovecot.port}\nimap_user_env = "{USER_ENV}"\n'
                f'imap_password_env = "{PASSWORD_ENV}"\nca_file = "{dovecot.ca_file}"\n'
                f'state_file = "{state_dir / "canary.json"}"\n'
            )
        yield path


def by_check(report_doc: dict[str, object]) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for c in report_doc["checks"]:  # type: ignore[attr-defined]
        out.setdefault(c["check"], []).append(c)
    return out


def test_healthy_lab_passes_every_check(sandbox: Path) -> None:
    result = run("-c", str(sandbox), "doctor", "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 0, doc
    assert doc["summary"]["fail"] == doc["summary"]["warn"] == 0
    checks = by_check(doc)
    assert {c["status"] for c in checks["provider"]} == {"ok"}
    assert [c["title"] for c in checks["provider"]] == [
        "provider sandbox: read in example.test",
        "provider sandbox: change records in example.test",
    ]
    assert checks["nameserver"][0]["detail"] == "1 answer authoritatively"
    assert [c["status"] for c in checks["readiness"]] == ["ok", "ok"]
    assert checks["canary"][0]["status"] == "ok"
    assert checks["state"][0]["status"] == "ok"
    assert checks["notify"][0]["status"] == "skip"


def test_checklist_and_test_notify_line(sandbox: Path) -> None:
    result = run("-c", str(sandbox), "doctor", "--test-notify")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "✓ configuration: " in lines[0]
    assert (
        "– notification channels: no notification channels are configured "
        "([watch] notify); nothing to test"
    ) in lines
    assert lines[-1] == "8 ok"


def test_bad_imap_password_names_the_variables(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    report = asyncio.run(run_doctor(str(sandbox), checks=[check_config, check_canary]))
    (canary,) = [r for r in report.results if r.check == "canary"]
    assert canary.status == "fail"
    assert "refused the login" in canary.detail
    assert canary.fix == f"check ${USER_ENV} and ${PASSWORD_ENV}"
    assert "not-the-password" not in repr(report)
    assert report.exit_code == 3


def test_dead_nameserver_names_the_server(sandbox: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    text = sandbox.read_text()
    sandbox.write_text(text.replace('nameservers = ["', f'nameservers = ["{dead}", "', 1))
    report = asyncio.run(
        run_doctor(str(sandbox), checks=[check_config, check_nameservers], dns_timeout=0.3)
    )
    (ns,) = [r for r in report.results if r.check == "nameserver"]
    assert ns.status == "fail"
    assert ns.detail.startswith(f"{dead}: no answer")
    assert ns.fix == (
        f"check that {dead} runs and serves zone example.test authoritatively, "
        "or correct nameservers for drill.example.test"
    )


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot create files in (immutable when run as root)."""
    folder = tmp_path / "ro-state"
    folder.mkdir()
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if done.returncode != 0:
            server_unavailable(
                "chattr +i", done.stderr.decode(errors="replace"), "apt-get install e2fsprogs"
            )
    else:
        folder.chmod(0o500)
    yield folder
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], check=False)
    folder.chmod(0o700)


def test_read_only_state_dir_names_the_fix(
    sandbox: Path, read_only: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MXFLIP_JOURNAL", str(read_only / "journal.jsonl"))
    report = asyncio.run(run_doctor(str(sandbox), checks=[check_config, check_state]))
    state = next(r for r in report.results if r.check == "state")
    assert state.title == f"state directory {read_only}"
    assert state.status == "fail"
    assert state.detail.startswith("not writable: ")
    assert state.fix is not None and state.fix.startswith(f"make {read_only} writable by ")
    assert "[journal] path" in state.fix


def test_canary_state_elsewhere_is_checked_too(
    sandbox: Path, read_only: Path, state_dir: Path
) -> None:
    text = sandbox.read_text()
    sandbox.write_text(text.replace(str(state_dir / "canary.json"), str(read_only / "c.json")))
    report = asyncio.run(run_doctor(str(sandbox), checks=[check_config, check_state]))
    journal, canary = [r for r in report.results if r.check == "state"]
    assert journal.status == "ok"
    assert (canary.title, canary.status) == (f"canary state directory {read_only}", "fail")
    assert canary.fix is not None and "[canary] state_file" in canary.fix


def test_held_lock_is_a_warning(sandbox: Path, state_dir: Path) -> None:
    from mxflip.journal import Journal

    with Journal(state_dir / "journal.jsonl").lock("mxflip failover --all"):
        report = asyncio.run(run_doctor(str(sandbox), checks=[check_config, check_state]))
    (state,) = [r for r in report.results if r.check == "state"]
    assert state.status == "warn"
    assert "mxflip failover --all" in state.detail
    assert report.exit_code == 1


def test_invalid_config_stops_with_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "mxflip.toml"
    cfg.write_text("[domains.x]\n")
    result = run("-c", str(cfg), "doctor", "--json")
    assert result.exit_code == 3
    (only,) = json.loads(result.stdout)["checks"]
    assert only["check"] == "config" and only["status"] == "fail"
    assert "providers" in only["detail"] or "provider" in only["detail"]


# ------------------------------------------------------------------ RFC 2136: TSIG clock


def rfc2136_config(folder: Path, bind: BindServer) -> Path:
    path = folder / "mxflip.toml"
    path.write_text(
        f'[providers.lab]\ntype = "rfc2136"\nserver = "{bind.address}"\n'
        f'tsig_key_file = "{bind.key_file}"\n\n'
        f'[domains."contract.test"]\nprovider = "lab"\nprimary = ["10 a.example.net"]\n'
        f'backup = ["10 b.example.net"]\nnameservers = ["{bind.address}"]\n'
    )
    return path


def test_skewed_tsig_clock_says_to_fix_ntp(bind: BindServer, tmp_path: Path) -> None:
    built = RFC2136Provider.from_settings(
        "lab", RFC2136Settings(server=bind.address, tsig_key_file=bind.key_file)
    )

    class Behind(SystemClock):  # this machine's clock 10 min behind
        def now(self) -> float:
            return time.time() - 600

    provider = RFC2136Provider("lab", built._client, clock=Behind())
    report = asyncio.run(
        run_doctor(
            str(rfc2136_config(tmp_path, bind)),
            checks=[check_config, check_providers],
            providers={"lab": provider},
        )
    )
    (clock,) = [r for r in report.results if r.check == "tsig-clock"]
    assert clock.status == "fail"
    assert clock.title == "TSIG clock (provider lab)"
    assert re.search(r"differ by (599|600|601) s$", clock.detail)
    assert clock.fix is not None and "NTP" in clock.fix
    others = [r for r in report.results if r.check == "provider"]
    assert {r.status for r in others} == {"ok"}


def test_rfc2136_healthy_provider_and_nameserver(bind: BindServer, tmp_path: Path) -> None:
    report = asyncio.run(
        run_doctor(
            str(rfc2136_config(tmp_path, bind)),
            checks=[check_config, check_providers, check_nameservers],
        )
    )
    assert [(r.check, r.status) for r in report.results] == [
        ("config", "ok"),
        ("provider", "ok"),
        ("tsig-clock", "ok"),
        ("provider", "ok"),
        ("nameserver", "ok"),
    ]


def test_a_broken_check_does_not_hide_the_others(sandbox: Path) -> None:
    def check_broken(ctx: object) -> list[object]:
        raise RuntimeError("boom")

    report = asyncio.run(run_doctor(str(sandbox), checks=[check_config, check_broken, check_state]))  # type: ignore[list-item]
    assert [(r.check, r.status) for r in report.results] == [
        ("config", "ok"),
        ("broken", "fail"),
        ("state", "ok"),
    ]
    assert report.results[1].detail == "the check itself failed: RuntimeError: boom"


@settings(deadline=None)  # the first example imports the renderer (rich)
@given(st.lists(st.sampled_from(["ok", "warn", "fail", "skip"]), max_size=12))
def test_exit_code_is_the_worst_status(statuses: list[str]) -> None:
    from mxflip.doctor import CheckResult, DoctorReport
    from mxflip.render.doctor import doctor_json

    report = DoctorReport(tuple(CheckResult("x", s, "t", "d") for s in statuses))
    expected = 3 if "fail" in statuses else 1 if "warn" in statuses else 0
    assert int(report.exit_code) == expected
    doc = doctor_json(report)
    assert doc["exit_code"] == expected
    assert sum(doc["summary"].values()) == len(statuses)
