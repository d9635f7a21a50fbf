"""Never fooled: hostile or malformed input gives one clear line (or a clean document),
never a traceback, an ``internal error``, a control sequence on the terminal or a secret.

Config values (control characters, huge numbers, NaN), journal lines of the wrong shape,
symlinked and world-writable state, damaged canary state, SMTP replies with terminal
escapes, provider errors that echo a token, ``--json`` on early errors.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from mxflip.cli import cli
from mxflip.errors import ProviderError
from mxflip.journal import Journal, JournalError, parse_journal
from mxflip.records import normalize_name
from mxflip.sanitize import _ESCAPES, clean, redact, register_secret
from tests.support.configs import GOOD, write_config

D = 'domains."example.test"'
#: GOOD with a provider that gives up quickly (nothing listens on its port).
QUICK = GOOD.replace('tsig_key_file = "lab.key"', 'tsig_key_file = "lab.key"\ntimeout = 0.3')


def run(path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-c", str(path), *args])


def one_line_error(result: Result, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mxflip: error: ") and text in lines[0], lines[0]
    assert "internal error" not in result.output and "Traceback" not in result.output


# ----------------------------------------------------------------- item 10: the wire


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("probe_recipient", "postmaster@example.test>\\r\\nDATA\\r\\nSubject: x\\r\\n\\r\\nhi"),
        ("probe_recipient", "postmaster@example.test\\n"),
        ("probe_recipient", "post master@example.test"),
        ("canary_address", "c@example.test\\u0000"),
    ],
)
def test_addresses_that_could_bend_an_smtp_command_are_refused(
    tmp_path: Path, key: str, value: str
) -> None:
    text = GOOD.replace('provider = "lab"', f'provider = "lab"\n{key} = "{value}"')
    result = run(write_config(tmp_path, text), "validate")
    assert result.exit_code == 2 and "internal error" not in result.output
    assert result.stderr.count("\n") == 1 and "mxflip: error: " in result.stderr
    assert "DATA" not in result.stdout


def test_control_characters_are_refused_in_any_setting(tmp_path: Path) -> None:
    text = GOOD + '\n[probe]\nhelo = "probe.example.test"\nmail_from = "a@b.test"\n'
    text = text.replace('helo = "probe.example.test"', 'helo = "probe\\n.example.test"')
    one_line_error(run(write_config(tmp_path, text), "validate"), 2, "probe.helo: holds a control")


def test_names_with_a_newline_are_not_names() -> None:
    for bad in ("probe\n.example.test", "example.test\n", "a\r.test", "a\x00.test"):
        with pytest.raises(ValueError, match="control character"):
            normalize_name(bad)
    assert normalize_name("Example.TEST.") == "example.test."


def test_probe_recipient_expands_domain(tmp_path: Path) -> None:
    from mxflip.config import load_config

    text = GOOD.replace('provider = "lab"', 'provider = "lab"\nprobe_recipient = "pm@{domain}"')
    config = load_config(write_config(tmp_path, text))
    assert config.domains["example.test."].probe_recipient == "pm@example.test"


def test_the_probe_never_sends_a_line_break() -> None:
    from mxflip.errors import ConfigError
    from mxflip.net.smtp import SMTPClient

    conv = SMTPClient.__new__(SMTPClient)
    conv.reader, conv.writer = object(), object()  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="line break"):
        asyncio.run(conv._send("RCPT TO:<a@b.test>\r\nDATA"))


# ----------------------------------------------------------------- item 11: numbers


@pytest.mark.parametrize(
    ("table", "value", "key"),
    [
        ("canary", "9" * 400, "canary.fail_after"),
        ("canary", "nan", "canary.fail_after"),
        ("canary", "inf", "canary.warn_after"),
        ("canary", '"1e400"', "canary.fail_after"),
        ("probe", "inf", "probe.slow_step"),
    ],
)
def test_numbers_too_large_or_not_numbers_are_one_line(
    tmp_path: Path, table: str, value: str, key: str
) -> None:
    field = key.split(".")[1]
    maildir = f'maildir = "{tmp_path / "md"}"\n' if table == "canary" else ""
    text = GOOD + f"\n[{table}]\n{maildir}{field} = {value}\n"
    result = run(write_config(tmp_path, text), "validate")
    one_line_error(result, 2, key)


def test_cloudflare_ttl_limits_are_checked_by_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "x" * 40)
    text = """
[providers.cf]
type = "cloudflare"

[defaults]
provider = "cf"
ttl = 3600
failover_ttl = 30
nameservers = ["127.0.0.1:5300"]

[domains."example.test"]
primary = ["10 mx1.proxy.test"]
backup = ["10 mail.example.test"]
"""
    result = run(write_config(tmp_path, text, key=None), "validate")
    one_line_error(result, 2, "defaults.failover_ttl: failover_ttl 30: Cloudflare accepts TTLs")
    ok = run(
        write_config(
            tmp_path,
            text.replace('type = "cloudflare"', 'type = "cloudflare"\nmin_ttl = 30'),
            key=None,
        ),
        "validate",
    )
    assert ok.exit_code == 0, ok.output


# ------------------------------------------------ items 12, 13: terminal and secrets


def test_escape_sequences_in_an_smtp_reply_never_reach_the_terminal() -> None:
    from mxflip.net.smtp import read_reply

    async def read() -> tuple[str, ...]:
        reader = asyncio.StreamReader()
        reader.feed_data(b"550-\x1b[2J\x1b[Hmailbox unavailable\r\n550 forged\rline\x07\r\n")
        reader.feed_eof()
        return (await read_reply(reader)).lines

    lines = asyncio.run(read())
    assert lines == ("mailbox unavailable", "forged line ")
    assert all(not any(ord(c) < 32 for c in line) for line in lines)


@given(
    st.text(max_size=40)
    | st.text(alphabet="a\x1b[]0;?@_\x07\\\t\r\n\x00\x7f\x85\x9b ", max_size=20)
)
def test_clean_removes_exactly_what_its_escape_pattern_matches(text: str) -> None:
    """clean() skips the pattern for printable text; the result is what the pattern alone
    gives, and nothing unprintable but a tab is left."""
    expected = _ESCAPES.sub(
        lambda m: " " if len(m.group()) == 1 and m.group() != "\x1b" else "", redact(text)
    )
    assert clean(text) == expected
    assert all(c.isprintable() or c == "\t" or ord(c) > 0x9F for c in clean(text))


def test_secrets_are_redacted_from_errors() -> None:
    token = "cf-token-0123456789abcdef"
    register_secret(token)
    exc = ProviderError(f"HTTP 400: echo Authorization: Bearer {token}\x1b[2J")
    assert token not in str(exc) and "Bearer [redacted]" in str(exc)
    assert "\x1b" not in str(exc)
    assert clean(f"x{token}y") == "x[redacted]y"


def test_an_echoed_token_never_reaches_status_or_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider whose error echoes the Authorization header (token from the env)."""
    token = "echo-me-token-9f8e7d6c5b4a"
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", token)
    import mxflip_cloudflare.provider as cf

    def echoing_read(self: object, zone: str, names: object) -> object:
        raise ProviderError(f"Cloudflare answered 400: Authorization: Bearer {token}")

    monkeypatch.setattr(cf.CloudflareProvider, "read", echoing_read)
    text = """
[providers.cf]
type = "cloudflare"

[defaults]
provider = "cf"
nameservers = ["127.0.0.1:9"]

[domains."example.test"]
primary = ["10 mx1.proxy.test"]
backup = ["10 mail.example.test"]
"""
    path = write_config(tmp_path, text, key=None)
    for args in (("status", "--timeout", "0.2"), ("status", "--timeout", "0.2", "--json")):
        result = run(path, *args)
        assert token not in result.output, args
        assert "[redacted]" in result.output
    doc = json.loads(run(path, "status", "--timeout", "0.2", "--json").stdout)
    assert "Bearer [redacted]" in doc["domains"][0]["provider_error"]


# ----------------------------------------------------------- item 14: --json errors


def test_json_config_error_is_one_document(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD.replace("ttl = 3600", "ttl = 0"))
    for command in (["status"], ["validate"], ["failover", "--all"], ["history"]):
        result = run(path, *command, "--json")
        assert result.exit_code == 2
        doc = json.loads(result.stdout)
        assert doc["exit_code"] == 2 and doc["command"] == command[0]
        assert "defaults.ttl" in doc["error"]


def test_json_lock_error_is_one_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXFLIP_JOURNAL", str(tmp_path / "state" / "journal.jsonl"))
    path = write_config(tmp_path, QUICK)
    journal = Journal(tmp_path / "state" / "journal.jsonl")
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()

    def hold() -> None:
        with journal.lock("mxflip failover --all"):
            ready.set()
            release.wait(30)

    proc = ctx.Process(target=hold)
    proc.start()
    try:
        assert ready.wait(30)
        result = run(path, "failover", "--all", "--yes", "--json")
        assert result.exit_code == 3
        doc = json.loads(result.stdout)
        assert doc["exit_code"] == 3
        assert doc["error"].startswith(f"another mxflip operation is running: pid {proc.pid}")
        # Item 6: status says an operation is running, and who runs it.
        status = run(path, "status", "--timeout", "0.2", "--json")
        assert json.loads(status.stdout)["running"].startswith(f"pid {proc.pid}, ")
    finally:
        release.set()
        proc.join(30)


# ----------------------------------------------------------- items 7, 8, 9: files


def test_symlinked_journal_and_lock_are_refused_and_never_written(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    victim_journal, victim_lock = tmp_path / "passwd", tmp_path / "shadow"
    victim_journal.write_text("root:x:0:0\n")
    victim_lock.write_text("precious\n")
    (state / "journal.jsonl").symlink_to(victim_journal)
    (state / "journal.jsonl.lock").symlink_to(victim_lock)
    journal = Journal(state / "journal.jsonl")
    with pytest.raises(JournalError, match="symbolic link"), journal.lock("mxflip failover"):
        pass
    with pytest.raises(JournalError, match="symbolic link"):
        journal.append({"type": "note", "op": "x"})
    with pytest.raises(JournalError, match="symbolic link"):
        journal.read()
    assert victim_journal.read_text() == "root:x:0:0\n"
    assert victim_lock.read_text() == "precious\n"


def test_the_lock_file_is_never_truncated(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "s" / "journal.jsonl")
    with journal.lock("mxflip failover"):
        size = journal.lock_path.stat().st_size
        assert size > 0
    # Released: overwritten in place, same size, no holder left.
    assert journal.lock_path.stat().st_size == size
    assert journal.lock_path.read_text().strip() == ""


def test_world_writable_journal_folder_is_refused_with_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    journal = Journal(folder / "journal.jsonl")
    with pytest.raises(JournalError) as info, journal.lock("x"):
        pass
    assert f"{folder} is writable by every user (mode 0777)" in str(info.value)
    assert f"chmod o-w {folder}" in str(info.value)


def test_read_only_journal_folder_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /sys refuses new files even to root, which a chmod cannot do.
    monkeypatch.setenv("MXFLIP_JOURNAL", "/sys/journal.jsonl")
    path = write_config(tmp_path, GOOD)
    result = run(path, "failover", "--all", "--yes")
    one_line_error(result, 3, "cannot lock the journal /sys/journal.jsonl.lock")


WRONG_SHAPES = [
    b'{"op":1,"type":"intent"}',
    b'{"type":"intent"}',
    b'{"op":"a","type":"intent","steps":"nope"}',
    b'{"op":"b","type":"intent","steps":[{"domain":"x."}]}',
    b'{"op":"c","type":"intent","steps":[{"domain":"x.","zone":"x.","provider":"p",'
    b'"before":{"name":"x.","ttl":"60","records":[]}}]}',
    # No "before": not "no MX" (a rollback to it would delete the live set).
    b'{"op":"f","type":"intent","steps":[{"domain":"x.","zone":"x.","provider":"p",'
    b'"prelower":null,"after":null}]}',
    b'{"op":"d","type":"intent","ts":NaN}',
    b"[1,2,3]",
    b'"just a string"',
    b'{"op":"e","type":"result","states":[1]}',
    b"{" * 5000,
]


def test_wrong_shaped_journal_lines_are_skipped_and_named(tmp_path: Path) -> None:
    good = (
        b'{"op":"ok","type":"intent","kind":"failover","ts":1.0,"steps":[{"domain":"x.test.",'
        b'"zone":"test.","provider":"p","before":null,"prelower":null,'
        b'"after":{"name":"x.test.","ttl":60,"records":["10 mx.test."]}}]}'
    )
    view = parse_journal(b"\n".join([*WRONG_SHAPES, good]))
    assert [op.id for op in view.operations] == ["ok"]
    assert view.skipped_lines == len(WRONG_SHAPES)
    assert view.problems[0] == "line 1: 'op' is not a non-empty string"
    assert view.operations[0].unsettled


def test_status_and_history_survive_a_damaged_journal_and_canary_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "journal.jsonl").write_bytes(b"\n".join(WRONG_SHAPES) + b"\n")
    (state / "canary.json").write_text('{"canaries": [{"token": 5}]}')
    monkeypatch.setenv("MXFLIP_JOURNAL", str(state / "journal.jsonl"))
    text = QUICK + f'\n[canary]\nmaildir = "{tmp_path / "md"}"\n'
    text = text.replace('provider = "lab"', 'provider = "lab"\ncanary_address = "c@{domain}"')
    path = write_config(tmp_path, text)
    result = run(path, "status", "--timeout", "0.2")
    assert "internal error" not in result.output and result.exit_code in (1, 3)
    assert "example.test" in result.stdout  # the DNS view is there
    assert "warning: journal line 1: 'op' is not a non-empty string (skipped)" in result.stdout
    assert f"canary state {state / 'canary.json'} is damaged" in result.stdout
    doc = json.loads(run(path, "status", "--timeout", "0.2", "--json").stdout)
    assert doc["canary_error"] and len(doc["journal_problems"]) == len(WRONG_SHAPES)
    history = run(path, "history", "--json")
    assert history.exit_code == 0 and json.loads(history.stdout)["skipped_lines"] == len(
        WRONG_SHAPES
    )


def test_canary_state_lives_beside_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mxflip.canary import state_file
    from mxflip.config import load_config

    text = GOOD + f'\n[canary]\nmaildir = "{tmp_path / "md"}"\n'
    config = load_config(write_config(tmp_path, text + '\n[journal]\npath = "j/journal.jsonl"\n'))
    monkeypatch.delenv("MXFLIP_JOURNAL", raising=False)
    assert state_file(config) == tmp_path / "j" / "canary.json"
    monkeypatch.setenv("MXFLIP_JOURNAL", str(tmp_path / "env" / "journal.jsonl"))
    assert state_file(config) == tmp_path / "env" / "canary.json"
    # A relative XDG_STATE_HOME is ignored alike by the journal and canary state.
    monkeypatch.delenv("MXFLIP_JOURNAL")
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    bare = load_config(write_config(tmp_path / "b", text))
    assert state_file(bare) == tmp_path / "home" / ".local/state/mxflip/canary.json"
    from mxflip.journal import default_journal_path

    assert default_journal_path(None).parent == state_file(bare).parent


def test_loose_tsig_key_file_gets_a_warning(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOD)
    (tmp_path / "lab.key").chmod(0o666)
    result = run(path, "validate")
    assert result.exit_code == 0
    assert f"TSIG key file {tmp_path / 'lab.key'} is readable by every user (mode 0666)" in (
        result.stderr
    )
    assert "c2VjcmV0" not in result.output


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    import signal

    from mxflip.cli import _on_sigterm

    # Outside an event loop, SIGINT has Python's default handler (set it: an earlier test
    # in this worker may have left another one): SIGTERM raises KeyboardInterrupt.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            _on_sigterm(15, None)
        # While a command's loop runs, its SIGINT handler (asyncio's: cancel the running
        # task) gets SIGTERM instead.
        seen: list[int] = []
        signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
        _on_sigterm(15, None)
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)
    assert os.name == "posix"
