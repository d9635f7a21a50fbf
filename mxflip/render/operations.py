"""Changing commands: plans, results, progress events and the journal's history."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mxflip.duration import format_duration
from mxflip.journal import JournalView
from mxflip.plan import Plan
from mxflip.records import RRset, display_name
from mxflip.render.common import JSON_VERSION, records_text, stderr_console, when
from mxflip.rollout import Event, RolloutResult
from mxflip.sanitize import clean


def plan_json(plan: Plan) -> dict[str, Any]:
    """The plan part of every changing command's JSON document."""
    return {
        "kind": plan.kind,
        "target": plan.target,
        "hash": plan.hash,
        "parent": plan.parent,
        "expected_seconds": plan.expected_seconds,
        "phases": [{"name": p.name, "seconds": p.seconds} for p in plan.phases],
        "findings": [
            {"severity": f.severity, "code": f.code, "message": f.message} for f in plan.findings
        ],
        "blocked": bool(plan.blockers),
        "steps": [
            {
                "domain": s.domain.display,
                "zone": display_name(s.domain.zone),
                "provider": s.domain.provider,
                "noop": s.noop,
                "before": _rr_json(s.before),
                "prelower": _rr_json(s.prelower),
                "after": _rr_json(s.after),
                "findings": [
                    {
                        "severity": f.severity,
                        "code": f.code,
                        "message": f.message,
                        "overridable": f.overridable,
                    }
                    for f in s.findings
                ],
            }
            for s in plan.steps
        ],
    }


def _rr_json(rrset: RRset | None) -> dict[str, Any] | None:
    return None if rrset is None else {"records": rrset.strings(), "ttl": rrset.ttl}


_PHASE_TEXT = {
    "prelower": "lower the TTL of the live set",
    "prelower-wait": "wait for caches of the old TTL to expire",
    "switch": "write the new set (conditional, atomic per zone)",
    "verify": "poll every verification nameserver until all serve it",
    "restore-wait": "wait before raising the TTL",
    "restore-ttl": "raise the TTL back to ttl",
}


def render_plan(console: Console, plan: Plan, now: float | None = None) -> None:
    """Per domain before → after, TTL phases, findings, expected completion, plan hash.

    ``now`` (the command's clock) turns the expected duration into a time of day."""
    table = Table(title=f"{plan.kind} → {plan.target}", show_lines=True)
    for col in ("Domain", "Before", "", "After", "Findings"):
        table.add_column(col, no_wrap=col != "Findings")
    for s in plan.steps:
        findings = Text()
        for i, f in enumerate(s.findings):
            if i:
                findings.append("\n")
            style = "red" if f.severity == "block" else "yellow"
            findings.append(f"{f.severity}: ", style=style)
            findings.append(f"{f.message} [{f.code}]")
        after = Text("unchanged", style="dim") if s.noop else Text(records_text(s.after))
        if s.prelower is not None:
            after = Text(f"(first TTL {s.prelower.ttl})\n") + after
        table.add_row(s.domain.display, records_text(s.before), "→", after, findings)
    if plan.steps:
        console.print(table)
    for f in plan.findings:
        console.print(f"{f.severity}: {f.message} [{f.code}]", markup=False)
    if plan.phases:
        console.print("Phases:", markup=False)
        for p in plan.phases:
            console.print(
                f"  {p.name:<14} {_PHASE_TEXT.get(p.name, '')} (~{format_duration(p.seconds)})",
                markup=False,
            )
        eta = f"~{format_duration(plan.expected_seconds)}"
        if now is not None:
            eta += f" (around {when(now + plan.expected_seconds)} if started now)"
        console.print(f"Expected completion in {eta}", markup=False)
    changes = len(plan.changes)
    console.print(
        f"{changes} domain{'s' if changes != 1 else ''} to change, "
        f"{len(plan.steps) - changes} already there. Plan hash: {plan.hash}",
        markup=False,
    )
    for d, f in plan.blockers:
        console.print(f"BLOCKED: {d + ': ' if d else ''}{f.message} [{f.code}]", markup=False)
    for d, f in plan.forced:
        console.print(f"FORCED: {d + ': ' if d else ''}{f.message} [{f.code}]", markup=False)


def operation_json(
    command: str,
    exit_code: int,
    plan: Plan,
    result: RolloutResult | None,
    *,
    dry_run: bool = False,
    error: str | None = None,
) -> dict[str, Any]:
    """The ``--json`` document of a changing command."""
    doc: dict[str, Any] = {
        "version": JSON_VERSION,
        "command": command,
        "exit_code": exit_code,
        "dry_run": dry_run,
        "plan": plan_json(plan),
        "operation": None,
        "error": error,
    }
    if result is not None:
        doc["operation"] = {
            "id": result.op_id,
            "outcome": result.outcome,
            "states": {display_name(k): v for k, v in result.states.items()},
            "started": when(result.started),
            "finished": when(result.finished),
            "phases": [{"name": n, "status": s} for n, s in result.phases],
            "old_answers_until": when(result.old_answers_until),
            "cached": [
                {
                    "domain": c.domain,
                    "server": c.server,
                    "records": list(c.records),
                    "until": when(c.until),
                }
                for c in result.cached
            ],
            "error": result.error,
            "note": result.note,
        }
        doc["error"] = doc["error"] or result.error
    return doc


def render_result(console: Console, result: RolloutResult) -> None:
    if result.outcome == "noop":
        if result.note and result.plan.parent:
            console.print(
                f"Nothing to do: {result.note.removeprefix('nothing to do: ')}. "
                f"Operation {result.plan.parent} is settled (journalled as {result.op_id}).",
                markup=False,
            )
            return
        console.print("Nothing to do: every domain is already in the asked state.")
        return
    console.print(
        f"Operation {result.op_id}: {result.outcome} "
        f"in {format_duration(result.finished - result.started)}",
        markup=False,
    )
    for domain, state in result.states.items():
        console.print(f"  {display_name(domain)}: {state}", markup=False)
    if result.error:
        console.print(f"  error: {result.error}", markup=False)
    if result.old_answers_until is not None:
        console.print(
            f"Old answers may stay cached until {when(result.old_answers_until)}.",
            markup=False,
        )
    for c in result.cached:
        console.print(
            f"  resolver {c.server} caches the old set of {c.domain} until {when(c.until)}",
            markup=False,
        )


class EventPrinter:
    """Progress for a changing command: JSON lines on stderr with ``--json``, a rich
    countdown on a terminal, plain lines otherwise (countdowns every 10 %)."""

    def __init__(self, *, as_json: bool, console: Console | None = None) -> None:
        self.as_json = as_json
        self.console = console or stderr_console()
        self._last_shown: float | None = None
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, event: Event) -> None:
        if self.as_json:
            doc = {"event": event.kind, "phase": event.phase, "message": event.message}
            doc.update({k: v for k, v in event.data.items() if _jsonable(v)})
            sys.stderr.write(json.dumps(doc) + "\n")
            sys.stderr.flush()
            return
        if event.kind == "countdown":
            self._countdown(event)
            return
        self._stop_progress()
        if event.kind == "phase-start":
            self.console.print(f"… {_PHASE_TEXT.get(event.phase or '', event.message)}")
        elif event.kind == "phase-done":
            self.console.print(f"✓ {event.phase}")
        elif event.kind == "info" and "until" in event.data:
            self.console.print(f"{event.message} until {when(float(event.data['until']))}")
        elif event.kind in ("rollback", "cached", "info"):
            self.console.print(event.message, markup=False)

    def _countdown(self, event: Event) -> None:
        remaining = float(event.data.get("remaining", 0.0))
        total = float(event.data.get("total", 0.0)) or 1.0
        until = event.data.get("until")
        # Every long wait says when it ends, so a person can come back rather than watch.
        ends = f" (until {when(float(until))})" if isinstance(until, int | float) else ""
        if self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            if self._progress is None:
                self._progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TimeRemainingColumn(),
                    console=self.console,
                    transient=True,
                )
                self._progress.start()
                self._task = self._progress.add_task(event.message + ends, total=total)
            self._progress.update(self._task, completed=total - remaining)
            if remaining <= 0:
                self._stop_progress()
            return
        step = max(total / 10, 1.0)
        if self._last_shown is None or self._last_shown - remaining >= step or remaining <= 0:
            self._last_shown = remaining
            self.console.print(
                f"  {event.message}: {format_duration(remaining)} left{ends}", markup=False
            )
        if remaining <= 0:
            self._last_shown = None

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class CountdownPrinter(EventPrinter):
    """Only the countdowns of long waits (for commands that report their own steps, such
    as ``drill``): a countdown with its end time on a terminal or not, JSON lines with
    ``--json``."""

    def __call__(self, event: Event) -> None:
        if event.kind == "countdown":
            super().__call__(event)


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | type(None))


def history_json(view: JournalView, limit: int | None) -> dict[str, Any]:
    ops = view.operations[-limit:] if limit else view.operations
    return {
        "version": JSON_VERSION,
        "command": "history",
        "exit_code": 0,
        "skipped_lines": view.skipped_lines,
        "operations": [
            {
                "id": op.id,
                "kind": op.kind,
                "target": op.intent.get("target"),
                "time": op.intent.get("time"),
                "user": op.intent.get("user"),
                "host": op.intent.get("host"),
                "reason": op.intent.get("reason"),
                "command": op.intent.get("command"),
                "plan_hash": op.intent.get("plan_hash"),
                "parent": op.intent.get("parent"),
                "outcome": op.outcome,
                "steps": op.intent.get("steps", []),
                "phases": [
                    {"phase": p.get("phase"), "status": p.get("status"), "time": p.get("time")}
                    for p in op.phases
                ],
                "result": op.result,
                "notes": op.notes,
            }
            for op in reversed(ops)
        ],
    }


def render_history(console: Console, view: JournalView, limit: int | None) -> None:
    ops = view.operations[-limit:] if limit else view.operations
    if not ops:
        console.print("The journal holds no operations.")
        return
    table = Table()
    for col in ("Operation", "When", "Who", "What", "Domains", "Outcome", "Reason"):
        table.add_column(col, no_wrap=col not in ("Reason", "Domains"))
    for op in reversed(ops):
        steps = op.steps
        what = f"{op.kind} → {op.intent.get('target', '')}"
        domains = ", ".join(display_name(s.domain) for s in steps[:3])
        if len(steps) > 3:
            domains += f" (+{len(steps) - 3})"
        outcome = op.outcome
        style = {"done": "green", "rolled-back": "yellow"}.get(outcome, "red")
        # Journal text is shown as text: no rich markup, no control characters.
        table.add_row(
            Text(clean(op.id)),
            Text(clean(str(op.intent.get("time", "")))),
            Text(clean(f"{op.intent.get('user')}@{op.intent.get('host')}")),
            Text(clean(what)),
            Text(clean(domains)),
            Text(clean(outcome), style=style),
            Text(clean(str(op.intent.get("reason") or ""))),
        )
    console.print(table)
    if view.skipped_lines:
        console.print(f"({view.skipped_lines} unreadable journal line(s) skipped)")
