"""One event loop per command.

The CLI opens :func:`command_loop` once per command; every coroutine the command needs
(readiness checks, DNS questions, canary submissions, status reads, a whole rollout) runs
on that loop through :func:`run`, so what one step makes (sockets, semaphores, waiters)
belongs to the same loop as the next, and nothing re-binds to a new loop halfway through
a command. The core below :func:`run` is ``async def`` (observe, readiness, the CNAME
check, DNS batches, canary sends and runs, status, doctor's checks, the engine, the
rollout, a watch round and its actions); a command enters the loop once, and ``watch``
once per round (between rounds it waits on its clock and its stop/reload events, which
its own signal handlers set). The drill is still synchronous and enters the loop for each
engine step: it catches the KeyboardInterrupt that :class:`asyncio.Runner` raises after
cancelling a step, to restore what it changed, and a second Ctrl-C during that restore
interrupts the restore step the same way (each ``Runner.run`` counts Ctrl-C afresh).

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
import gc
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

_T = TypeVar("_T")


#: The collector's thresholds while a command's loop runs (Python's are 700, 10, 10). A
#: loop allocates container objects by the thousand (coroutines, futures, handles): at
#: 700 a check of 200 domains ran ~300 collections, ~0.15 s of CPU (a tenth of the whole
#: command; ``bench/bench_check.py --cli``), nearly all of it tracing objects that were
#: still in use. Cycles are still collected, every 10,000 allocations.
LOOP_GC_THRESHOLDS = (10_000, 20, 20)


class _Scope:
    def __init__(self) -> None:
        self.runner: asyncio.Runner | None = None
        #: The thresholds before the loop was made (restored when the command ends).
        self.gc_thresholds: tuple[int, int, int] | None = None


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
        if scope.gc_thresholds is not None:
            gc.set_threshold(*scope.gc_thresholds)


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion on the command's loop (or on a loop of its own outside
    a command). Must not be called from inside a coroutine: await it there instead."""
    import asyncio

    scope = _scope.get()
    if scope is None:
        return asyncio.run(coro)
    if scope.runner is None:
        scope.runner = asyncio.Runner()
        scope.gc_thresholds = gc.get_threshold()
        gc.set_threshold(*LOOP_GC_THRESHOLDS)
    return scope.runner.run(coro)
