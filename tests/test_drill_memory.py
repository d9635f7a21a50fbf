"""The drill as one coroutine, on MemoryProvider (no BIND, no SMTP): it enters the
command's event loop once, and Ctrl-C reaches it per step — the first press fails the
step and the drill restores, a second press during the restore interrupts the restore's
rollback (journalled) and the drill raises KeyboardInterrupt. The presses are real
SIGINTs raised in this process while the step runs (the real-process versions, SIGTERM
too, are in tests/test_drill_signals.py)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from mxflip import loop
from mxflip.config import Config, DomainConfig, load_config
from mxflip.drill import Drill
from mxflip.journal import Journal
from mxflip.plan import Readiness, ReadinessVerdict
from mxflip.records import RRset
from mxflip.testing.memory import MemoryStore
from tests.support.cli import doc_of, inject, run
from tests.support.drill_child import HOLD, hold_the_probe
from tests.support.engine import PRIMARY, FakeClock, ready
from tests.support.memory import ZONE, seed, write_config

pytestmark = pytest.mark.usefixtures("ctrl_c")

NAMES = [f"a.{ZONE}"]


@pytest.fixture
def config(memory_store: MemoryStore, tmp_path: Path) -> Config:
    seed(memory_store, NAMES)
    return load_config(write_config(tmp_path, memory_store, NAMES))


def press_ctrl_c() -> None:
    """A real SIGINT to this process; its Python handler runs before this returns."""
    signal.raise_signal(signal.SIGINT)


def make_drill(config: Config, readiness: Readiness) -> Drill:
    assert config.journal.path is not None
    return Drill(
        config,
        list(config.domains.values()),
        Journal(config.journal.path),
        readiness=readiness,
        clock=FakeClock(),
    )


def operations(config: Config) -> list[tuple[str, str]]:
    assert config.journal.path is not None
    return sorted((o.kind, o.outcome) for o in Journal(config.journal.path).read().operations)


def statuses(drill_steps: Sequence[object]) -> dict[str, tuple[str, str]]:
    return {s.name: (s.status, s.message) for s in drill_steps}  # type: ignore[attr-defined]


def held_probe(handlers: list[object]) -> Readiness:
    """Readiness that says "ready", and whose probe after the switch is held until
    Ctrl-C (pressed as it starts) cancels it; ``handlers`` gets the SIGINT handler then."""

    def on_hold() -> None:
        handlers.append(signal.getsignal(signal.SIGINT))
        press_ctrl_c()

    return hold_the_probe(ready, on_hold)


def test_a_drill_enters_the_event_loop_once(
    memory_store: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inject(monkeypatch)
    seed(memory_store, NAMES)
    path = write_config(tmp_path, memory_store, NAMES)
    entered: list[object] = []
    real_run = asyncio.Runner.run

    def counting(self: asyncio.Runner, coro: object, **kw: object) -> object:
        entered.append(coro)
        return real_run(self, coro, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio.Runner, "run", counting)
    result = run(path, "drill", "--json")
    assert result.exit_code == 0, result.output
    assert doc_of(result)["passed"] is True
    assert len(entered) == 1
    assert operations(load_config(path)) == [("failover", "rolled-back"), ("rollback", "done")]


def test_ctrl_c_during_the_probe_fails_it_and_the_drill_restores(
    config: Config, memory_store: MemoryStore
) -> None:
    handlers: list[object] = []
    report = make_drill(config, held_probe(handlers)).run()
    steps = statuses(report.domains[0].steps)
    assert steps["probe"] == ("fail", "interrupted (Ctrl-C)")
    assert steps["failback"][0] == "skipped"
    assert steps["restore"][0] == "pass" and steps["final-status"][0] == "pass"
    assert int(report.exit_code) == 3
    assert memory_store.get(NAMES[0]) == RRset.of(NAMES[0], 3600, PRIMARY)
    assert operations(config) == [("failover", "rolled-back"), ("rollback", "done")]
    # The drill's handler counted the presses while it ran, and Ctrl-C is Python's again.
    assert handlers and handlers[0] is not signal.default_int_handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_during_the_restore_interrupts_it(
    config: Config, memory_store: MemoryStore
) -> None:
    drill = make_drill(config, held_probe([]))
    switches = 0

    def failpoint(name: str) -> None:
        nonlocal switches
        if name == "switch:after-apply":
            switches += 1
            if switches == 2:  # the restore's rollback has written the primary set
                press_ctrl_c()

    drill.engine.failpoint = failpoint
    with pytest.raises(KeyboardInterrupt):
        drill.run()
    assert switches == 2
    # The rollback was interrupted after its write and says so in the journal, for
    # 'mxflip rollback' to settle; the failover before it was done.
    assert operations(config) == [("failover", "done"), ("rollback", "interrupted")]
    assert memory_store.get(NAMES[0]) == RRset.of(NAMES[0], 3600, PRIMARY)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_before_anything_changed_stops_the_drill(config: Config) -> None:
    async def pressed(
        domains: Sequence[DomainConfig], targets: Mapping[str, RRset]
    ) -> Mapping[str, ReadinessVerdict]:
        press_ctrl_c()
        await asyncio.sleep(HOLD)
        raise AssertionError("never reached")

    with pytest.raises(KeyboardInterrupt):
        make_drill(config, pressed).run()
    assert operations(config) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_drill_runs_on_a_caller_s_loop_too(config: Config) -> None:
    async def main() -> int:
        report = await make_drill(config, ready).run_async()
        return int(report.exit_code)

    with loop.command_loop():
        assert loop.run(main()) == 0
