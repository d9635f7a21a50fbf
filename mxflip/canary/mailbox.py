"""Find canaries where they arrive: a local Maildir, or an IMAP folder over TLS."""

from __future__ import annotations

import contextlib
import imaplib
import logging
import mailbox
import os
import re
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, Protocol

from mxflip.canary._base import TOKEN_HEADER, CanaryError, require_canary
from mxflip.config import CanaryConfig, Config
from mxflip.errors import ConfigError
from mxflip.logs import timed

_log = logging.getLogger(__name__)

_TOKEN_RE = re.compile(r"^[0-9a-f]{8,64}$")

# ----------------------------------------------------------------------- mailboxes


@dataclass(frozen=True)
class FoundCanary:
    """A canary message in the mailbox: its token and when the mailbox received it."""

    token: str
    arrived_at: float
    ref: str  # IMAP UID or Maildir file path


class Mailbox(Protocol):
    """Where canaries arrive."""

    def find(self) -> list[FoundCanary]:
        """Every canary message in the mailbox."""

    def delete(self, found: Sequence[FoundCanary]) -> None:
        """Remove these messages."""

    def close(self) -> None: ...


def _token_of(msg: Message) -> str | None:
    value = msg.get(TOKEN_HEADER)
    if value is None:
        return None
    token = str(value).strip().lower()
    return token if _TOKEN_RE.match(token) else None


class MaildirMailbox:
    """A local Maildir (``new/`` and ``cur/``), read with the standard library's
    :class:`mailbox.Maildir`. The arrival time is the file's modification time, as Dovecot
    reports it for INTERNALDATE; only the headers of each message are read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._maildir: mailbox.Maildir | None = None

    def _open(self) -> mailbox.Maildir:
        if not (self.path / "new").is_dir() and not (self.path / "cur").is_dir():
            raise CanaryError(
                f"{self.path} is not a Maildir (no new/ or cur/ folder)",
                hint="check [canary] maildir",
            )
        if self._maildir is None:
            self._maildir = mailbox.Maildir(self.path, factory=_headers_only, create=False)
        return self._maildir

    def find(self) -> list[FoundCanary]:
        maildir = self._open()
        found = []
        try:
            keys = sorted(maildir.iterkeys())
        except OSError as exc:
            raise CanaryError(f"cannot read {self.path}: {exc.strerror}") from None
        for key in keys:
            try:
                message = maildir.get_message(key)
            except (KeyError, FileNotFoundError, IsADirectoryError):
                continue  # moved or removed by the mail server meanwhile
            except OSError as exc:
                raise CanaryError(f"cannot read {self.path} ({key}): {exc.strerror}") from None
            token = _token_of(message)
            if token:
                found.append(FoundCanary(token, message.get_date(), key))
        return found

    def delete(self, found: Sequence[FoundCanary]) -> None:
        maildir = self._open()
        for f in found:
            maildir.discard(f.ref)  # already gone is fine

    def close(self) -> None:
        pass  # a Maildir holds no connection


def _headers_only(f: Iterable[bytes]) -> mailbox.MaildirMessage:
    """A Maildir message of just the headers (at most 256 KiB of them): a canary is found
    by a header, and a mailbox may hold large ordinary mail beside it."""
    lines = []
    size = 0
    for line in f:
        if line in (b"\n", b"\r\n") or size > 256 * 1024:
            break
        lines.append(line)
        size += len(line)
    return mailbox.MaildirMessage(BytesHeaderParser().parsebytes(b"".join(lines)))


_FETCH_RE = re.compile(rb"UID (\d+)")


class ImapMailbox:
    """An IMAP folder over TLS (implicit TLS, as on port 993). Credentials come from the
    environment variables the configuration names; they are never stored or shown."""

    def __init__(self, canary: CanaryConfig, *, timeout: float = 30.0) -> None:
        assert canary.imap_host is not None
        self.host = canary.imap_host
        self.port = canary.imap_port
        self.folder = canary.imap_folder
        self.user_env = canary.imap_user_env
        self.password_env = canary.imap_password_env
        self.ca_file = canary.ca_file
        self.timeout = timeout
        self._imap: imaplib.IMAP4_SSL | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def _credentials(self) -> tuple[str, str]:
        user = os.environ.get(self.user_env)
        password = os.environ.get(self.password_env)
        for name, value in ((self.user_env, user), (self.password_env, password)):
            if not value:
                raise ConfigError(
                    f"environment variable {name} is not set",
                    hint="it holds the IMAP login for the canary mailbox "
                    "([canary] imap_user_env / imap_password_env)",
                )
        assert user is not None and password is not None
        return user, password

    def _connect(self) -> imaplib.IMAP4_SSL:
        if self._imap is not None:
            return self._imap
        user, password = self._credentials()
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        try:
            imap = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=ctx, timeout=self.timeout)
        except ssl.SSLError as exc:
            raise CanaryError(
                f"IMAP server {self.where}: TLS failed: {exc.reason or exc}",
                hint="set [canary] ca_file if the server's certificate is from a private CA",
            ) from None
        except OSError as exc:
            raise CanaryError(
                f"cannot reach IMAP server {self.where}: {exc.strerror or exc}"
            ) from None
        try:
            # The login is logged by the variable that holds it, never its value.
            with timed(_log, "imap login", server=self.where, user_env=self.user_env):
                imap.login(user, password)
        except imaplib.IMAP4.error:
            with contextlib.suppress(Exception):
                imap.shutdown()
            # The server's text is not repeated: some servers echo what was sent.
            raise CanaryError(
                f"IMAP server {self.where} refused the login for the user in ${self.user_env}",
                hint=f"check ${self.user_env} and ${self.password_env}",
            ) from None
        self._imap = imap
        return imap

    def _call(self, what: str, fn: Callable[[], tuple[str, list[Any]]]) -> list[Any]:
        try:
            with timed(_log, "imap command", server=self.where, command=what) as fields:
                typ, data = fn()
                fields["status"] = typ
        except (imaplib.IMAP4.error, OSError) as exc:
            self._drop()
            raise CanaryError(f"IMAP server {self.where}: {what} failed: {exc}") from None
        if typ != "OK":
            raise CanaryError(f"IMAP server {self.where}: {what} failed: {data!r}")
        return data

    def _drop(self) -> None:
        if self._imap is not None:
            with contextlib.suppress(Exception):
                self._imap.shutdown()
        self._imap = None

    def find(self) -> list[FoundCanary]:
        imap = self._connect()
        # Selecting again each time makes the server report mail that arrived meanwhile.
        self._call(f"SELECT {self.folder}", lambda: imap.select(_quote(self.folder)))
        data = self._call("SEARCH", lambda: imap.uid("SEARCH", "HEADER", TOKEN_HEADER, '""'))
        uids = b" ".join(d for d in data if d).split()
        if not uids:
            return []
        fields = f"(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS ({TOKEN_HEADER})])"
        fetched = self._call("FETCH", lambda: imap.uid("FETCH", b",".join(uids).decode(), fields))
        found = []
        for item in fetched:
            if not isinstance(item, tuple):
                continue
            meta, headers = item
            uid = _FETCH_RE.search(meta)
            when = imaplib.Internaldate2tuple(meta)
            token = _token_of(BytesHeaderParser().parsebytes(headers))
            if uid and when and token:
                found.append(FoundCanary(token, time.mktime(when), uid.group(1).decode()))
        return found

    def delete(self, found: Sequence[FoundCanary]) -> None:
        if not found:
            return
        imap = self._connect()
        uids = ",".join(f.ref for f in found)
        self._call("STORE", lambda: imap.uid("STORE", uids, "+FLAGS.SILENT", r"(\Deleted)"))
        if "UIDPLUS" in imap.capabilities:
            self._call("UID EXPUNGE", lambda: imap.uid("EXPUNGE", uids))
        else:
            self._call("EXPUNGE", imap.expunge)

    def close(self) -> None:
        if self._imap is not None:
            with contextlib.suppress(Exception):
                self._imap.logout()
        self._imap = None


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def open_mailbox(config: Config) -> Mailbox:
    """The configured mailbox reader."""
    canary = require_canary(config)
    if canary.mailbox == "imap":
        return ImapMailbox(canary, timeout=config.probe.timeout)
    assert canary.maildir is not None
    return MaildirMailbox(canary.maildir)
