"""One event loop per command (mxflip/loop.py)."""

from __future__ import annotations

import asyncio

import pytest

from mxflip import loop


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
