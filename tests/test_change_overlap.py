"""A changing command asks the journal whether an earlier operation is unsettled and asks
DNS for its plan at the same time (neither needs the other); the unsettled check still has
the last word: an unsettled operation refuses the command even when planning failed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from mxflip.engine import Engine
from mxflip.errors import ProviderError
from mxflip.records import RRset
from tests.support.bind import BindServer
from tests.support.cli import inject, run
from tests.support.engine import BACKUP, FakeClock, domain_names, live, seed
from tests.test_engine_cli import interrupted_failover, write_config

pytestmark = pytest.mark.real_server


@pytest.fixture(autouse=True)
def injected(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return inject(monkeypatch)


def test_the_unsettled_check_and_the_plan_are_asked_together(
    engine_bind: BindServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = domain_names(1)
    seed(engine_bind, names)
    path = write_config(tmp_path, engine_bind, names)
    planning = threading.Event()
    overlapped: list[bool] = []
    check, observe = Engine.first_unsettled, Engine.observe

    def first_unsettled(self: Engine) -> Any:
        # Bounded: asked one after the other, the plan would never start while waiting.
        overlapped.append(planning.wait(timeout=10))
        return check(self)

    async def observing(self: Engine, *args: Any, **kwargs: Any) -> Any:
        planning.set()
        return await observe(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "first_unsettled", first_unsettled)
    monkeypatch.setattr(Engine, "observe", observing)
    result = run(path, "failover", "--all", "--yes", "--now", "--reason", "drill")
    assert result.exit_code == 0, result.output
    assert overlapped == [True]
    assert live(engine_bind, names) == {n: RRset.of(n, 60, BACKUP) for n in names}


def test_an_unsettled_operation_refuses_even_when_planning_failed(
    engine_bind: BindServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = domain_names(1)
    seeded = seed(engine_bind, names)
    path = write_config(tmp_path, engine_bind, names)
    journal = interrupted_failover(path, names)

    async def broken(self: Engine, *args: Any, **kwargs: Any) -> Any:
        raise ProviderError("the provider is down")

    monkeypatch.setattr(Engine, "observe", broken)
    result = run(path, "failover", "--all", "--yes", "--now", "--reason", "drill")
    assert result.exit_code != 0
    assert "20270115T080000Z-abcdef" in result.stderr
    assert "the provider is down" not in result.stderr
    assert live(engine_bind, names) == seeded
    # Without the unsettled operation, the planning error is what the person sees.
    journal.append(
        {"type": "result", "op": "20270115T080000Z-abcdef", "ts": 2.0, "outcome": "done"}
    )
    again = run(path, "failover", "--all", "--yes", "--now", "--reason", "drill")
    assert again.exit_code != 0 and "the provider is down" in again.stderr
