"""The garbage collector's settings for a command: the one home of mxflip's GC policy.

A command allocates far more long-lived objects than garbage: start-up builds click's
parameters, pydantic's schema machinery and the configuration's models (some 100,000
objects), an SDK's import adds tens of thousands more, and a command's event loop makes
coroutines, futures and handles by the thousand. At CPython's default threshold (700
allocations) the collector walks those again and again to free next to nothing.
"""

from __future__ import annotations

import gc

#: Allocations between young collections. mypy uses 200,000; at 50,000 a long-running
#: command (watch) still collects regularly. At 700, `check` over 200 domains ran ~300
#: collections (~0.15 s of CPU, bench/bench_check.py --cli), nearly all tracing live
#: objects.
YOUNG_GENERATION = 50_000


def set_young_generation() -> None:
    """Set the command's young generation (called once, at the CLI's entry)."""
    gc.set_threshold(YOUNG_GENERATION, *gc.get_threshold()[1:])


def keep_what_exists() -> None:
    """Move every object alive now out of the collector's way (``gc.freeze``).

    For objects that live as long as the process: what a large import just made (a
    later collection would walk them to free nothing), and everything left when a
    command ends (the interpreter's final collection walks every object start-up made
    only to free memory the process gives back anyway: 10-20 ms). Cyclic garbage alive
    at this instant is never collected, so call it only where that garbage is small.
    """
    gc.freeze()
