"""One event loop per command.

The CLI opens :func:`command_loop` once per command; every coroutine the command needs
(readiness checks, DNS questions, canary submissions, status reads, a whole rollout) runs
on that loop through :func:`run`, so what one step makes (sockets, semaphores, waiters)
belongs to the same loop as the next, and nothing re-binds to a new loop halfway through
a command. The core below :func:`run` is ``async def`` (observe, readiness, the CNAME
check, DNS batches, canary sends and runs, status, doctor's checks, the engine, the
rollout, a whole drill, a watch round and its actions); a command enters the loop once,
and ``watch`` once per round (between rounds it waits on its clock and its stop/reload
events, which its own signal handlers set).

Ctrl-C while the loop runs: :class:`asyncio.Runner` cancels the running coroutine (which
journals and unwinds) and then raises KeyboardInterrupt; SIGTERM is routed the same way
(``mxflip.cli._on_sigterm``). A coroutine that must go on after an interruption (the
drill, which puts back what it changed) runs its steps through :class:`StepInterrupts`,
which counts Ctrl-C per step the way the runner counts it per run.
The loop is made on the first :func:`run` (a command that never does I/O, or ``--help``,
does not import asyncio at all) and closed when the command ends.

Outside a command (a library caller, a test calling the core directly) :func:`run`
behaves like :func:`asyncio.run`: a loop of its own for that one call.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    import asyncio
    from types import FrameType

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


class StepInterrupts:
    """Ctrl-C during one coroutine's steps, counted per step as each :func:`run` counts it.

    ``await steps.run(coro)`` runs one step as a task of its own. The first Ctrl-C during
    a step cancels that task (it journals and unwinds as under :func:`run`) and the caller
    gets KeyboardInterrupt from ``steps.run`` when the step has ended; it may then go on
    with other steps (the drill restores what it changed), each counting Ctrl-C afresh. A
    second Ctrl-C in the same step cancels it again (its unwinding stops at its next
    wait); a third raises KeyboardInterrupt where the program is, for a step that never
    waits. Ctrl-C between steps, in the caller's own code, raises KeyboardInterrupt there,
    as in synchronous code; elsewhere between steps, at the caller's next ``steps.run``.
    A KeyboardInterrupt raised inside a step reaches the caller the same way (it never
    escapes the loop, which would strand the caller).

    :meth:`installed` puts the SIGINT handler in place around the :func:`run` of the
    caller (SIGTERM reaches it through ``mxflip.cli._on_sigterm``); the caller says which
    task it is with :meth:`bind`. Without the handler (not the main thread, or SIGINT
    already handled by someone else) the steps simply run, and Ctrl-C cancels the whole
    coroutine as :func:`run` does.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._caller: asyncio.Task[Any] | None = None
        self._step: asyncio.Future[Any] | None = None
        self._presses = 0
        self._pending = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """This object as the SIGINT handler, where :class:`asyncio.Runner` would put its
        own (the main thread, SIGINT not taken by anyone else); the default back after."""
        import signal
        import threading

        if (
            threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            yield
            return
        signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            if signal.getsignal(signal.SIGINT) == self._on_sigint:
                signal.signal(signal.SIGINT, signal.default_int_handler)

    def bind(self) -> None:
        """Called by the coroutine whose steps these are, on its loop, before its first
        step: Ctrl-C in its own code then raises there."""
        import asyncio

        self._loop = asyncio.get_running_loop()
        self._caller = asyncio.current_task()

    async def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run one step; KeyboardInterrupt when Ctrl-C interrupted it (see above)."""
        import asyncio

        if self._pending:
            coro.close()
            self._pending = False
            raise KeyboardInterrupt
        self._presses = 0
        step = asyncio.ensure_future(_guarded(coro))
        self._step = step
        try:
            value, interrupt = await step
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            if self._presses and (caller is None or not caller.cancelling()):
                raise KeyboardInterrupt from None
            raise  # the caller itself is being cancelled (the loop is closing)
        finally:
            self._step = None
        if interrupt is not None or self._pending:
            self._pending = False
            raise KeyboardInterrupt
        return cast(_T, value)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        import asyncio

        self._presses += 1
        step, loop = self._step, self._loop
        if step is not None and not step.done() and loop is not None:
            if self._presses > 2:
                raise KeyboardInterrupt  # the step did not unwind: stop where it is
            step.cancel()
            # Wake the loop if it is blocked in select() with a long timeout.
            loop.call_soon_threadsafe(_nothing)
            return
        if loop is None or asyncio.current_task(loop) is self._caller:
            raise KeyboardInterrupt  # in the caller's own code (or before the loop ran)
        self._pending = True  # between steps: the caller hears of it at its next step
        loop.call_soon_threadsafe(_nothing)


async def _guarded(coro: Coroutine[Any, Any, _T]) -> tuple[_T | None, KeyboardInterrupt | None]:
    """A step's result, or the KeyboardInterrupt raised inside it: raised out of a task,
    it would leave the loop (asyncio re-raises it) and strand the step's caller."""
    try:
        return await coro, None
    except KeyboardInterrupt as exc:
        return None, exc


def _nothing() -> None:
    pass
