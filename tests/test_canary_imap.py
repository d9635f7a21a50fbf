"""``mxflip canary`` with the mailbox behind a real, private Dovecot IMAP server (TLS from
a trustme CA, a passwd-file user, a Maildir the proxy relay delivers into)."""

from __future__ import annotations

import imaplib
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner, Result

from mxflip.cli import cli
from tests.support.canary_lab import DOMAIN, FakeClock, Lab, ca, make_lab
from tests.support.cli import fake_runtime, invoke, use_runtime
from tests.support.dovecot import DovecotServer, dovecot

pytestmark = pytest.mark.real_server

__all__ = ["ca", "dovecot"]

USER_ENV = "MXFLIP_TEST_IMAP_USER"
PASSWORD_ENV = "MXFLIP_TEST_IMAP_PASSWORD"


@pytest.fixture
def lab(tmp_path: Path, ca: trustme.CA, dovecot: DovecotServer) -> Iterator[Lab]:
    yield from make_lab(tmp_path, ca, maildir=dovecot.maildir)


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch, dovecot: DovecotServer) -> None:
    monkeypatch.setenv(USER_ENV, dovecot.user)
    monkeypatch.setenv(PASSWORD_ENV, dovecot.password)


def imap_config(lab: Lab, dovecot: DovecotServer, *, ca_file: bool = True) -> Path:
    canary = (
        f'mailbox = "imap"\nimap_host = "127.0.0.1"\nimap_port = {dovecot.port}\n'
        f'imap_user_env = "{USER_ENV}"\nimap_password_env = "{PASSWORD_ENV}"\n'
        'warn_after = "15m"\nfail_after = "1h"\n'
        + (f'ca_file = "{dovecot.ca_file}"\n' if ca_file else "")
    )
    return lab.config(canary=canary)


def run(config: Path, *args: str) -> Result:
    return invoke(["-c", str(config), "canary", *args])


def canaries_on_server(dovecot: DovecotServer) -> int:
    ctx = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with imaplib.IMAP4_SSL("127.0.0.1", dovecot.port, ssl_context=ctx, timeout=10) as imap:
        imap.login(dovecot.user, dovecot.password)
        imap.select("INBOX")
        _, data = imap.search(None, "HEADER", "X-Mxflip-Canary", '""')
        return len(data[0].split())


def test_on_time_found_over_imap_and_removed(lab: Lab, dovecot: DovecotServer, creds: None) -> None:
    config = imap_config(lab, dovecot)
    assert run(config, "send", "--via", "primary").exit_code == 0
    assert canaries_on_server(dovecot) == 1
    result = run(config, "check", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (c,) = doc["canaries"]
    assert (c["status"], c["domain"], c["path"]) == ("on_time", DOMAIN, "primary")
    assert 0 <= c["delay_seconds"] < 60
    assert doc["deleted"] == 1
    assert canaries_on_server(dovecot) == 0


def test_late_measured_from_imap_internaldate(
    lab: Lab, dovecot: DovecotServer, creds: None
) -> None:
    lab.proxy.handler.delay = 2 * 3600
    config = imap_config(lab, dovecot)
    run(config, "send", "--via", "primary")
    doc = json.loads(run(config, "check", "--json").stdout)
    (c,) = doc["canaries"]
    assert (doc["exit_code"], c["status"]) == (1, "late")
    # INTERNALDATE has whole seconds.
    assert 2 * 3600 - 1 <= c["delay_seconds"] < 2 * 3600 + 60


def test_run_missing_over_imap(
    lab: Lab, dovecot: DovecotServer, creds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeClock()
    use_runtime(monkeypatch, fake_runtime(fake))
    lab.proxy.handler.drop = True
    result = run(imap_config(lab, dovecot), "run", "--via", "primary", "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["canaries"][0]["status"] == "missing"
    assert sum(fake.sleeps) == pytest.approx(3600)


def test_missing_credentials_is_usage_error(
    lab: Lab, dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(USER_ENV, dovecot.user)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    config = imap_config(lab, dovecot)
    run(config, "send", "--via", "primary")
    result = run(config, "check")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"mxflip: error: environment variable {PASSWORD_ENV} is not set"
    )


def test_run_checks_the_mailbox_before_sending(
    lab: Lab, dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(USER_ENV, raising=False)
    config = imap_config(lab, dovecot)
    result = run(config, "run", "--via", "primary")
    assert result.exit_code == 2
    assert f"environment variable {USER_ENV} is not set" in result.stderr
    assert lab.proxy.handler.received == []


def test_wrong_password_is_one_line_without_the_secret(
    lab: Lab, dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "Wr0ng-but-Secret-value"
    monkeypatch.setenv(USER_ENV, dovecot.user)
    monkeypatch.setenv(PASSWORD_ENV, secret)
    config = imap_config(lab, dovecot)
    run(config, "send", "--via", "primary")
    result = run(config, "check")
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"mxflip: error: IMAP server 127.0.0.1:{dovecot.port} refused the login"
    )
    assert secret not in result.output
    assert secret not in lab.state_file.read_text()


def test_secrets_never_reach_output_or_state(
    lab: Lab, dovecot: DovecotServer, creds: None, tmp_path: Path
) -> None:
    config = imap_config(lab, dovecot)
    prom = tmp_path / "canary.prom"
    outputs = [
        run(config, "run", "--via", "primary", "--json", "--prometheus", str(prom)),
        run(config, "check"),
        CliRunner().invoke(cli, ["-c", str(config), "validate", "--json"]),
    ]
    for text in [*(r.output for r in outputs), lab.state_file.read_text(), prom.read_text()]:
        assert dovecot.password not in text


def test_untrusted_certificate_says_what_to_do(
    lab: Lab, dovecot: DovecotServer, creds: None
) -> None:
    config = imap_config(lab, dovecot, ca_file=False)
    run(config, "send", "--via", "primary")
    result = run(config, "check")
    assert result.exit_code == 3
    assert "TLS failed" in result.stderr
    assert "set [canary] ca_file" in result.stderr
