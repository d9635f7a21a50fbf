"""A loopback SMTP relay standing in for an inbound proxy: it accepts mail (STARTTLS
offered, trustme certificate) and delivers it into a Maildir, on time, "late" or not at
all.

A delay is recorded, never slept: the delivered file's modification time (what Dovecot
reports as INTERNALDATE, and what mxflip reads as the arrival time) is set ``delay``
seconds after the moment the relay accepted the message.
"""

from __future__ import annotations

import mailbox
import os
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller

from tests.support.ports import free_port


@dataclass
class Received:
    """One message the relay accepted, with whether the session was encrypted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool


@dataclass
class RelayHandler:
    maildir: Path | None
    delay: float = 0.0
    drop: bool = False
    reject_rcpt: str | None = None  # e.g. "550 5.1.1 no such user"
    received: list[Received] = field(default_factory=list)
    rcpt_attempts: int = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.rcpt_attempts += 1
        if self.reject_rcpt:
            return self.reject_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), content, session.ssl is not None)
        )
        if self.drop or self.maildir is None:
            return "250 OK queued"  # and never delivered: the incident
        self.deliver(content)
        return "250 OK queued"

    def deliver(self, content: bytes) -> None:
        """Put ``content`` into the Maildir as if it arrived ``delay`` seconds from now."""
        assert self.maildir is not None
        arrival = time.time() + self.delay
        key = mailbox.Maildir(self.maildir, create=False).add(content)
        path = self.maildir / "new" / key
        os.utime(path, (arrival, arrival))


class Relay:
    """A running relay on 127.0.0.1; ``address`` is "127.0.0.1:PORT"."""

    def __init__(
        self,
        handler: RelayHandler,
        ca: trustme.CA,
        *,
        starttls: bool = True,
        names: tuple[str, ...] = ("127.0.0.1", "localhost"),
    ) -> None:
        self.handler = handler
        context = None
        if starttls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert(*names).configure_cert(context)
        self.port = 0
        self._controller: Controller | None = None
        for _ in range(5):
            self.port = free_port()
            controller = Controller(
                handler, hostname="127.0.0.1", port=self.port, tls_context=context
            )
            try:
                controller.start()
            except Exception:
                continue
            self._controller = controller
            return
        raise RuntimeError("the SMTP relay could not start on a free loopback port")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
