"""The one SMTP client (mxflip.net.smtp): the probe's client cannot send DATA, the
canary's submission client hands over a message byte-exactly (dot-stuffed), and both use
one EHLO name."""

from __future__ import annotations

import asyncio
import email
import logging
import re
import socket
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxflip.errors import ConfigError
from mxflip.net.smtp import (
    ConnectionLost,
    ProtocolError,
    SMTPClient,
    SMTPSettings,
    StepTimeout,
    SubmissionClient,
    _dot_stuffed,
    helo_name,
    read_reply,
)
from mxflip.probe import Prober, Transaction
from mxflip.sanitize import clean
from tests.support.smtplab import Lab, lab, scripted  # noqa: F401  (lab is a fixture)


def settings() -> SMTPSettings:
    return SMTPSettings(helo="probe.lab.test", mail_from="probe@lab.test", timeout=5)


def recording(seen: list[str]) -> object:
    """A scripted server that also keeps every command line it receives."""
    inner = scripted()

    async def run(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        class Tap:
            async def readline(self) -> bytes:
                line = await r.readline()
                seen.append(line.decode(errors="replace").rstrip("\r\n"))
                return line

        await inner(Tap(), w)  # type: ignore[arg-type]

    return run


def test_the_probe_never_sends_data(lab: Lab) -> None:  # noqa: F811
    seen: list[str] = []
    port = lab.raw(recording(seen))  # type: ignore[arg-type]
    txs = [Transaction(f"d{i}.lab.test.", f"postmaster@d{i}.lab.test") for i in range(3)]
    session = asyncio.run(Prober(settings()).session("mx.lab.test.", "127.0.0.1", port, txs))
    verbs = [line.split()[0].upper() for line in seen if line]
    assert verbs == ["EHLO"] + ["MAIL", "RCPT", "RSET"] * 3 + ["QUIT"]
    assert set(session.transactions) == {tx.domain for tx in txs}
    # and the probe's client has no way to: DATA is the submission client's alone
    assert not hasattr(SMTPClient, "data")
    assert not issubclass(SMTPClient, SubmissionClient)


@pytest.mark.parametrize("line", ["DATA", "data", "BDAT 10 LAST", "Data now"])
def test_the_probes_client_refuses_data_before_writing(line: str) -> None:
    client = SMTPClient(settings(), "mx.lab.test", "127.0.0.1", 25)
    client.reader, client.writer = object(), object()  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="never sends mail"):
        asyncio.run(client._send(line))


def test_the_submission_client_delivers_a_dot_stuffed_message(lab: Lab) -> None:  # noqa: F811
    received: list[bytes] = []

    async def server(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        async def say(text: str) -> None:
            w.write(text.encode() + b"\r\n")
            await w.drain()

        await say("220 mx.lab.test ESMTP")
        for _ in range(20):
            line = (await r.readline()).decode().strip().upper()
            if line.startswith("EHLO"):
                await say("250 mx.lab.test")
            elif line == "DATA":
                await say("354 go ahead")
                body = b""
                while not body.endswith(b"\r\n.\r\n"):
                    body += await r.readline()
                received.append(body)
                await say("250 2.0.0 queued")
            elif line == "QUIT":
                await say("221 bye")
                return
            else:
                await say("250 OK")

    port = lab.raw(server)
    msg = EmailMessage()
    msg["Subject"] = "canary"
    msg.set_content(".starts with a dot\n..two\nlast\n")

    async def submit() -> int:
        client = SubmissionClient(settings(), "mx.lab.test", "127.0.0.1", port)
        await client.connect("connect")
        await client.banner("banner")
        await client.ehlo("ehlo", "ehlo-rejected")
        await client.command("mail", "MAIL FROM:<a@lab.test>", lambda c: c == 250)
        await client.command("rcpt", "RCPT TO:<b@lab.test>", lambda c: c == 250)
        reply = await client.data(msg)
        await client.close(polite=True)
        return reply.code

    assert asyncio.run(submit()) == 250
    (body,) = received
    assert b"\r\n...two\r\n" in body and b"\r\n..starts with a dot\r\n" in body
    unstuffed = body[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")
    payload = email.message_from_bytes(unstuffed).get_payload()
    assert isinstance(payload, str)  # a single-part message
    assert payload.replace("\r\n", "\n") == msg.get_payload()


@given(st.text(alphabet=".\r\nab", max_size=60))
def test_dot_stuffing_round_trips(text: str) -> None:
    content = text.encode()
    wire = _dot_stuffed(content)
    assert wire.endswith(b"\r\n.\r\n")
    lines = wire[: -len(b".\r\n")].split(b"\r\n")[:-1]
    assert all(not line.startswith(b".") or line.startswith(b"..") for line in lines)
    normalized = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not normalized.endswith(b"\n"):
        normalized += b"\n"  # the message always ends with a line break
    expected = normalized.split(b"\n")
    if expected and expected[-1] == b"":
        expected.pop()
    assert [line[1:] if line.startswith(b".") else line for line in lines] == expected


def test_one_helo_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert helo_name("mx-probe.example.test") == "mx-probe.example.test"
    monkeypatch.setattr(socket, "getfqdn", lambda: "Host.Example.TEST.")
    assert helo_name(None) == "host.example.test"
    monkeypatch.setattr(socket, "getfqdn", lambda: "localhost")
    assert helo_name(None) == "localhost.localdomain"


def test_each_smtp_step_is_one_debug_line(
    lab: Lab,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``-vv``'s SMTP story comes from the one client: a line per step, with its reply code."""
    port = lab.raw(scripted())
    tx = Transaction("d.lab.test.", "postmaster@d.lab.test")
    with caplog.at_level(logging.DEBUG, logger="mxflip.net.smtp"):
        session = asyncio.run(Prober(settings()).session("mx.lab.test.", "127.0.0.1", port, [tx]))
    lines = [r for r in caplog.records if r.name == "mxflip.net.smtp" and r.msg == "smtp step"]
    steps = [r.__dict__["step"] for r in lines]
    # the session's own steps, then the transaction's
    assert steps[: len(session.steps)] == [s.name for s in session.steps]
    assert {"mail", "rcpt"} <= set(steps[len(session.steps) :])
    assert lines and all(r.__dict__["address"] == f"127.0.0.1:{port}" for r in lines)
    banner = next(r for r in lines if r.__dict__["step"] == "banner")
    assert banner.__dict__["host"] == "mx.lab.test" and banner.__dict__["code"] == 220


# ------------------------------------------------------- step timeouts (one timer)


def test_a_step_that_outlives_its_timeout_raises_timeout_error() -> None:
    async def run() -> float:
        steps = StepTimeout()
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            async with steps(0.05):
                await asyncio.sleep(5)
        return loop.time() - start

    assert 0.04 <= asyncio.run(run()) < 1.0


def test_quick_steps_longer_than_the_timeout_together_never_time_out() -> None:
    """The one timer fires during a later step and is armed again for that step's own
    deadline: only a single step's duration counts, as with asyncio.timeout()."""

    async def run() -> int:
        steps = StepTimeout()
        done = 0
        for _ in range(5):  # 5 × 0.15 s = 0.75 s > 0.5 s (margins for a loaded machine)
            async with steps(0.5):
                await asyncio.sleep(0.15)
            done += 1
        steps.close()
        return done

    assert asyncio.run(run()) == 5


def test_a_shorter_step_after_a_longer_one_gets_its_own_deadline() -> None:
    async def run() -> float:
        steps = StepTimeout()
        loop = asyncio.get_running_loop()
        async with steps(30):
            await asyncio.sleep(0)
        start = loop.time()
        with pytest.raises(TimeoutError):
            async with steps(0.05):
                await asyncio.sleep(5)
        return loop.time() - start

    assert asyncio.run(run()) < 1.0


def test_a_cancellation_from_elsewhere_passes_through_a_step() -> None:
    async def run() -> None:
        steps = StepTimeout()

        async def step() -> None:
            async with steps(30):
                await asyncio.sleep(5)

        task = asyncio.create_task(step())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
        steps.close()

    asyncio.run(run())


def test_step_timeouts_do_not_nest_and_close_drops_the_timer() -> None:
    async def run() -> None:
        steps = StepTimeout()
        async with steps(0.05):
            with pytest.raises(RuntimeError, match="do not nest"):
                async with steps(1):
                    pass
        steps.close()
        # after close, waiting past the old deadline cancels nothing
        await asyncio.sleep(0.08)

    asyncio.run(run())


def test_a_silent_server_times_out_the_step_it_is_in(lab: Lab) -> None:  # noqa: F811
    """Banner fine, then silence after EHLO: the EHLO step (not the connection as a
    whole) times out, as before the one-timer change."""

    async def server(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"220 mx.lab.test ESMTP\r\n")
        await w.drain()
        await r.readline()
        await asyncio.sleep(10)

    port = lab.raw(server)
    fast = SMTPSettings(helo="probe.lab.test", mail_from="probe@lab.test", timeout=0.3)
    session = asyncio.run(Prober(fast).session("mx.lab.test.", "127.0.0.1", port, []))
    assert [f.code for f in session.findings] == ["ehlo-timeout"]
    assert [(s.name, s.ok) for s in session.steps] == [
        ("connect", True),
        ("banner", True),
        ("ehlo", False),
    ]


# ------------------------------------------------ reply parsing (regex-free reader)

_REFERENCE_LINE = re.compile(r"^([2-5][0-9][0-9])([ -]|$)(.*)$")


def _reference_reply(data: bytes) -> tuple[int, tuple[str, ...]] | str:
    """What read_reply returned when it matched each line with a regex (the spec)."""
    lines: list[str] = []
    code: int | None = None
    raws = re.findall(rb"[^\n]*\n|[^\n]+\Z", data)  # as readline() splits them
    for raw in raws[:100]:
        if not raw.endswith(b"\n"):
            return "lost"
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        match = _REFERENCE_LINE.match(text)
        if match is None or (code is not None and int(match.group(1)) != code):
            return "protocol"
        code = int(match.group(1))
        lines.append(clean(match.group(3)))
        if match.group(2) != "-":
            return code, tuple(lines)
    return "lost" if len(raws) < 100 else "protocol"


_reply_lines = st.lists(
    st.one_of(
        st.sampled_from(["250", "250-", "250 ", "220 mx ok", "251-x", "599 no", "199 x", "2500"]),
        st.text(alphabet="0123456789 -\r\x1b\x85é٣x", max_size=8),
    ).map(lambda line: line + "\r\n"),
    min_size=1,
    max_size=5,
)


@given(_reply_lines, st.booleans())
def test_the_reply_reader_agrees_with_the_regex_it_replaced(lines: list[str], cut: bool) -> None:
    data = "".join(lines).encode()
    if cut:
        data = data[:-2]  # the connection closes mid-line

    async def read() -> tuple[int, tuple[str, ...]] | str:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        try:
            reply = await read_reply(reader)
        except ProtocolError:
            return "protocol"
        except ConnectionLost:
            return "lost"
        return reply.code, reply.lines

    assert asyncio.run(read()) == _reference_reply(data)


# ---------------------------------------------------------------- verifying contexts


def _ca_pem(tmp_path: Path, name: str) -> bytes:
    import trustme

    path = tmp_path / f"{name}.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path.read_bytes()


def test_the_verifying_context_is_built_once_per_ca_file_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading a CA store costs ~80 ms of CPU; watch checks every round. The context is
    kept while the CA file is unchanged and built again once it is replaced (a SIGHUP
    after a new CA file)."""
    import ssl

    from mxflip.net.smtp import verifying_context

    built: list[object] = []
    real = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        built.append(kwargs.get("cafile"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(_ca_pem(tmp_path, "first"))
    first = verifying_context(ca_file)
    assert verifying_context(ca_file) is first and built == [str(ca_file)]
    subjects = [c["subject"] for c in first.get_ca_certs()]

    replacement = tmp_path / "ca.pem.new"  # replaced the way config tools do: a rename
    replacement.write_bytes(_ca_pem(tmp_path, "second"))
    replacement.replace(ca_file)
    second = verifying_context(ca_file)
    assert second is not first and len(built) == 2
    assert [c["subject"] for c in second.get_ca_certs()] != subjects
    assert second.verify_mode == ssl.CERT_REQUIRED and second.check_hostname
    assert second.minimum_version == ssl.TLSVersion.MINIMUM_SUPPORTED
    assert verifying_context(None) is verifying_context(None)  # the system's store


def test_an_unreadable_ca_file_is_reported_at_every_check(tmp_path: Path) -> None:
    from mxflip.net.smtp import verifying_context

    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not a certificate\n")
    for _ in range(2):  # a failure is not kept: the next check reads the file again
        with pytest.raises(ConfigError, match=r"cannot load the CA file .*ca\.pem: "):
            verifying_context(ca_file)
    ca_file.write_bytes(_ca_pem(tmp_path, "fixed"))
    assert verifying_context(ca_file).get_ca_certs()
