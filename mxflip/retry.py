"""Bounded, jittered retries shared by every adapter (so none re-implements backoff)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # tenacity loads asyncio, ssl and socket: imported when a retry loop is made (a call
    # to a provider), not when an adapter is imported (``mxflip validate``).
    from tenacity import AsyncRetrying, Retrying

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
    from tenacity import (
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        stop_after_delay,
        wait_random_exponential,
    )

    return Retrying(
        retry=retry_if_exception(should_retry),
        stop=stop_after_attempt(attempts) | stop_after_delay(max_total),
        wait=wait_random_exponential(multiplier=0.5, max=max_wait),
        sleep=sleep or time.sleep,
        reraise=True,
    )


AsyncSleep = Callable[[float], Awaitable[None]]


def async_retrying(
    should_retry: Callable[[BaseException], bool],
    *,
    attempts: int = 4,
    max_wait: float = 8.0,
    max_total: float = 60.0,
    sleep: AsyncSleep | None = None,
) -> AsyncRetrying:
    """The asyncio twin of :func:`retrying` (same bounds and jitter) for coroutines:
    ``async for attempt in async_retrying(...): with attempt: ...``."""
    import asyncio

    from tenacity import (
        AsyncRetrying,
        retry_if_exception,
        stop_after_attempt,
        stop_after_delay,
        wait_random_exponential,
    )

    return AsyncRetrying(
        retry=retry_if_exception(should_retry),
        stop=stop_after_attempt(attempts) | stop_after_delay(max_total),
        wait=wait_random_exponential(multiplier=0.5, max=max_wait),
        sleep=sleep or asyncio.sleep,
        reraise=True,
    )
