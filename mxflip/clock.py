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
