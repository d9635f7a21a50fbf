"""Canaries through the live MX set (read from a real BIND9), and what ``mxflip status``
says about them: the last result per path, and the retry-window warning when the primary
path has been failing too long."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from click.testing import Result

from mxflip.provider import Change
from mxflip.records import RRset
from mxflip_rfc2136 import RFC2136Provider, RFC2136Settings
from tests.support.bind import BindServer
from tests.support.canary_lab import DOMAIN, FakeClock, Lab, ca, make_lab
from tests.support.cli import fake_runtime, invoke, use_runtime

pytestmark = pytest.mark.real_server

__all__ = ["ca"]

PRIMARY = ["10 mx1.proxy.test.", "20 mx2.proxy.test."]
BACKUP = ["10 backup.relay.test."]
DAY = 86400.0


@pytest.fixture
def lab(tmp_path: Path, ca: trustme.CA) -> Iterator[Lab]:
    yield from make_lab(tmp_path, ca)


def set_mx(bind: BindServer, records: list[str]) -> None:
    provider = RFC2136Provider.from_settings(
        "lab", RFC2136Settings(server=bind.address, tsig_key_file=bind.key_file)
    )
    name = f"{DOMAIN}."
    live = provider.read("example.test.", [name])
    provider.apply("example.test.", [Change(name, live[name], RRset.of(name, 3600, records))])


@pytest.fixture
def on_primary(bind: BindServer) -> None:
    set_mx(bind, PRIMARY)


def config(lab: Lab, bind: BindServer) -> Path:
    return lab.config(
        provider_server=bind.address,
        key_file=bind.key_file,
        nameservers=f'["{bind.address}"]',
    )


def mxflip_(path: Path, *args: str) -> Result:
    return invoke(["-c", str(path), *args])


def cli_():  # type: ignore[no-untyped-def]
    from mxflip.cli import cli

    return cli


def at(monkeypatch: pytest.MonkeyPatch, t: float) -> FakeClock:
    fake = FakeClock(t)
    use_runtime(monkeypatch, fake_runtime(fake))
    return fake


def status(path: Path) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = mxflip_(path, "status", DOMAIN, "--timeout", "1", "--json")
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == result.exit_code
    return result.exit_code, doc["domains"][0]


# -------------------------------------------------------------------- live path


def test_default_path_is_the_live_mx_set(lab: Lab, bind: BindServer, on_primary: None) -> None:
    result = mxflip_(config(lab, bind), "canary", "send", "--json")
    assert result.exit_code == 0, result.output
    (sent,) = json.loads(result.stdout)["canaries"]
    assert (sent["via"], sent["path"], sent["host"]) == ("live", "primary", "mx1.proxy.test")
    assert len(lab.proxy.handler.received) == 1 and lab.backup.handler.received == []


def test_after_a_failover_the_live_path_is_the_backup(lab: Lab, bind: BindServer) -> None:
    set_mx(bind, BACKUP)
    try:
        doc = json.loads(mxflip_(config(lab, bind), "canary", "send", "--json").stdout)
    finally:
        set_mx(bind, PRIMARY)
    assert doc["canaries"][0]["path"] == "backup"
    assert len(lab.backup.handler.received) == 1 and lab.proxy.handler.received == []


def test_unreadable_live_set_is_a_send_failure(lab: Lab, bind: BindServer) -> None:
    path = lab.config(nameservers=f'["{bind.address}"]')  # the provider is a closed port
    result = mxflip_(path, "canary", "send", "--json")
    assert result.exit_code == 3
    (sent,) = json.loads(result.stdout)["canaries"]
    assert sent["error"].startswith("cannot read the live MX set:")
    assert lab.proxy.handler.received == []


# ---------------------------------------------------------------------- status


def test_status_shows_the_last_result_per_path(
    lab: Lab, bind: BindServer, on_primary: None
) -> None:
    path = config(lab, bind)
    assert mxflip_(path, "canary", "run").exit_code == 0
    code, doc = status(path)
    assert code == 0
    (c,) = doc["canary"]
    assert (c["path"], c["status"], c["alert"]) == ("primary", "on_time", False)
    assert c["failing_since"] is None and c["retry_window_left_seconds"] is None
    assert c["last_success_at"] is not None
    text = mxflip_(path, "status", DOMAIN, "--timeout", "1").stdout
    assert f"{DOMAIN}: canary via primary: on time" in text
    assert "!!" not in text


def test_retry_window_warning(
    lab: Lab, bind: BindServer, on_primary: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy has been sitting on mail for a day: status says so, with the time left
    before senders give up (default 4 days), and suggests a failover."""
    path = config(lab, bind)
    lab.proxy.handler.drop = True
    now = time.time()
    clock = at(monkeypatch, now - DAY)
    assert mxflip_(path, "canary", "send").exit_code == 0
    clock.t += 2 * 3600
    assert mxflip_(path, "canary", "check").exit_code == 3
    at(monkeypatch, now)
    code, doc = status(path)
    assert code == 1  # on primary and consistent, but mail is not arriving
    (c,) = doc["canary"]
    assert (c["path"], c["status"], c["alert"]) == ("primary", "missing", True)
    assert c["retry_window_left_seconds"] == pytest.approx(3 * DAY, abs=60)
    result = mxflip_(path, "status", DOMAIN, "--timeout", "1")
    assert result.exit_code == 1
    alert = [line for line in result.stdout.splitlines() if line.startswith("!!")]
    assert alert == [
        f"!! {DOMAIN}: mail through the primary path has been late or missing for 1d; "
        "about 3d left before typical senders' retry windows run out and their mail "
        f"bounces. Consider: mxflip failover {DOMAIN}"
    ]


def test_retry_window_is_configurable_and_can_run_out(
    lab: Lab, bind: BindServer, on_primary: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = (
        f'mailbox = "maildir"\nmaildir = "{lab.maildir}"\n'
        'warn_after = "15m"\nfail_after = "1h"\nretry_window = "2d"\n'
    )
    path = lab.config(
        provider_server=bind.address,
        key_file=bind.key_file,
        nameservers=f'["{bind.address}"]',
        canary=canary,
    )
    lab.proxy.handler.drop = True
    now = time.time()
    at(monkeypatch, now - 3 * DAY)
    mxflip_(path, "canary", "send")
    at(monkeypatch, now)
    # Nobody ran check since: the outstanding canary alone makes the path failing.
    code, doc = status(path)
    (c,) = doc["canary"]
    assert (code, c["status"], c["alert"]) == (1, "missing", True)
    assert c["retry_window_left_seconds"] == pytest.approx(-DAY, abs=60)
    text = mxflip_(path, "status", DOMAIN, "--timeout", "1").stdout
    assert "retry windows have already run out: mail is being lost" in text


def test_late_but_not_for_long_is_not_an_alert(
    lab: Lab, bind: BindServer, on_primary: None
) -> None:
    path = config(lab, bind)
    lab.proxy.handler.delay = 20 * 60
    assert mxflip_(path, "canary", "run").exit_code == 1
    code, doc = status(path)
    (c,) = doc["canary"]
    assert (c["status"], c["alert"]) == ("late", False)
    assert code == 0


def test_backup_path_failing_is_not_a_failover_alert(
    lab: Lab, bind: BindServer, on_primary: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(lab, bind)
    lab.backup.handler.drop = True
    now = time.time()
    at(monkeypatch, now - DAY)
    mxflip_(path, "canary", "send", "--via", "backup")
    at(monkeypatch, now)
    code, doc = status(path)
    (c,) = doc["canary"]
    assert (c["path"], c["status"], c["alert"]) == ("backup", "missing", False)
    assert code == 0


def test_status_without_canary_section_has_no_canary_key(
    tmp_path: Path, bind: BindServer, on_primary: None
) -> None:
    text = (
        f'[providers.lab]\ntype = "rfc2136"\nserver = "{bind.address}"\n'
        f'tsig_key_file = "{bind.key_file}"\n\n[domains."{DOMAIN}"]\nprovider = "lab"\n'
        f'zone = "example.test"\nprimary = {json.dumps(PRIMARY)}\n'
        f'backup = {json.dumps(BACKUP)}\nnameservers = ["{bind.address}"]\n'
    )
    path = tmp_path / "plain.toml"
    path.write_text(text)
    code, doc = status(path)
    assert code == 0 and "canary" not in doc
