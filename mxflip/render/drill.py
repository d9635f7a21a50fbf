"""``mxflip drill``: a rich summary for people, a JSON document, and JUnit XML for CI."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mxflip.drill import DrillReport
from mxflip.render.common import JSON_VERSION, when

_STYLE = {"pass": "green", "fail": "bold red", "skipped": "dim"}
_MARK = {"pass": "✓ pass", "fail": "✗ FAIL", "skipped": "– skipped"}


def drill_json(report: DrillReport) -> dict[str, Any]:
    """``{"version": 1, "command": "drill", "exit_code", "passed", "domains", "operations"}``."""
    return {
        "version": JSON_VERSION,
        "command": "drill",
        "exit_code": int(report.exit_code),
        "passed": report.passed,
        "planned": report.planned,
        "started": when(report.started),
        "finished": when(report.finished),
        "seconds": round(report.seconds, 3),
        "domains": [
            {
                "domain": d.domain,
                "passed": d.passed,
                "steps": [
                    {
                        "name": s.name,
                        "status": s.status,
                        "seconds": round(s.seconds, 3),
                        "message": s.message,
                    }
                    for s in d.steps
                ],
            }
            for d in report.domains
        ],
        "operations": [
            {"id": o.id, "kind": o.kind, "outcome": o.outcome, "error": o.error}
            for o in report.operations
        ],
    }


def render_drill(console: Console, report: DrillReport) -> None:
    """One table per domain (step, result, seconds, details), the operations the drill
    journalled, and a one-line verdict."""
    for d in report.domains:
        table = Table(title=f"Drill: {d.domain}", title_justify="left")
        table.add_column("Step", no_wrap=True)
        table.add_column("Result", no_wrap=True)
        table.add_column("Time", justify="right", no_wrap=True)
        table.add_column("Details")
        for s in d.steps:
            table.add_row(
                s.name,
                Text(_MARK[s.status], style=_STYLE[s.status]),
                f"{s.seconds:.2f} s" if s.status != "skipped" else "",
                Text(s.message),
            )
        console.print(table)
    for op in report.operations:
        console.print(f"Journalled: {op.kind} {op.id} ({op.outcome})", markup=False)
    count = len(report.domains)
    domains = f"{count} domain{'s' if count != 1 else ''}"
    if report.passed:
        console.print(
            Text(f"Drill passed: {domains} in {report.seconds:.1f} s.", style="bold green")
        )
    else:
        failed = [
            f"{d.domain}: {s.name}" for d in report.domains for s in d.steps if s.status == "fail"
        ]
        console.print(
            Text(
                f"Drill FAILED ({domains}, {report.seconds:.1f} s): " + ", ".join(failed),
                style="bold red",
            )
        )


def drill_junit(report: DrillReport) -> bytes:
    """JUnit XML: one ``testsuite`` per domain, one ``testcase`` per step, a ``failure``
    for a failed step and ``skipped`` for one that did not run. UTF-8, with declaration."""
    root = ET.Element("testsuites", name="mxflip drill")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for d in report.domains:
        failures = sum(s.status == "fail" for s in d.steps)
        skipped = sum(s.status == "skipped" for s in d.steps)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"drill {d.domain}",
            tests=str(len(d.steps)),
            failures=str(failures),
            errors="0",
            skipped=str(skipped),
            time=_seconds(sum(s.seconds for s in d.steps)),
            timestamp=(when(report.started) or "").rstrip("Z"),
        )
        for s in d.steps:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"mxflip.drill.{d.domain}",
                name=s.name,
                time=_seconds(s.seconds),
            )
            if s.status == "fail":
                failure = ET.SubElement(
                    case, "failure", message=s.message[:500], type="DrillStepFailed"
                )
                failure.text = s.message
            elif s.status == "skipped":
                ET.SubElement(case, "skipped", message=s.message)
            elif s.message:
                ET.SubElement(case, "system-out").text = s.message
        totals["tests"] += len(d.steps)
        totals["failures"] += failures
        totals["skipped"] += skipped
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("errors", "0")
    root.set("time", _seconds(report.seconds))
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def _seconds(value: float) -> str:
    return f"{max(0.0, value):.3f}"
