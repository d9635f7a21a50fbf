"""A command's loop runs with the collector's thresholds raised, and gives them back."""

from __future__ import annotations

import gc

from mxflip import loop


async def _thresholds() -> tuple[int, int, int]:
    return gc.get_threshold()


def test_a_commands_loop_raises_the_gc_thresholds_and_restores_them() -> None:
    before = gc.get_threshold()
    with loop.command_loop():
        assert gc.get_threshold() == before  # no loop yet, nothing changed
        assert loop.run(_thresholds()) == loop.LOOP_GC_THRESHOLDS
        assert loop.run(_thresholds()) == loop.LOOP_GC_THRESHOLDS
    assert gc.get_threshold() == before


def test_outside_a_command_the_thresholds_are_left_alone() -> None:
    before = gc.get_threshold()
    assert loop.run(_thresholds()) == before
    assert gc.get_threshold() == before
