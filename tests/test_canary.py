"""``mxflip canary`` against real loopback SMTP relays delivering into a Maildir: on time,
late, missing, pending; send failures; run with a bounded wait; JSON shape, exit codes and
the Prometheus textfile, validated line by line."""

from __future__ import annotations

import asyncio
import email
import json
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme
from click.testing import Result
from hypothesis import given
from hypothesis import strategies as st

import mxflip.canary
from mxflip.canary import (
    TOKEN_HEADER,
    MaildirMailbox,
    WaitProgress,
    canary_domains,
    run_canaries,
    status_by_age,
)
from mxflip.canary.state import CanaryStore
from mxflip.config import load_config
from mxflip.duration import MAX_SECONDS, format_duration, parse_duration
from tests.support.canary_lab import ADDRESS, DOMAIN, FakeClock, Lab, ca, make_lab
from tests.support.cli import fake_runtime, invoke, use_runtime
from tests.support.ports import free_port
from tests.support.relay import Relay, RelayHandler

__all__ = ["ca"]


@pytest.fixture
def lab(tmp_path: Path, ca: trustme.CA) -> Iterator[Lab]:
    yield from make_lab(tmp_path, ca)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The CLI's clock, moved by hand (sleeps advance it; nothing waits)."""
    fake = FakeClock()
    use_runtime(monkeypatch, fake_runtime(fake))
    return fake


def mxflip_(config: Path, *args: str) -> Result:
    return invoke(["-c", str(config), *args])


def json_of(result: Result) -> dict:  # type: ignore[type-arg]
    doc = json.loads(result.stdout)
    assert doc["version"] == 1
    assert doc["exit_code"] == result.exit_code
    return doc  # type: ignore[no-any-return]


def messages(maildir: Path) -> list[Path]:
    return sorted([*(maildir / "new").iterdir(), *(maildir / "cur").iterdir()])


# ------------------------------------------------------------------------- send


def test_send_submits_a_tagged_message_over_starttls(lab: Lab) -> None:
    result = mxflip_(lab.config(), "canary", "send", "--via", "primary", "--json")
    assert result.exit_code == 0, result.output
    doc = json_of(result)
    assert doc["command"] == "canary send"
    (sent,) = doc["canaries"]
    assert sent["domain"] == DOMAIN and sent["address"] == ADDRESS
    assert (sent["path"], sent["via"], sent["ok"], sent["host"]) == (
        "primary",
        "primary",
        True,
        "mx1.proxy.test",
    )
    assert sent["tls"] == "starttls"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", sent["sent_at"])
    (received,) = lab.proxy.handler.received
    assert received.tls is True  # STARTTLS was offered, so it was used
    assert received.rcpt_tos == [ADDRESS]
    assert received.mail_from == "mxflip@monitor.example.test"
    msg = email.message_from_bytes(received.content)
    assert msg[TOKEN_HEADER] == sent["token"]
    assert sent["token"] in msg["Subject"]
    assert msg["X-Mxflip-Canary-Sent"] == sent["sent_at"]
    state = json.loads(lab.state_file.read_text())
    assert [c["token"] for c in state["canaries"]] == [sent["token"]]
    assert lab.state_file.stat().st_mode & 0o077 == 0


def test_sends_never_load_a_ca_store(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The canary encrypts without verifying (as MTAs do), so it never builds the verifying
    context: loading the system's CAs cost ~80 ms of CPU per message in watch rounds."""
    import ssl

    built: list[object] = []
    real = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        built.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    for _ in range(2):
        result = mxflip_(lab.config(), "canary", "send", "--via", "primary", "--json")
        assert result.exit_code == 0, result.output
        assert json_of(result)["canaries"][0]["tls"] == "starttls"
    assert [r.tls for r in lab.proxy.handler.received] == [True, True]
    assert built == []


def test_plain_smtp_when_starttls_is_not_offered(lab: Lab) -> None:
    plain = Relay(RelayHandler(lab.maildir), lab.ca, starttls=False)
    try:
        config = lab.config(mx1=plain.address)
        doc = json_of(mxflip_(config, "canary", "send", "--via", "primary", "--json"))
    finally:
        plain.stop()
    assert (doc["exit_code"], doc["canaries"][0]["tls"]) == (0, "none")
    assert plain.handler.received[0].tls is False


def test_tokens_are_unique(lab: Lab) -> None:
    config = lab.config()
    tokens = {
        json_of(mxflip_(config, "canary", "send", "--via", "primary", "--json"))["canaries"][0][
            "token"
        ]
        for _ in range(3)
    }
    assert len(tokens) == 3


def test_via_backup_goes_direct(lab: Lab) -> None:
    result = mxflip_(lab.config(), "canary", "send", DOMAIN, "--via", "backup", "--json")
    assert result.exit_code == 0, result.output
    assert json_of(result)["canaries"][0]["path"] == "backup"
    assert len(lab.backup.handler.received) == 1
    assert lab.proxy.handler.received == []


def test_next_mx_host_when_the_first_is_down(lab: Lab) -> None:
    dead = f"127.0.0.1:{free_port()}"
    config = lab.config(mx1=dead, mx2=lab.proxy.address)
    doc = json_of(mxflip_(config, "canary", "send", "--via", "primary", "--json"))
    (sent,) = doc["canaries"]
    assert sent["ok"] is True and sent["host"] == "mx2.proxy.test"
    assert [a["host"] for a in sent["attempts"]] == ["mx1.proxy.test", "mx2.proxy.test"]
    assert sent["attempts"][0]["error"]


def test_send_failure_is_exit_3_and_recorded(lab: Lab) -> None:
    config = lab.config(mx1=f"127.0.0.1:{free_port()}")
    result = mxflip_(config, "canary", "send", "--via", "primary")
    assert result.exit_code == 3
    assert "no MX host accepted the canary" in result.stdout
    check = json_of(mxflip_(config, "canary", "check", "--json"))
    assert check["canaries"] == []  # nothing outstanding: it never left
    state = json.loads(lab.state_file.read_text())
    assert state["paths"][0]["status"] == "send_failed"


def test_permanent_refusal_stops_without_trying_further(lab: Lab) -> None:
    lab.proxy.handler.reject_rcpt = "550 5.1.1 no such user"
    config = lab.config(mx2=lab.proxy.address)  # the same refusing relay as mx2
    doc = json_of(mxflip_(config, "canary", "send", "--via", "primary", "--json"))
    (sent,) = doc["canaries"]
    assert doc["exit_code"] == 3
    assert len(sent["attempts"]) == 1
    assert "550" in sent["attempts"][0]["error"]
    assert lab.proxy.handler.rcpt_attempts == 1


def test_domain_without_canary_address_is_usage_error(lab: Lab) -> None:
    result = mxflip_(lab.config(), "canary", "send", "plain.example.test")
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(
        "mxflip: error: domain plain.example.test has no canary_address"
    )


# ------------------------------------------------------------------------ check


def test_on_time(lab: Lab) -> None:
    config = lab.config()
    mxflip_(config, "canary", "send", "--via", "primary")
    assert len(messages(lab.maildir)) == 1
    result = mxflip_(config, "canary", "check", "--json")
    assert result.exit_code == 0, result.output
    doc = json_of(result)
    assert doc["command"] == "canary check"
    assert set(doc) == {
        "version",
        "command",
        "exit_code",
        "checked_at",
        "warn_after_seconds",
        "fail_after_seconds",
        "deleted",
        "canaries",
    }
    assert (doc["warn_after_seconds"], doc["fail_after_seconds"]) == (900, 3600)
    (c,) = doc["canaries"]
    assert set(c) == {
        "domain",
        "path",
        "token",
        "status",
        "address",
        "sent_at",
        "arrived_at",
        "delay_seconds",
        "host",
        "error",
    }
    assert (c["status"], c["path"], c["domain"]) == ("on_time", "primary", DOMAIN)
    assert 0 <= c["delay_seconds"] < 60
    assert c["arrived_at"] is not None
    assert doc["deleted"] == 1
    assert messages(lab.maildir) == []
    # Checked once; a second check has nothing outstanding.
    assert json_of(mxflip_(config, "canary", "check", "--json"))["canaries"] == []


def test_late(lab: Lab) -> None:
    lab.proxy.handler.delay = 20 * 60  # the proxy sat on it for 20 minutes
    config = lab.config()
    mxflip_(config, "canary", "send", "--via", "primary")
    result = mxflip_(config, "canary", "check")
    assert result.exit_code == 1
    assert "late" in result.stdout
    doc = json_of(mxflip_(config, "canary", "check", "--json"))
    assert doc["canaries"] == []  # resolved by the first check
    state = json.loads(lab.state_file.read_text())
    summary = state["paths"][0]
    assert summary["status"] == "late"
    assert 20 * 60 <= summary["delay"] < 20 * 60 + 60


def test_pending_then_late_then_missing(lab: Lab, clock: FakeClock) -> None:
    lab.proxy.handler.drop = True  # accepted, never delivered
    config = lab.config()
    mxflip_(config, "canary", "send", "--via", "primary")
    first = json_of(mxflip_(config, "canary", "check", "--json"))
    assert (first["exit_code"], first["canaries"][0]["status"]) == (0, "pending")
    clock.t += 20 * 60
    second = json_of(mxflip_(config, "canary", "check", "--json"))
    assert (second["exit_code"], second["canaries"][0]["status"]) == (1, "late")
    assert second["canaries"][0]["arrived_at"] is None
    clock.t += 60 * 60
    third = json_of(mxflip_(config, "canary", "check", "--json"))
    (c,) = third["canaries"]
    assert (third["exit_code"], c["status"]) == (3, "missing")
    assert c["delay_seconds"] == pytest.approx(80 * 60, abs=5)


def test_missing_canary_that_turns_up_days_later_is_late(lab: Lab, clock: FakeClock) -> None:
    lab.proxy.handler.drop = True
    config = lab.config()
    sent = json_of(mxflip_(config, "canary", "send", "--via", "primary", "--json"))
    clock.t += 2 * 3600
    assert mxflip_(config, "canary", "check").exit_code == 3
    # Checked again while still missing: not reported a second time (the path may have
    # recovered meanwhile; an old loss must not keep the exit code at 3 for days).
    clock.t += 3600
    again = json_of(mxflip_(config, "canary", "check", "--json"))
    assert (again["exit_code"], again["canaries"]) == (0, [])
    # The proxy finally lets it through, two days after it was sent.
    lab.proxy.handler.delay = 2 * 86400
    lab.proxy.handler.deliver(lab.proxy.handler.received[0].content)
    clock.t += 2 * 86400
    doc = json_of(mxflip_(config, "canary", "check", "--json"))
    (c,) = doc["canaries"]
    assert c["token"] == sent["canaries"][0]["token"]
    assert (c["status"], doc["exit_code"]) == ("late", 1)
    assert c["delay_seconds"] >= 2 * 86400


def test_a_canary_lost_for_good_is_given_up_and_the_state_stays_bounded(
    lab: Lab, clock: FakeClock
) -> None:
    lab.proxy.handler.drop = True  # accepted, never delivered: lost in an outage
    config = lab.config()
    for _ in range(3):
        mxflip_(config, "canary", "send", "--via", "primary")
    clock.t += 2 * 3600
    assert mxflip_(config, "canary", "check").exit_code == 3
    # Past twice the retry window (default 4 days) no sender still retries it.
    clock.t += 8 * 86400
    doc = json_of(mxflip_(config, "canary", "check", "--json"))
    assert (doc["exit_code"], doc["canaries"]) == (0, [])
    records = json.loads(lab.state_file.read_text())["canaries"]
    assert len(records) == 3
    assert all(r["status"] == "missing" and r["given_up_at"] == clock.t for r in records)
    # Given-up canaries are history: capped like every resolved one, never kept forever.
    store = CanaryStore(lab.state_file)
    with store.update() as state:
        template = state.records[0]
        state.records = [replace(template, token=f"t{i}", sent_at=i) for i in range(500)]
    kept = json.loads(lab.state_file.read_text())["canaries"]
    assert len(kept) == 200 and kept[-1]["token"] == "t499"


def test_keep_leaves_the_message(lab: Lab) -> None:
    config = lab.config()
    mxflip_(config, "canary", "send", "--via", "primary")
    doc = json_of(mxflip_(config, "canary", "check", "--keep", "--json"))
    assert doc["deleted"] == 0
    assert len(messages(lab.maildir)) == 1


def test_foreign_canaries_are_left_alone(lab: Lab) -> None:
    """A canary of another mxflip (same mailbox, another state file) is not ours to
    delete."""
    (lab.maildir / "new" / "1.foreign").write_bytes(
        f"{TOKEN_HEADER}: {'ab' * 12}\nSubject: mxflip canary\n\nx\n".encode()
    )
    config = lab.config()
    mxflip_(config, "canary", "send", "--via", "primary")
    assert json_of(mxflip_(config, "canary", "check", "--json"))["deleted"] == 1
    assert [p.name for p in messages(lab.maildir)] == ["1.foreign"]


def test_not_a_maildir_is_one_line(lab: Lab, tmp_path: Path) -> None:
    canary = f'mailbox = "maildir"\nmaildir = "{tmp_path / "nowhere"}"\n'
    config = lab.config(canary=canary)
    mxflip_(config, "canary", "send", "--via", "primary")
    result = mxflip_(config, "canary", "check")
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        f"mxflip: error: {tmp_path / 'nowhere'} is not a Maildir (no new/ or cur/ folder) "
        "(check [canary] maildir)"
    )


# -------------------------------------------------------------------------- run


def test_run_on_time(lab: Lab, clock: FakeClock) -> None:
    result = mxflip_(lab.config(), "canary", "run", "--via", "primary", "--json")
    assert result.exit_code == 0, result.output
    doc = json_of(result)
    assert doc["command"] == "canary run"
    assert [c["status"] for c in doc["canaries"]] == ["on_time"]
    assert doc["sent"][0]["token"] == doc["canaries"][0]["token"]
    assert clock.sleeps == []  # found on the first look


def test_run_late(lab: Lab, clock: FakeClock) -> None:
    lab.proxy.handler.delay = 30 * 60
    result = mxflip_(lab.config(), "canary", "run", "--via", "primary", "--json")
    assert result.exit_code == 1
    assert json_of(result)["canaries"][0]["status"] == "late"


def test_run_missing_waits_bounded(lab: Lab, clock: FakeClock) -> None:
    lab.proxy.handler.drop = True
    result = mxflip_(lab.config(), "canary", "run", "--via", "primary", "--json")
    assert result.exit_code == 3
    assert json_of(result)["canaries"][0]["status"] == "missing"
    # Waited fail_after (1h) in poll_interval (10s) steps, and not a step more.
    assert sum(clock.sleeps) == pytest.approx(3600)
    assert len(clock.sleeps) == 360


def test_run_with_short_wait_reports_what_it_knows(lab: Lab, clock: FakeClock) -> None:
    lab.proxy.handler.drop = True
    result = mxflip_(lab.config(), "canary", "run", "--via", "primary", "--wait", "2m")
    assert result.exit_code == 0  # younger than warn_after: pending, looked for next time
    assert "pending" in result.stdout
    assert sum(clock.sleeps) == pytest.approx(120)


def test_run_send_failure_is_exit_3(lab: Lab, clock: FakeClock) -> None:
    config = lab.config(mx1=f"127.0.0.1:{free_port()}")
    doc = json_of(mxflip_(config, "canary", "run", "--via", "primary", "--json"))
    assert doc["exit_code"] == 3
    assert doc["canaries"][0]["status"] == "send_failed"
    assert doc["canaries"][0]["error"].startswith("no MX host accepted the canary")
    assert clock.sleeps == []  # nothing to wait for


def test_run_reports_progress(lab: Lab) -> None:
    lab.proxy.handler.drop = True
    fake = FakeClock()
    seen: list[WaitProgress] = []
    config = load_config(lab.config())
    report = asyncio.run(
        run_canaries(
            config,
            canary_domains(config, []),
            "primary",
            wait=60,
            clock=fake.clock(),
            progress=seen.append,
        )
    )
    assert [o.status for o in report.outcomes] == ["pending"]
    assert [p.arrived for p in seen] == [0] * 7
    assert seen[-1].elapsed == pytest.approx(60) and seen[-1].total == 1


def test_bad_wait_is_usage_error(lab: Lab) -> None:
    result = mxflip_(lab.config(), "canary", "run", "--wait", "soon")
    assert result.exit_code == 2
    assert "is not a duration" in result.stderr


# ------------------------------------------------------------------- prometheus

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
_SAMPLE = re.compile(
    rf"^(?P<name>{_NAME})(?:\{{(?P<labels>{_LABEL}(?:,{_LABEL})*)?\}})? "
    r"(?P<value>[^ ]+)(?: (?P<ts>-?\d+))?$"
)
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def validate_textfile(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Check ``text`` line by line against the Prometheus text exposition format that
    node_exporter's textfile collector reads; return the samples by metric."""
    assert text.endswith("\n"), "the file must end with a newline"
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    helped: set[str] = set()
    typed: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        assert line, f"line {n}: blank line"
        if line.startswith("#"):
            m = re.fullmatch(rf"# (HELP|TYPE) ({_NAME}) (.+)", line)
            assert m, f"line {n}: malformed comment {line!r}"
            kind, name, rest = m.groups()
            if kind == "HELP":
                assert name not in helped, f"line {n}: second HELP for {name}"
                helped.add(name)
            else:
                assert name not in typed, f"line {n}: second TYPE for {name}"
                assert name not in samples, f"line {n}: TYPE after samples of {name}"
                assert rest in _TYPES, f"line {n}: unknown type {rest!r}"
                typed[name] = rest
            continue
        m = _SAMPLE.match(line)
        assert m, f"line {n}: malformed sample {line!r}"
        name = m["name"]
        assert name in typed, f"line {n}: sample of {name} before its TYPE"
        labels = dict(
            re.fullmatch(r'([^=]+)="(.*)"', pair).groups()  # type: ignore[union-attr]
            for pair in re.findall(_LABEL, m["labels"] or "")
        )
        value = float(m["value"])  # raises on anything Prometheus cannot parse
        assert labels not in [lbl for lbl, _ in samples.get(name, [])], f"line {n}: duplicate"
        samples.setdefault(name, []).append((labels, value))
    assert set(typed) == set(helped) == set(samples)
    return samples


def test_prometheus_textfile(lab: Lab, tmp_path: Path, clock: FakeClock) -> None:
    config = lab.config()
    prom = tmp_path / "textfile" / "mxflip.prom"
    prom.parent.mkdir()
    # One path on time (primary), one late (backup: the relay holds it 20 minutes).
    lab.backup.handler.delay = 20 * 60
    assert mxflip_(config, "canary", "run", "--via", "primary").exit_code == 0
    result = mxflip_(config, "canary", "run", "--via", "backup", "--prometheus", str(prom))
    assert result.exit_code == 1
    samples = validate_textfile(prom.read_text())
    assert set(samples) == {
        "mxflip_canary_delay_seconds",
        "mxflip_canary_last_success_timestamp_seconds",
        "mxflip_canary_last_check_timestamp_seconds",
        "mxflip_canary_status",
    }
    delay = {lbl["path"]: v for lbl, v in samples["mxflip_canary_delay_seconds"]}
    assert set(delay) == {"primary", "backup"}
    assert delay["primary"] < 60 and 20 * 60 <= delay["backup"] < 21 * 60
    success = {lbl["path"]: v for lbl, v in samples["mxflip_canary_last_success_timestamp_seconds"]}
    assert success["backup"] == 0 and success["primary"] > 1.7e9
    status = {(lbl["path"], lbl["state"]): v for lbl, v in samples["mxflip_canary_status"]}
    assert status[("primary", "on_time")] == 1 and status[("primary", "late")] == 0
    assert status[("backup", "late")] == 1 and status[("backup", "on_time")] == 0
    for lbl, _ in samples["mxflip_canary_delay_seconds"]:
        assert lbl["domain"] == DOMAIN
    assert [p.name for p in prom.parent.iterdir()] == ["mxflip.prom"]  # no temp left


def test_validator_rejects_bad_textfiles() -> None:
    good = '# HELP m x\n# TYPE m gauge\nm{a="b"} 1\n'
    validate_textfile(good)
    for bad in (
        good.rstrip("\n"),
        "# TYPE m gauge\n# HELP m x\nm 1\nm 2\n",
        "# HELP m x\nm 1\n# TYPE m gauge\n",
        "# HELP m x\n# TYPE m gauge\nm{a=b} 1\n",
        "# HELP m x\n# TYPE m gauge\nm one\n",
        "# HELP 1m x\n# TYPE 1m gauge\n1m 1\n",
    ):
        with pytest.raises((AssertionError, ValueError)):
            validate_textfile(bad)


# ------------------------------------------------------------------------ units


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("4d", 345600), ("2w", 1209600), ("45", 45)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "15x", "m15", "0", "-5m", "1h 30"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(2 * 86400 + 3 * 3600 + 5) == "2d 3h"
    assert format_duration(65) == "1m 5s"
    assert format_duration(3.25) == "3.2s"
    # One style everywhere (issue 11): 25 hours is "1d 1h", never "25 h 0 min".
    assert format_duration(25 * 3600) == "1d 1h"
    assert format_duration(3600) == "1h" and format_duration(0) == "0s"


@given(st.floats(min_value=1, max_value=MAX_SECONDS))
def test_a_shown_duration_can_be_typed_back(seconds: float) -> None:
    """What mxflip shows is what its options accept, close to the value shown: the two
    largest units keep it within one of the smaller unit (a day, an hour, a minute)."""
    shown = format_duration(seconds)
    back = parse_duration(shown)
    error = abs(back - seconds)
    assert error < 3600
    assert seconds >= 86400 or error < 60
    assert seconds >= 3600 or error <= 1


def test_status_by_age() -> None:
    assert status_by_age(10, True, 900, 3600) == "on_time"
    assert status_by_age(901, True, 900, 3600) == "late"
    assert status_by_age(99999, True, 900, 3600) == "late"
    assert status_by_age(10, False, 900, 3600) == "pending"
    assert status_by_age(1000, False, 900, 3600) == "late"
    assert status_by_age(3600, False, 900, 3600) == "missing"


def test_maildir_reader_ignores_ordinary_mail(tmp_path: Path) -> None:
    for sub in ("new", "cur", "tmp"):
        (tmp_path / sub).mkdir()
    (tmp_path / "new" / "a").write_bytes(b"Subject: hello\n\nX-Mxflip-Canary: abcdef0123\n")
    (tmp_path / "cur" / "b").write_bytes(b"X-Mxflip-Canary: abcdef0123\n\nbody\n")
    (tmp_path / "cur" / "c").write_bytes(b"X-Mxflip-Canary: not a token!\n\nbody\n")
    found = MaildirMailbox(tmp_path).find()
    assert [(f.token, Path(f.ref).name) for f in found] == [("abcdef0123", "b")]


def test_maildir_arrival_is_the_file_time_and_delete_removes_it(tmp_path: Path) -> None:
    for sub in ("new", "cur", "tmp"):
        (tmp_path / sub).mkdir()
    path = tmp_path / "cur" / "1700000000.M1P1.host:2,S"
    path.write_bytes(b"X-Mxflip-Canary: 0123abcdef\n\n" + b"x" * 300_000 + b"\n")
    os.utime(path, (1_700_000_123, 1_700_000_123))
    box = MaildirMailbox(tmp_path)
    (found,) = box.find()
    assert (found.token, found.arrived_at) == ("0123abcdef", 1_700_000_123)
    box.delete([found])
    assert not path.exists() and box.find() == []
    box.delete([found])  # already gone: nothing to do


def test_state_defaults_to_the_xdg_state_folder(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    path = lab.config()
    path.write_text(path.read_text().replace(f'state_file = "{lab.state_file}"', ""))
    assert mxflip_(path, "canary", "send", "--via", "primary").exit_code == 0
    state = tmp_path / "xdg" / "mxflip" / "canary.json"
    assert json.loads(state.read_text())["version"] == 1
    assert not lab.state_file.exists()
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert mxflip.canary.default_state_dir() == tmp_path / "home" / ".local/state/mxflip"


def test_damaged_state_is_one_line(lab: Lab) -> None:
    lab.state_file.parent.mkdir(parents=True)
    lab.state_file.write_text("{not json")
    result = mxflip_(lab.config(), "canary", "check")
    assert result.exit_code == 3
    assert result.stderr.startswith(f"mxflip: error: canary state {lab.state_file} is damaged")
    assert "move it aside" in result.stderr


def test_clock_default_is_the_system_clock() -> None:
    from mxflip.clock import SystemClock
    from mxflip.runtime import Runtime

    assert isinstance(Runtime().clock, SystemClock)
    assert isinstance(mxflip.canary.SYSTEM_CLOCK, SystemClock)
