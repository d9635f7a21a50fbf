"""One event loop per command.

The CLI opens :func:`command_loop` once per command; every coroutine the command needs
(readiness checks, DNS questions, canary submissions, status reads, a whole rollout) runs
on that loop through :func:`run`, so what one step makes (sockets, semaphores, waiters)
belongs to the same loop as the next, and nothing re-binds to a new loop halfway through
a command. The core below :func:`run` is ``async def`` (observe, readiness, the CNAME
check, DNS batches, canary sends, the rollout); the engine's planning, the drill and the
watch round are still synchronous and enter the loop where they need one of those.

Ctrl-C while the loop runs: :class:`asyncio.Runner` cancels the running coroutine (which
journals and unwinds) and then raises KeyboardInterrupt; SIGTERM is routed the same way
(``mxflip.cli._on_sigterm``).
The loop is made on the first :func:`run` (a command that never does I/O, or ``--help``,
does not import asyncio at all) and closed when the command ends.

Outside a command (a library caller, a test calling the core directly) :func:`run`
behaves like :func:`asyncio.run`: a loop of its own for that one call.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

_T = TypeVar("_T")


class _Scope:
    def __init__(self) -> None:
        self.runner: asyncio.Runner | None = None


_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
    "mxflip_command_loop", default=None
)


@contextlib.contextmanager
def command_loop() -> Iterator[None]:
    """The scope of one command's event loop: made on first use, closed (with its tasks
    and async generators) on exit."""
    scope = _Scope()
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)
        if scope.runner is not None:
            scope.runner.close()


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion on the command's loop (or on a loop of its own outside
    a command). Must not be called from inside a coroutine: await it there instead."""
    import asyncio

    scope = _scope.get()
    if scope is None:
        return asyncio.run(coro)
    if scope.runner is None:
        scope.runner = asyncio.Runner()
    return scope.runner.run(coro)
