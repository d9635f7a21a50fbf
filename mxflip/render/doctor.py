"""``mxflip doctor``: the checklist for people and the JSON document."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from mxflip.doctor import FAIL, OK, SKIP, WARN, DoctorReport
from mxflip.render.common import JSON_VERSION

_MARKS = {OK: ("✓", "green"), WARN: ("⚠", "yellow"), FAIL: ("✗", "red"), SKIP: ("–", "dim")}


def render_doctor(console: Console, report: DoctorReport) -> None:
    """One line per check (mark, what, detail), and the fix under each that is not ok."""
    for r in report.results:
        mark, style = _MARKS[r.status]
        # One line per check, never wrapped: people grep and paste these.
        console.print(
            f"[{style}]{mark}[/] [bold]{escape(r.title)}[/]: {escape(r.detail)}", soft_wrap=True
        )
        if r.fix and r.status in (WARN, FAIL):
            console.print(f"    fix: {escape(r.fix)}", soft_wrap=True)
    summary = ", ".join(
        f"{report.count(s)} {label}"
        for s, label in ((OK, "ok"), (WARN, "warnings"), (FAIL, "failed"))
        if report.count(s)
    )
    console.print(f"\n{summary or 'nothing checked'}")


def doctor_json(report: DoctorReport) -> dict[str, Any]:
    """The ``mxflip doctor --json`` document."""
    return {
        "version": JSON_VERSION,
        "exit_code": int(report.exit_code),
        "summary": {s: report.count(s) for s in (OK, WARN, FAIL, SKIP)},
        "checks": [
            {
                "check": r.check,
                "status": r.status,
                "title": r.title,
                "detail": r.detail,
                "fix": r.fix,
            }
            for r in report.results
        ],
    }
