"""Log output: what the core and the adapters log, shown on stderr with ``-v``/``-vv``.

Every module logs to ``logging.getLogger(__name__)`` with the facts in ``extra`` fields
(``zone``, ``server``, ``ms``, …); this module decides how a record looks. Text for
people (``12:00:01.234 DEBUG mxflip.observe: provider read zone=example.com. ms=12.5``),
JSON for machines (one object per line: ``ts``, ``level``, ``logger``, ``msg`` and the
extra fields). Every record passes :class:`mxflip.sanitize.RedactingFilter` first, so a
configured secret never reaches the output, whichever module logged it.

Without ``-v`` only warnings are shown, as one plain line each (as before logging grew).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

# json and datetime are imported where a record is formatted: every command configures
# logging, and `mxflip status --help` should not pay for what only -v output uses.


#: Attributes every LogRecord has; the others on a record are its ``extra`` fields.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra`` fields of ``record``, in the order they were given."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def level_for(verbosity: int) -> int:
    """``-v`` shows INFO, ``-vv`` (or more) DEBUG; otherwise warnings only."""
    if verbosity <= 0:
        return logging.WARNING
    return logging.INFO if verbosity == 1 else logging.DEBUG


def _ts(record: logging.LogRecord) -> str:
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _value(value: Any) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, default=str)
    # A value with spaces is quoted so that ``key=value`` pairs stay readable.
    return json.dumps(text) if (not text or " " in text or "=" in text) else text


class PlainFormatter(logging.Formatter):
    """The message alone (warnings without ``-v``)."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


class TextFormatter(logging.Formatter):
    """``HH:MM:SS.mmm LEVEL logger: message key=value …`` (and a traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        clock = _ts(record)[11:23]
        fields = " ".join(f"{k}={_value(v)}" for k, v in extra_fields(record).items())
        line = f"{clock} {record.levelname} {record.name}: {record.getMessage()}"
        line = f"{line} {fields}" if fields else line
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return f"{line}\n{record.exc_text}" if record.exc_text else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``msg``, the extra
    fields (never overriding those four), and ``exc`` with a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        doc: dict[str, Any] = {
            "ts": _ts(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            doc.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(doc, default=str)


class _Scope(logging.Filter):
    """mxflip's and its adapters' records at the chosen level; other libraries' only
    with ``-v`` and only their warnings (mxflip reports what went wrong in its own words;
    their debug output is theirs to enable, and may hold credentials mxflip does not know
    of)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "mxflip" or record.name.startswith(("mxflip.", "mxflip_")):
            return record.levelno >= self.level
        return self.level < logging.WARNING and record.levelno >= logging.WARNING


class StreamHandler(logging.Handler):
    """Writes each record as a line to the stream ``stream()`` returns when it is
    emitted (click's test runner swaps stderr per invocation)."""

    def __init__(self, stream: Callable[[], TextIO]) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            out = self.stream()
            out.write(self.format(record) + "\n")
            out.flush()
        except Exception:
            self.handleError(record)


def configure(verbosity: int, fmt: str, stream: Callable[[], TextIO]) -> StreamHandler:
    """Show mxflip's log records on ``stream`` (replacing what an earlier call set up):
    ``verbosity`` 0 warnings only, 1 INFO, 2 DEBUG; ``fmt`` ``text`` or ``json``."""
    from mxflip.sanitize import RedactingFilter

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, StreamHandler)]:
        root.removeHandler(old)
    level = level_for(verbosity)
    handler = StreamHandler(stream)
    handler.addFilter(_Scope(level))
    # Last filter: only records that will be shown pay for the redaction.
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif verbosity <= 0:
        handler.setFormatter(PlainFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root.addHandler(handler)
    # The root level gates every logger without a level of its own (the adapters'
    # ``mxflip_*`` loggers too); _Scope keeps other libraries' chatter out.
    root.setLevel(min(level, logging.WARNING))
    return handler


@contextlib.contextmanager
def timed(
    log: logging.Logger, msg: str, *, level: int = logging.DEBUG, **fields: Any
) -> Iterator[dict[str, Any]]:
    """Log ``msg`` with ``fields`` and the time taken (``ms``) when the block ends; with
    ``error`` (the exception's type and text) when it raises. The yielded dict takes
    fields learnt inside the block (a count, an rcode)."""
    if not log.isEnabledFor(level):
        yield fields
        return
    started = time.perf_counter()
    try:
        yield fields
    except BaseException as exc:
        fields["ms"] = round((time.perf_counter() - started) * 1000, 1)
        fields["error"] = f"{type(exc).__name__}: {exc}"
        log.log(level, f"{msg} failed", extra=fields)
        raise
    fields["ms"] = round((time.perf_counter() - started) * 1000, 1)
    log.log(level, msg, extra=fields)
