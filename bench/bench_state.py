"""Benchmark: the shared (S3) state backend against moto's server on loopback.

1. State API calls per failover, counted by the backend itself, for N domains, with a
   journal that already holds other operations: on a new machine (it never read them),
   the same machine again, and the same machine after another machine's operation.
   Goal: at most 6 calls beyond the journal records the failover writes.
2. Wall time of ``mxflip failover --all --now`` (a process per run, as a person runs it)
   on the S3 backend against the local backend, both journals starting with the same
   ``--history`` earlier operations. Goal: S3 at most 1.5 x local.

Run from the repo root:

    python bench/bench_state.py [--domains 10 100] [--runs 7] [--history 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _process import timed_env, timed_run  # noqa: E402

from mxflip.config import StateConfig, load_config  # noqa: E402
from mxflip.engine import Engine  # noqa: E402
from mxflip.plan import PlanOptions  # noqa: E402
from mxflip.provider import Change  # noqa: E402
from mxflip.records import RRset  # noqa: E402
from mxflip.state.s3 import S3Backend  # noqa: E402
from tests.support.bind import BindServer, zone_text  # noqa: E402
from tests.support.engine import BACKUP, PRIMARY, FakeClock, lab_provider, ready  # noqa: E402
from tests.support.moto_route53 import AWS_VARIABLES_TO_CLEAR, fake_aws_environment  # noqa: E402
from tests.support.moto_s3 import (  # noqa: E402
    atomic_conditional_writes,
    new_bucket,
    start_moto,
)

ZONE = "bench.test."
WALL_PREFIX = "bench-wall"


def config_text(bind: BindServer, names: list[str], journal: Path, state: str) -> str:
    text = f"""
[providers.lab]
type = "rfc2136"
server = "{bind.address}"
tsig_key_file = "{bind.key_file}"

[defaults]
provider = "lab"
zone = "{ZONE}"
primary = {json.dumps(PRIMARY)}
backup = {json.dumps(BACKUP)}
nameservers = ["{bind.address}"]

[journal]
path = "{journal}"

{state}
"""
    for n in names:
        text += f'[domains."{n.rstrip(".")}"]\n'
    return text


def s3_table(url: str, bucket: str, prefix: str = "bench") -> str:
    return (
        f'[state]\nbackend = "s3"\nbucket = "{bucket}"\nprefix = "{prefix}"\n'
        f'region = "us-east-1"\nendpoint_url = "{url}"\n'
    )


def fresh_names(bind: BindServer, count: int, tag: str) -> list[str]:
    names = [f"d{i}-{tag}.{ZONE}" for i in range(count)]
    lab_provider(bind).apply(ZONE, [Change(n, None, RRset.of(n, 3600, PRIMARY)) for n in names])
    return names


def counted_failover(config_path: Path, home: Path) -> tuple[Counter[str], int]:
    """The CLI's flow in process (lock, unsettled check, plan, execute, release) on the
    S3 backend; returns the calls made and how many journal records the operation wrote."""
    config = load_config(config_path)
    backend = S3Backend(config.state, home=home)
    records = engine_failover(config_path, backend)
    backend.close()
    return backend.calls, records


def engine_failover(config_path: Path, backend: Any) -> int:
    """The CLI's flow in process on ``backend``; returns the journal records written
    (counted on the S3 backend only: 0 for the local one)."""
    config = load_config(config_path)
    calls: Counter[str] = getattr(backend, "calls", Counter())
    engine = Engine(config, backend, clock=FakeClock(time.time()), readiness=ready)
    with backend.lock("mxflip failover --all --now"):
        backend.read().unsettled()  # the check every changing command makes first
        plan = asyncio.run(
            engine.plan_switch(
                "failover", list(config.domains.values()), PlanOptions(now=True, reason="bench")
            )
        )
        before = calls["PutObject"]
        result = asyncio.run(engine.execute(plan))
        records = calls["PutObject"] - before
    engine.close()
    assert result.outcome == "done", result
    return records


def cli_failover(config: Path, env: dict[str, str]) -> tuple[float, float]:
    """The process's wall time and CPU time (user + sys), in seconds."""
    argv = [sys.executable, "-m", "mxflip", "-c", str(config), "failover", "--all", "--now"]
    argv += ["--yes", "--skip-readiness", "--reason", "benchmark", "--json"]
    return timed_run(argv, env=env, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--history", type=int, default=20, help="earlier operations")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in AWS_VARIABLES_TO_CLEAR:
            os.environ.pop(name, None)
        os.environ.update(fake_aws_environment(tmp))
        env = {**timed_env(), "PYTHONPATH": str(ROOT)}
        bind = BindServer(folder / "bind", {ZONE: zone_text(ZONE)}).start()
        with atomic_conditional_writes():
            moto = start_moto()
            try:
                bucket = new_bucket(moto)
                table = s3_table(moto.url, bucket)
                # 1. calls per operation
                writer = folder / "writer"
                for i in range(args.history):
                    names = fresh_names(bind, 1, f"h{i}")
                    path = folder / f"h{i}.toml"
                    path.write_text(config_text(bind, names, writer / "journal.jsonl", table))
                    counted_failover(path, writer)
                print(
                    f"State API calls per failover (S3 backend, journal holding "
                    f"{args.history} earlier operations)"
                )
                labels = ("new machine", "same machine again", "after another machine")
                for count in (1, 10, 100):
                    home = folder / f"machine{count}"
                    for n, label in enumerate(labels):
                        if n == 2:  # the other machine runs one operation in between
                            names = fresh_names(bind, 1, f"o{count}")
                            path = folder / f"o{count}.toml"
                            path.write_text(
                                config_text(bind, names, writer / "journal.jsonl", table)
                            )
                            counted_failover(path, writer)
                        names = fresh_names(bind, count, f"c{count}n{n}")
                        path = folder / f"c{count}n{n}.toml"
                        path.write_text(config_text(bind, names, home / "journal.jsonl", table))
                        calls, records = counted_failover(path, home)
                        other = sum(calls.values()) - records
                        detail = ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
                        print(
                            f"  {count:>3} domains, {label:<21} {records} journal records "
                            f"+ {other} other calls ({detail}); goal <= 6 other: "
                            + ("met" if other <= 6 else "NOT met")
                        )
                # 2. wall time, a process per run, same machine, same DNS server,
                # local and s3 runs interleaved so that load from elsewhere hits both,
                # and taking turns to go first (the second of a pair ran slower here).
                # Both journals start with the same --history earlier operations (made on
                # this machine) and grow alike: each failover reads its journal whole (the
                # S3 one lists a key per record), so unequal journals would compare sizes,
                # not backends. The S3 side has a prefix of its own for that reason.
                wall_table = s3_table(moto.url, bucket, WALL_PREFIX)
                seed_history(bind, folder, args.history, wall_table)
                for count in args.domains:
                    times: dict[str, list[float]] = {"local": [], "s3": []}
                    cpus: dict[str, list[float]] = {"local": [], "s3": []}
                    for run in range(args.runs):
                        for kind in ("local", "s3") if run % 2 == 0 else ("s3", "local"):
                            names = fresh_names(bind, count, f"w{count}r{run}{kind}")
                            path = folder / f"w{count}r{run}{kind}.toml"
                            state = wall_table if kind == "s3" else ""
                            journal = folder / f"wall-{kind}" / "journal.jsonl"
                            path.write_text(config_text(bind, names, journal, state))
                            wall, cpu = cli_failover(path, env)
                            times[kind].append(wall)
                            cpus[kind].append(cpu)
                    report_wall(count, args.runs, times, cpus)
                    print(f"  journals after these runs: {journal_sizes(folder, moto.url, bucket)}")
            finally:
                moto.stop()
                bind.stop()


def seed_history(bind: BindServer, folder: Path, count: int, wall_table: str) -> None:
    """``count`` earlier operations in each backend's journal for the wall-time runs."""
    from mxflip.state.local import LocalBackend

    for kind in ("local", "s3"):
        journal = folder / f"wall-{kind}" / "journal.jsonl"
        for i in range(count):
            names = fresh_names(bind, 1, f"seed{kind}{i}")
            path = folder / f"seed{kind}{i}.toml"
            path.write_text(config_text(bind, names, journal, wall_table if kind == "s3" else ""))
            if kind == "s3":
                counted_failover(path, journal.parent)
            else:
                engine_failover(path, LocalBackend(journal))


def journal_sizes(folder: Path, url: str, bucket: str) -> str:
    """How many operations each backend's journal holds: both read it whole in every
    failover (the S3 one also lists it: one key per record), so the figures compare
    backends at these sizes."""
    from mxflip.state.local import LocalBackend

    path = folder / "wall-local" / "journal.jsonl"
    local = LocalBackend(path).read()
    state = StateConfig(
        backend="s3", bucket=bucket, prefix=WALL_PREFIX, region="us-east-1", endpoint_url=url
    )
    shared = S3Backend(state, home=folder / "sizes")
    try:
        view = shared.read()
    finally:
        shared.close()
    return (
        f"local {len(local.operations)} operations, s3 {len(view.operations)} operations "
        f"({shared.calls['ListObjectsV2']} listing call(s))"
    )


def report_wall(
    count: int, runs: int, times: dict[str, list[float]], cpus: dict[str, list[float]]
) -> None:
    local, s3 = statistics.median(times["local"]), statistics.median(times["s3"])
    fastest = min(times["s3"]) / min(times["local"])
    print(f"failover --all --now, {count} domains, {runs} runs each (process wall time)")
    print(f"  local backend: median {local:.3f} s (min {min(times['local']):.3f})")
    print(f"  s3 backend:    median {s3:.3f} s (min {min(times['s3']):.3f})")
    paired = statistics.median(s / lo for s, lo in zip(times["s3"], times["local"], strict=True))
    print(
        f"  ratio s3/local: {s3 / local:.2f} (fastest runs: {fastest:.2f}, median of the "
        f"{runs} pairs: {paired:.2f}); goal <= 1.5: " + ("met" if s3 <= 1.5 * local else "NOT met")
    )
    cpu_local, cpu_s3 = statistics.median(cpus["local"]), statistics.median(cpus["s3"])
    print(
        f"  CPU (user+sys) median: local {cpu_local:.3f} s, s3 {cpu_s3:.3f} s, "
        f"ratio {cpu_s3 / cpu_local:.2f} (load {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
