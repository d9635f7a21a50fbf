"""The canary's submission through the one SMTP client: what each refusal or break
records (the text in ``attempts[].error``) and whether it stops at once (5xx)."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import pytest

from mxflip.canary.send import _abort_error, _Refused, _submit
from mxflip.hostport import HostPort
from mxflip.net.smtp import Abort, SMTPSettings
from tests.support.smtplab import Lab, lab, scripted  # noqa: F401  (lab is a fixture)

STARTTLS_EHLO = "250-mx.lab.test\r\n250-STARTTLS\r\n250 8BITMIME"


def submit(port: int) -> tuple[str, str | None, int | None]:
    """(tls state or "", error text, code) of one submission to 127.0.0.1:port."""
    msg = EmailMessage()
    msg["Subject"] = "canary"
    msg.set_content("hello\n")
    settings = SMTPSettings(helo="probe.lab.test", mail_from="", timeout=5)

    async def run() -> tuple[str, str | None, int | None]:
        try:
            tls = await _submit(
                HostPort("127.0.0.1", port), msg, "a@lab.test", "b@lab.test", settings
            )
        except _Refused as exc:
            return "", exc.text, exc.code
        except Abort as exc:
            return "", _abort_error(exc), exc.reply.code if exc.reply else None
        return tls, None, None

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("replies", "error", "code"),
    [
        ({"MAIL": "451 4.3.0 try later"}, "sender refused: 451 4.3.0 try later", 451),
        ({"RCPT": "550 5.1.1 no such user"}, "recipient refused: 550 5.1.1 no such user", 550),
        ({"DATA": "554 5.7.1 no"}, "554 5.7.1 no", 554),
        ({"EHLO": "502 5.5.2 what"}, "502 5.5.2 what", 502),
        ({"STARTTLS": "454 4.7.0 TLS not available"}, "454 4.7.0 TLS not available", 454),
    ],
)
def test_a_refusal_is_recorded_with_its_code(
    lab: Lab,  # noqa: F811
    replies: dict[str, str],
    error: str,
    code: int,
) -> None:
    if "STARTTLS" in replies:
        replies = {**replies, "EHLO": STARTTLS_EHLO}
    assert submit(lab.raw(scripted(replies))) == ("", error, code)


def test_a_refusing_banner_is_recorded_with_its_code(lab: Lab) -> None:  # noqa: F811
    port = lab.raw(scripted(banner="554 5.3.2 not now"))
    assert submit(port) == ("", "554 5.3.2 not now", 554)


def test_a_server_that_hangs_up_is_recorded_as_such(lab: Lab) -> None:  # noqa: F811
    async def hang_up(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"220 mx.lab.test ESMTP\r\n")
        await w.drain()
        await r.readline()
        w.close()

    assert submit(lab.raw(hang_up)) == ("", "the server closed the connection", None)
