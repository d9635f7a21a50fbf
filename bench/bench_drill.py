"""Benchmark: ``mxflip drill --sandbox``, in process and as the README's command.

Prints, over N runs, the median and the slowest time of each drill step in the sandbox
(zone file, loopback DNS, three loopback SMTP servers), the whole drill, the sandbox's
setup and teardown, and the wall time of the README command as a fresh process (Python
start-up and imports included). Run from the repo root:

    python bench/bench_drill.py [--runs 10]

Goal: the quickstart finishes in a few seconds on a laptop, and so does
``mxflip drill --sandbox --planned`` (the lab's TTLs are 4 s and 2 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mxflip.drill import Drill  # noqa: E402
from mxflip.journal import Journal  # noqa: E402
from mxflip.readiness import default_readiness  # noqa: E402
from mxflip.sandbox import Sandbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    steps: dict[str, list[float]] = defaultdict(list)
    setup, teardown, drills = [], [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        box = Sandbox().__enter__()
        t1 = time.perf_counter()
        config = box.config
        domains = list(config.domains.values())
        report = Drill(
            config, domains, Journal(box.journal_path), readiness=default_readiness(config)
        ).run()
        t2 = time.perf_counter()
        box.close()
        t3 = time.perf_counter()
        assert report.passed, report
        setup.append(t1 - t0)
        drills.append(t2 - t1)
        teardown.append(t3 - t2)
        for step in report.domains[0].steps:
            steps[step.name].append(step.seconds)

    def row(name: str, values: list[float]) -> None:
        print(f"{name:<18} median {statistics.median(values):7.3f} s   max {max(values):7.3f} s")

    print(f"mxflip drill --sandbox, {args.runs} runs in process")
    for name, values in steps.items():
        row(name, values)
    row("drill (all steps)", drills)
    row("sandbox setup", setup)
    row("sandbox teardown", teardown)

    row("README command", command_walls(["--sandbox"], min(args.runs, 5)))
    # A planned drill lowers the TTL and waits out the old one: the sandbox's TTL (4 s),
    # not an hour. Goal: a few seconds more than the emergency drill.
    row("--planned command", command_walls(["--sandbox", "--planned"], min(args.runs, 3)))


def command_walls(args: list[str], runs: int) -> list[float]:
    """Wall times of ``mxflip drill ARGS`` as a fresh process (start-up included)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mxflip", "drill", *args],
            env=env,
            check=True,
            capture_output=True,
            cwd="/",
        )
        walls.append(time.perf_counter() - t0)
    return walls


if __name__ == "__main__":
    main()
