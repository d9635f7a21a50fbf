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
