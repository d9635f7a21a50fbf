"""Every long wait shows a countdown with its end time, on a terminal or not."""

from __future__ import annotations

import io

from rich.console import Console

from mxflip.render.common import when
from mxflip.render.operations import CountdownPrinter, EventPrinter
from mxflip.rollout import Event

UNTIL = 1_800_003_600.0


def countdown(remaining: float) -> Event:
    return Event(
        "countdown",
        "prelower-wait",
        "waiting for caches of the old TTL to expire",
        {"remaining": remaining, "total": 3600.0, "until": UNTIL},
    )


def test_terminal_countdown_names_the_end_time() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    printer = EventPrinter(as_json=False, console=console)
    printer(countdown(3600.0))
    printer(countdown(1800.0))
    assert printer._progress is not None
    [task] = printer._progress.tasks
    assert task.description.endswith(f"(until {when(UNTIL)})")
    printer(countdown(0.0))
    assert printer._progress is None


def test_plain_countdown_lines_name_the_end_time() -> None:
    out = io.StringIO()
    printer = EventPrinter(
        as_json=False, console=Console(file=out, force_terminal=False, width=200)
    )
    for remaining in (3600.0, 3000.0, 0.0):
        printer(countdown(remaining))
    assert out.getvalue().splitlines() == [
        f"  waiting for caches of the old TTL to expire: 1h left (until {when(UNTIL)})",
        f"  waiting for caches of the old TTL to expire: 50m left (until {when(UNTIL)})",
        f"  waiting for caches of the old TTL to expire: 0s left (until {when(UNTIL)})",
    ]


def test_countdown_printer_shows_only_countdowns() -> None:
    out = io.StringIO()
    printer = CountdownPrinter(
        as_json=False, console=Console(file=out, force_terminal=False, width=200)
    )
    printer(Event("phase-start", "switch", "write"))
    printer(countdown(0.0))
    assert out.getvalue().splitlines() == [
        f"  waiting for caches of the old TTL to expire: 0s left (until {when(UNTIL)})"
    ]
