"""The ``[canary]`` table and ``canary_address``: good shapes and bad ones, each bad one
one line naming the file and the key, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mxflip.cli import cli
from mxflip.config import load_config
from mxflip.duration import parse_duration
from tests.support.configs import GOOD, write_config

D = 'domains."example.test"'
CANARY = '\n[canary]\nmaildir = "Maildir"\n'


def test_defaults(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        GOOD.replace('provider = "lab"', 'provider = "lab"\ncanary_address = "c@example.test"')
        + CANARY,
    )
    config = load_config(path)
    canary = config.canary
    assert canary is not None
    assert (canary.mailbox, canary.maildir) == ("maildir", tmp_path / "Maildir")
    assert (canary.warn_after, canary.fail_after, canary.retry_window) == (900, 3600, 4 * 86400)
    assert canary.delete_after_check is True
    assert canary.state_file is None and canary.mail_from is None
    assert config.domains["example.test."].canary_address == "c@example.test"


def test_no_section_is_none(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, GOOD)).canary is None


def test_imap_and_durations(tmp_path: Path) -> None:
    text = GOOD + (
        '\n[canary]\nmailbox = "imap"\nimap_host = "imap.example.test"\nimap_port = 1993\n'
        'imap_user_env = "U"\nimap_password_env = "P"\nwarn_after = "5m"\n'
        'fail_after = "1h30m"\nretry_window = "5d"\nstate_file = "state/canary.json"\n'
        'from = "monitor@example.test"\ndelete_after_check = false\n'
    )
    canary = load_config(write_config(tmp_path, text)).canary
    assert canary is not None
    assert (canary.imap_host, canary.imap_port, canary.imap_password_env) == (
        "imap.example.test",
        1993,
        "P",
    )
    assert (canary.warn_after, canary.fail_after, canary.retry_window) == (300, 5400, 432000)
    assert canary.state_file == tmp_path / "state" / "canary.json"
    assert canary.mail_from == "monitor@example.test"
    assert canary.delete_after_check is False


def test_canary_address_from_defaults(tmp_path: Path) -> None:
    text = GOOD.replace("ttl = 3600", 'ttl = 3600\ncanary_address = "canary@{domain}"')
    text += '\n[domains."other.test"]\nprovider = "lab"\nprimary = ["10 mx.other.test"]\n'
    text += 'backup = ["10 b.other.test"]\n'
    config = load_config(write_config(tmp_path, text + CANARY))
    assert config.domains["example.test."].canary_address == "canary@example.test"
    assert config.domains["other.test."].canary_address == "canary@other.test"


BAD: list[tuple[str, str, str]] = [
    ("not-a-table", 'canary = "yes"\n' + GOOD, "canary: must be a table, not a string"),
    ("unknown-key", GOOD + CANARY + "warn = 5\n", "canary.warn: unknown key"),
    (
        "bad-mailbox",
        GOOD + '\n[canary]\nmailbox = "pop3"\n',
        "canary.mailbox: Input should be 'imap' or 'maildir'",
    ),
    (
        "imap-without-host",
        GOOD + '\n[canary]\nmailbox = "imap"\n',
        'canary.imap_host: required key is missing (mailbox = "imap")',
    ),
    (
        "maildir-without-path",
        GOOD + "\n[canary]\n",
        'canary.maildir: required key is missing (mailbox = "maildir")',
    ),
    (
        "bad-duration",
        GOOD + CANARY + 'warn_after = "soon"\n',
        "canary.warn_after: 'soon' is not a duration such as '90s', '15m', '1h30m' or '4d'",
    ),
    (
        "zero-duration",
        GOOD + CANARY + 'retry_window = "0d"\n',
        "canary.retry_window: '0d' must be longer than zero",
    ),
    (
        "fail-before-warn",
        GOOD + CANARY + 'warn_after = "2h"\n',
        "canary.fail_after: must be longer than warn_after",
    ),
    (
        "bad-from",
        GOOD + CANARY + 'from = "monitor"\n',
        "canary.from: 'monitor' is not an address like canary@example.com",
    ),
    (
        "secret-instead-of-env-name",
        GOOD + CANARY + 'imap_password_env = "hunter2 hunter2"\n',
        "canary.imap_password_env: 'hunter2 hunter2' is not an environment variable name",
    ),
    (
        "port-out-of-range",
        GOOD + CANARY + "imap_port = 0\n",
        "canary.imap_port: Input should be greater than or equal to 1",
    ),
    ("missing-ca-file", GOOD + CANARY + 'ca_file = "nope.pem"\n', "canary.ca_file: CA file"),
    (
        "bad-canary-address",
        GOOD.replace('provider = "lab"', 'provider = "lab"\ncanary_address = "canary"'),
        f"{D}.canary_address: 'canary' is not an address like",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_canary_config(tmp_path: Path, text: str, expected: str) -> None:
    path = write_config(tmp_path, text)
    result = CliRunner().invoke(cli, ["-c", str(path), "validate"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mxflip: error: {path}: {expected}"), lines[0]
    assert "Traceback" not in result.output


def test_secret_in_env_name_key_is_not_echoed_elsewhere(tmp_path: Path) -> None:
    """A password pasted where the variable's name belongs is named back only as the
    offending value in the one error line, never twice or in a traceback."""
    path = write_config(tmp_path, GOOD + CANARY + 'imap_password_env = "s3cr3t!"\n')
    result = CliRunner().invoke(cli, ["-c", str(path), "validate"])
    assert result.exit_code == 2
    assert result.output.count("s3cr3t!") <= 1


@pytest.mark.parametrize("command", ["send", "check", "run"])
def test_canary_commands_need_the_section(tmp_path: Path, command: str) -> None:
    path = write_config(tmp_path, GOOD)
    result = CliRunner().invoke(cli, ["-c", str(path), "canary", command])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"mxflip: error: {path}: no [canary] section (add [canary]")


def test_canary_needs_an_address(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD + CANARY)
    result = CliRunner().invoke(cli, ["-c", str(path), "canary", "send"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"mxflip: error: {path}: no domain has a canary_address")


def test_duration_accepts_numbers(tmp_path: Path) -> None:
    text = GOOD + CANARY + "warn_after = 60\nfail_after = 600.5\n"
    canary = load_config(write_config(tmp_path, text)).canary
    assert canary is not None and (canary.warn_after, canary.fail_after) == (60, 600.5)
    assert parse_duration(60) == 60
