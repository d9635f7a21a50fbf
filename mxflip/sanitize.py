"""Strings from outside (SMTP replies, provider and DNS errors) made safe to show or store.

Two dangers, one home: terminal control sequences in a remote reply (``ESC[2J`` clears a
responder's screen, a bare CR or LF forges an output line), and a configured secret that a
misbehaving server echoes back (an ``Authorization`` header in an error body). Every
:class:`~mxflip.errors.MxflipError` is cleaned when it is made, SMTP replies when they are
read; what is left is printed with rich markup escaped.

Secrets are registered by whoever reads them (the config loader for environment
variables, an adapter for a key file) and are only ever kept in this process's memory.
"""

from __future__ import annotations

import logging
import re

#: C0 and C1 control characters, DEL, and whole ANSI escape sequences (CSI, OSC, …).
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI … final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC … BEL or ST
    r"|\x1b[@-_]?"  # other two-byte escapes (and a lone ESC)
    r"|[\x00-\x08\x0a-\x1f\x7f\x80-\x9f]"
)

#: Secrets shorter than this are not redacted (they would blank out ordinary words).
MIN_SECRET = 8
_secrets: set[str] = set()
#: The same, longest first (the order redact() replaces them in), kept with the set: SMTP
#: replies are cleaned line by line, thousands per check.
_longest_first: tuple[str, ...] = ()

REDACTED = "[redacted]"


def register_secret(value: str | bytes | None) -> None:
    """Make sure ``value`` (a token, password or key) never appears in a message shown or
    stored by this process."""
    global _longest_first
    if value is None:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    text = text.strip()
    if len(text) >= MIN_SECRET:
        _secrets.add(text)
        _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``[redacted]``."""
    for secret in _longest_first:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def clean(text: str) -> str:
    """One safe line: secrets redacted, escape sequences removed, other control
    characters (CR, LF, NUL, …) shown as spaces; tabs kept."""
    text = redact(text)
    # every character _ESCAPES matches (ESC, C0, DEL, C1) is unprintable; tabs are too
    if text.isprintable() or not _ESCAPES.search(text):
        return text
    return _ESCAPES.sub(lambda m: " " if len(m.group()) == 1 and m.group() != "\x1b" else "", text)


class RedactingFilter(logging.Filter):
    """Makes a log record safe to show: its message, string ``extra`` fields and
    traceback with every registered secret redacted and control characters cleaned
    (the log handler of :mod:`mxflip.logs` passes every record through it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = clean(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key in _RECORD_TEXT or key.startswith("_"):
                continue
            if isinstance(value, str):
                setattr(record, key, clean(value))
            elif isinstance(value, list | tuple) and any(isinstance(v, str) for v in value):
                setattr(record, key, [clean(v) if isinstance(v, str) else v for v in value])
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            # A traceback keeps its lines; only the secrets go.
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


#: Record attributes that are not message text (names, paths, the level).
_RECORD_TEXT = frozenset(
    {"name", "levelname", "pathname", "filename", "module", "funcName", "processName"}
    | {"threadName", "taskName", "msg", "exc_text", "stack_info"}
)
