"""One event loop per command.

The CLI opens :func:`command_loop` once per command; every coroutine the command needs
(readiness checks, DNS questions, canary submissions, status reads) runs on that loop
through :func:`run`, so sockets, semaphores and caches made by one step are still valid
in the next, and nothing re-binds to a new loop halfway through a command.

Outside a command (a library caller, a test calling the core directly) :func:`run`
behaves like :func:`asyncio.run`: a loop of its own for that one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

_T = TypeVar("_T")

_runner: contextvars.ContextVar[asyncio.Runner | None] = contextvars.ContextVar(
    "mxflip_command_loop", default=None
)


@contextlib.contextmanager
def command_loop() -> Iterator[None]:
    """The event loop of one command: made on entry, closed (with its tasks and async
    generators) on exit."""
    with asyncio.Runner() as runner:
        token = _runner.set(runner)
        try:
            yield
        finally:
            _runner.reset(token)


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion on the command's loop (or on a loop of its own outside
    a command). Must not be called from inside a coroutine: await it there instead."""
    runner = _runner.get()
    if runner is None:
        return asyncio.run(coro)
    return runner.run(coro)
