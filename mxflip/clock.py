"""The one clock of mxflip: wall time and a way to wait, injectable everywhere.

It lives in a module of its own (rather than in ``rollout``, where it was born) so that
adapters can take it from ``mxflip`` without loading the rollout machinery.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall time in seconds since the epoch, and a way to wait."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


async def wait(clock: Clock, seconds: float) -> None:
    """Wait ``seconds`` on ``clock`` inside a coroutine (countdowns, verification polls).

    The real clock waits on the event loop, so signals and other tasks go on meanwhile;
    an injected clock (a test's, whose ``sleep`` only moves its own time) is asked as it
    is, then the loop gets a turn: tests never sleep for real.
    """
    import asyncio

    if isinstance(clock, SystemClock):
        await asyncio.sleep(max(0.0, seconds))
    else:
        clock.sleep(seconds)
        await asyncio.sleep(0)
