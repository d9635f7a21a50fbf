"""One event loop per command (mxflip/loop.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from mxflip import loop

_R = TypeVar("_R")

# The Ctrl-C tests below press it for real (see the fixture).
pytestmark = pytest.mark.usefixtures("ctrl_c")


async def current() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_every_run_of_a_command_uses_the_same_loop_and_it_is_closed_at_the_end() -> None:
    with loop.command_loop():
        first = loop.run(current())
        second = loop.run(current())
        assert first is second and not first.is_closed()
    assert first.is_closed()


def test_outside_a_command_each_run_has_a_loop_of_its_own() -> None:
    first = loop.run(current())
    second = loop.run(current())
    assert first is not second and first.is_closed() and second.is_closed()


def test_a_command_that_never_runs_a_coroutine_makes_no_loop() -> None:
    with loop.command_loop():
        pass  # nothing to close, nothing made


def test_an_error_in_a_coroutine_reaches_the_caller_and_the_loop_goes_on() -> None:
    async def boom() -> None:
        raise ValueError("x")

    with loop.command_loop():
        with pytest.raises(ValueError):
            loop.run(boom())
        assert not loop.run(current()).is_closed()


# ----------------------------------------------------------------- waiting on the loop


def test_waiting_on_an_injected_clock_only_moves_its_time() -> None:
    from mxflip.clock import wait
    from tests.support.engine import FakeClock

    clock = FakeClock(100.0)
    loop.run(wait(clock, 3600.0))
    assert clock.now() == 3700.0 and clock.sleeps == [3600.0]


def test_waiting_on_the_real_clock_lets_the_loop_go_on() -> None:
    from mxflip.clock import SystemClock, wait

    ticks: list[int] = []

    async def ticker() -> None:
        for i in range(3):
            ticks.append(i)
            await asyncio.sleep(0)

    async def both() -> None:
        # A blocking sleep would run the ticker only after the wait.
        waiting = asyncio.ensure_future(wait(SystemClock(), 0.05))
        await asyncio.sleep(0)
        await ticker()
        assert not waiting.done()
        await waiting

    loop.run(both())
    assert ticks == [0, 1, 2]


def test_a_cancelled_rollout_wait_surfaces_as_cancellation() -> None:
    # What Ctrl-C and SIGTERM do while the loop waits: the runner cancels the command's
    # coroutine, which sees CancelledError at its wait (mxflip/rollout.py journals then).
    from mxflip.clock import SystemClock, wait

    seen: list[str] = []

    async def op() -> None:
        try:
            await wait(SystemClock(), 3600.0)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> None:
        task = asyncio.ensure_future(op())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    loop.run(main())
    assert seen == ["cancelled"]


# ----------------------------------------------------------------- Ctrl-C per step

#: How long a held step waits for the press that cancels it (bounded: never reached).
HOLD = 30.0


def press() -> None:
    """A real SIGINT to this process; its Python handler runs before this returns."""
    import signal

    signal.raise_signal(signal.SIGINT)


def interrupts_run(body: Callable[[loop.StepInterrupts], Coroutine[Any, Any, _R]]) -> _R:
    """``body`` on a command's loop with the step handler installed, as the drill runs."""
    steps = loop.StepInterrupts()

    async def main() -> _R:
        steps.bind()
        return await body(steps)

    with loop.command_loop(), steps.installed():
        return loop.run(main())


async def held(log: list[str], name: str, *, presses: int = 1) -> str:
    """A step pressed ``presses`` times: once as it starts, and again while it unwinds."""
    press()
    try:
        await asyncio.sleep(HOLD)
    except asyncio.CancelledError:
        log.append(f"{name} cancelled")
        if presses < 2:
            raise
        press()
        try:
            await asyncio.sleep(HOLD)  # e.g. journalling what was interrupted
        except asyncio.CancelledError:
            log.append(f"{name} unwinding cancelled")
            raise
    return "not interrupted"


async def quick(value: str) -> str:
    await asyncio.sleep(0)
    return value


def test_ctrl_c_cancels_the_step_and_the_caller_goes_on_with_a_fresh_count() -> None:
    import signal

    log: list[str] = []

    async def body(steps: loop.StepInterrupts) -> list[str]:
        assert await steps.run(quick("before")) == "before"
        for name in ("first", "restore"):
            try:
                await steps.run(held(log, name))
            except KeyboardInterrupt:
                log.append(f"{name} interrupted")
        log.append(await steps.run(quick("after")))
        return log

    assert interrupts_run(body) == [
        "first cancelled",
        "first interrupted",
        "restore cancelled",  # a press in the next step counts as a first press again
        "restore interrupted",
        "after",
    ]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_press_in_one_step_cancels_its_unwinding() -> None:
    log: list[str] = []

    async def body(steps: loop.StepInterrupts) -> list[str]:
        with pytest.raises(KeyboardInterrupt):
            await steps.run(held(log, "step", presses=2))
        return log

    assert interrupts_run(body) == ["step cancelled", "step unwinding cancelled"]


def test_ctrl_c_in_the_caller_s_own_code_raises_there() -> None:
    async def body(steps: loop.StepInterrupts) -> str:
        await steps.run(quick("one"))
        try:
            press()
        except KeyboardInterrupt:
            return await steps.run(quick("caught where it was pressed"))
        return "no interrupt"

    assert interrupts_run(body) == "caught where it was pressed"


def test_ctrl_c_between_steps_reaches_the_caller_at_its_next_step() -> None:
    async def body(steps: loop.StepInterrupts) -> list[str]:
        seen: list[str] = []
        # Pressed from the loop's own machinery (a callback), not from a task's code.
        asyncio.get_running_loop().call_soon(press)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        try:
            await steps.run(quick("never run"))
        except KeyboardInterrupt:
            seen.append("interrupted at the next step")
        seen.append(await steps.run(quick("then on")))
        return seen

    assert interrupts_run(body) == ["interrupted at the next step", "then on"]


def test_a_keyboard_interrupt_raised_in_a_step_reaches_the_caller_not_the_loop() -> None:
    async def raising() -> None:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    async def body(steps: loop.StepInterrupts) -> str:
        with pytest.raises(KeyboardInterrupt):
            await steps.run(raising())
        return await steps.run(quick("the loop went on"))

    assert interrupts_run(body) == "the loop went on"


def test_sigterm_reaches_the_step_handler_like_ctrl_c() -> None:
    import signal

    from mxflip.cli import _on_sigterm

    log: list[str] = []

    async def terminated() -> None:
        _on_sigterm(signal.SIGTERM, None)  # what the CLI's SIGTERM handler does
        try:
            await asyncio.sleep(HOLD)
        except asyncio.CancelledError:
            log.append("cancelled")
            raise

    async def body(steps: loop.StepInterrupts) -> list[str]:
        with pytest.raises(KeyboardInterrupt):
            await steps.run(terminated())
        return log

    assert interrupts_run(body) == ["cancelled"]
