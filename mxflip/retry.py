"""Bounded, jittered retries shared by every adapter (so none re-implements backoff)."""

from __future__ import annotations

import time
from collections.abc import Callable

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

Sleep = Callable[[float], None]


def retrying(
    should_retry: Callable[[BaseException], bool],
    *,
    attempts: int = 4,
    max_wait: float = 8.0,
    max_total: float = 60.0,
    sleep: Sleep | None = None,
) -> Retrying:
    """A tenacity ``Retrying`` with full-jitter exponential backoff, bounded in attempts
    and in total time; re-raises the last error. ``sleep`` is injectable so tests never
    wait."""
    return Retrying(
        retry=retry_if_exception(should_retry),
        stop=stop_after_attempt(attempts) | stop_after_delay(max_total),
        wait=wait_random_exponential(multiplier=0.5, max=max_wait),
        sleep=sleep or time.sleep,
        reraise=True,
    )
