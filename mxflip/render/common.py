"""Shared pieces of every renderer: consoles, JSON output, times and record sets."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    # Imported where a console is made: `--json` output needs no rich.
    from rich.console import Console

    from mxflip.records import RRset

#: Version of every ``--json`` document; fields are added, never renamed or dropped.
JSON_VERSION = 1


def _style_options(color: str, quiet: bool) -> dict[str, Any]:
    """Console options for ``--color`` / ``NO_COLOR`` and ``--quiet`` (the command's
    :class:`mxflip.runtime.Runtime` holds both)."""
    options: dict[str, Any] = {"quiet": quiet}
    if color == "always":
        # An explicit request beats NO_COLOR and a pipe.
        options.update(force_terminal=True, no_color=False)
    elif color == "never":
        options.update(no_color=True, color_system=None)
    # auto: rich colours a terminal and honours NO_COLOR by itself.
    return options


def people_stream(file: TextIO | None = None, *, quiet: bool = False) -> TextIO:
    """Where plain text for people goes: ``file`` (default: stdout), or nowhere with
    ``--quiet``."""
    return io.StringIO() if quiet else (file or sys.stdout)


def stdout_console(
    file: TextIO | None = None, *, color: str = "auto", quiet: bool = False
) -> Console:
    """Rich console for results on ``file`` (default: stdout). Piped output gets a wide
    fixed width (unless COLUMNS is set) so that tables are not truncated to 80 columns in
    logs and scripts."""
    from rich.console import Console

    out = file or sys.stdout
    width = None
    if not out.isatty() and "COLUMNS" not in os.environ:
        width = 160
    return Console(file=out, highlight=False, width=width, **_style_options(color, quiet))


def stderr_console(
    file: TextIO | None = None, *, color: str = "auto", quiet: bool = False
) -> Console:
    """Rich console for progress and diagnostics on ``file`` (default: stderr)."""
    from rich.console import Console

    return Console(
        file=file or sys.stderr, highlight=False, soft_wrap=True, **_style_options(color, quiet)
    )


#: How many JSON documents this process wrote (the CLI writes an error document for
#: ``--json`` only when the command failed before writing its own).
written = [0]


def write_json(document: Mapping[str, Any]) -> None:
    """One JSON document on stdout, newline-terminated."""
    # here: the plain output of `validate` and `providers` needs none (start-up)
    from mxflip.render.jsontext import dumps_indented

    sys.stdout.write(dumps_indented(document) + "\n")
    written[0] += 1


def when(ts: float | None) -> str | None:
    """RFC 3339 UTC time (``2026-11-23T16:12:00Z``), or None."""
    from mxflip.journal import iso

    return None if ts is None else iso(ts)


def records_text(rrset: RRset | None) -> str:
    """Records one per line and the TTL, for table cells."""
    if rrset is None:
        return "(no MX)"
    return "\n".join(rrset.strings()) + f"\nTTL {rrset.ttl}"
