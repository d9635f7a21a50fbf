"""Where the suite's CPU goes: an opt-in pytest plugin, and its report.

Run the suite with it (each xdist worker writes one JSON-lines file into the folder)::

    MXFLIP_CPUPROFILE=/tmp/prof CI=true pytest -q -p tests.support.cpuprofile
    python -m tests.support.cpuprofile /tmp/prof          # tables: per file, fixture, test

Wall time says little on a shared 2-core machine; CPU is what the workers compete for. Per
test phase (setup, call, teardown) and per fixture set-up and teardown it records the
wall time, the worker's own CPU (``RUSAGE_SELF``: the interpreter and its threads, such as
moto's server) and the CPU of every process the worker started, still running or not,
daemonised or not (named, Postfix and Dovecot detach from their parent, so
``RUSAGE_CHILDREN`` never sees them): each worker moves itself into a cgroup v1 ``cpuacct``
group of its own when the machine allows it (root, cgroup v1 mounted), whose total covers
everything forked from it. Without one, child CPU is ``RUSAGE_CHILDREN`` (reaped children
only). The plugin's own bookkeeping is a few syscalls per phase.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Generator, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

_CPUACCT = Path("/sys/fs/cgroup/cpuacct")
_ENV = "MXFLIP_CPUPROFILE"


class _Meter:
    """Counters read together: wall, own CPU, reaped children's CPU, cgroup total."""

    def __init__(self) -> None:
        self.group: Path | None = None

    def join_own_group(self) -> None:
        group = _CPUACCT / f"mxflip-prof-{os.getpid()}"
        try:
            group.mkdir(exist_ok=True)
            (group / "cgroup.procs").write_text(f"{os.getpid()}\n")
        except OSError:
            return
        self.group = group

    def leave_own_group(self) -> None:
        if self.group is None:
            return
        with suppress(OSError):
            (_CPUACCT / "cgroup.procs").write_text(f"{os.getpid()}\n")
        with suppress(OSError):  # leaked server processes keep it alive: left in place
            self.group.rmdir()

    def read(self) -> tuple[float, float, float, float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = me.ru_utime + me.ru_stime
        reaped = kids.ru_utime + kids.ru_stime
        total = own + reaped
        if self.group is not None:
            with suppress(OSError, ValueError):
                total = int((self.group / "cpuacct.usage").read_text()) / 1e9
        return time.perf_counter(), own, reaped, total


_meter = _Meter()
_out: Any = None
_start: tuple[float, float, float, float] | None = None


def _diff(
    before: tuple[float, float, float, float], after: tuple[float, float, float, float]
) -> dict[str, float]:
    wall = after[0] - before[0]
    own = after[1] - before[1]
    total = after[3] - before[3]
    return {
        "wall": round(wall, 4),
        "own": round(own, 4),
        "procs": round(max(0.0, total - own), 4),
    }


def _write(record: dict[str, Any]) -> None:
    if _out is not None:
        _out.write(json.dumps(record) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    global _out, _start
    folder = os.environ.get(_ENV)
    controller = getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput")
    if not folder:
        return
    if controller:  # it schedules and reports: only its own CPU, its children are workers
        start = resource.getrusage(resource.RUSAGE_SELF)
        config.add_cleanup(lambda: _controller_cpu(Path(folder), start))
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    Path(folder).mkdir(parents=True, exist_ok=True)
    _meter.join_own_group()
    _out = open(Path(folder) / f"{worker}.jsonl", "w", buffering=1)  # noqa: SIM115
    _start = _meter.read()
    _write({"kind": "worker", "worker": worker, "cgroup": _meter.group is not None})


def _controller_cpu(folder: Path, start: Any) -> None:
    end = resource.getrusage(resource.RUSAGE_SELF)
    own = end.ru_utime + end.ru_stime - start.ru_utime - start.ru_stime
    with open(folder / "controller.jsonl", "w") as out:
        out.write(json.dumps({"kind": "controller", "own": round(own, 3)}) + "\n")


def pytest_collection_finish(session: pytest.Session) -> None:
    if _out is not None and _start is not None:
        _write({"kind": "collection", **_diff(_start, _meter.read())})


def pytest_unconfigure(config: pytest.Config) -> None:
    global _out
    if _out is None or _start is None:
        return
    _write({"kind": "session", **_diff(_start, _meter.read())})
    _out.close()
    _out = None
    _meter.leave_own_group()


def _phase(item: pytest.Item, when: str) -> Generator[None, None, None]:
    if _out is None:
        yield
        return
    before = _meter.read()
    yield
    after = _meter.read()
    at = round(before[0] - _start[0], 3) if _start is not None else 0.0
    _write({"kind": "phase", "test": item.nodeid, "when": when, "at": at, **_diff(before, after)})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    yield from _phase(item, "setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    yield from _phase(item, "call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield from _phase(item, "teardown")


_teardown_started: dict[int, tuple[float, float, float, float]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, None, None]:
    if _out is None:
        yield
        return
    before = _meter.read()
    yield
    node = request.node.nodeid
    _write(
        {
            "kind": "fixture",
            "fixture": fixturedef.argname,
            "scope": fixturedef.scope,
            "node": node,
            "when": "setup",
            **_diff(before, _meter.read()),
        }
    )
    # Finalizers run last-in first-out: this one runs just before the fixture's teardown.
    key = id(fixturedef)
    fixturedef.addfinalizer(lambda: _teardown_started.__setitem__(key, _meter.read()))


def pytest_fixture_post_finalizer(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> None:
    before = _teardown_started.pop(id(fixturedef), None)
    if _out is None or before is None:
        return
    _write(
        {
            "kind": "fixture",
            "fixture": fixturedef.argname,
            "scope": fixturedef.scope,
            "node": request.node.nodeid,
            "when": "teardown",
            **_diff(before, _meter.read()),
        }
    )


# --- the report -------------------------------------------------------------------------


def _records(folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            with suppress(ValueError):
                yield path.stem, json.loads(line)


def _table(title: str, rows: dict[str, dict[str, float]], top: int) -> None:
    print(f"\n{title} (top {top} by CPU; seconds)")
    print(f"{'cpu':>7} {'own':>7} {'procs':>7} {'wall':>7} {'n':>5}  name")
    ranked = sorted(rows.items(), key=lambda kv: -(kv[1]["own"] + kv[1]["procs"]))
    for name, r in ranked[:top]:
        cpu = r["own"] + r["procs"]
        figures = f"{cpu:7.2f} {r['own']:7.2f} {r['procs']:7.2f} {r['wall']:7.2f} {r['n']:5.0f}"
        print(f"{figures}  {name}")


def report(folder: Path, top: int = 25) -> None:
    def blank() -> dict[str, float]:
        return {"own": 0.0, "procs": 0.0, "wall": 0.0, "n": 0.0}

    per_file: dict[str, dict[str, float]] = defaultdict(blank)
    per_test: dict[str, dict[str, float]] = defaultdict(blank)
    per_fixture: dict[str, dict[str, float]] = defaultdict(blank)
    per_worker: dict[str, dict[str, float]] = defaultdict(blank)
    outside: dict[str, dict[str, float]] = defaultdict(blank)
    for worker, r in _records(folder):
        kind = r.get("kind")
        rows: list[dict[str, float]] = []
        if kind == "phase":
            rows = [per_file[r["test"].split("::")[0]], per_test[r["test"]]]
        elif kind == "fixture":
            rows = [per_fixture[f"{r['fixture']} ({r['scope']}, {r['when']})"]]
        elif kind == "session":
            rows = [per_worker[worker]]
        elif kind == "controller":
            print(f"xdist controller: {r['own']:.1f} s of CPU (from its pytest_configure)")
        elif kind == "collection":
            rows = [outside[f"collection {worker}"]]
        for row in rows:
            for field in ("own", "procs", "wall"):
                row[field] += r[field]
            row["n"] += 1 if kind != "phase" or r["when"] == "setup" else 0
    total = {k: sum(w[k] for w in per_worker.values()) for k in ("own", "procs", "wall")}
    tests = {k: sum(f[k] for f in per_file.values()) for k in ("own", "procs", "wall")}
    print(
        f"workers: {len(per_worker)}; worker CPU {total['own'] + total['procs']:.1f} s "
        f"(own {total['own']:.1f}, processes {total['procs']:.1f}); in test phases "
        f"{tests['own'] + tests['procs']:.1f} s; elsewhere (start-up, collection, session "
        f"teardown) {total['own'] + total['procs'] - tests['own'] - tests['procs']:.1f} s"
    )
    _table("per worker (whole session)", per_worker, top)
    _table("collection", outside, top)
    _table("per file", per_file, top)
    _table("per fixture", per_fixture, top)
    _table("per test", per_test, top)


if __name__ == "__main__":
    report(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25)
