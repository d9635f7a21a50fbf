"""Benchmark: ``mxflip failover --all --now`` for N domains on a local BIND9.

Measures, from the moment the command starts (process launch), the time until every
nameserver serves the new set for every domain (an independent poller asks BIND), and
the command's own wall time (which includes its verification). Run from the repo root:

    python bench/bench_failover.py [--domains 100] [--runs 3]
    python bench/bench_failover.py --domains 5000 --runs 1

Each run seeds its own N names through the adapter (N above ~450 takes several UPDATE
parts). Goal: at most 1 s until every nameserver serves the new set, for 100 domains.
For status, failover and rollback by N and adapter (growth curve, memory) see
``bench_status.py``.
The readiness checks are skipped (--skip-readiness): this measures the engine, not SMTP.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _process import compile_sources  # noqa: E402

from mxflip.provider import Change  # noqa: E402
from mxflip.records import RRset  # noqa: E402
from tests.support.bind import BindServer, zone_text  # noqa: E402
from tests.support.engine import BACKUP, PRIMARY, lab_provider  # noqa: E402

ZONE = "bench.test."


def config_text(bind: BindServer, names: list[str], journal: Path) -> str:
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
"""
    for n in names:
        text += f'[domains."{n.rstrip(".")}"]\n'
    return text


def served(bind: BindServer, names: list[str], want: set[str]) -> bool:
    for n in names:
        q = dns.message.make_query(n, dns.rdatatype.MX)
        r = dns.query.udp(q, "127.0.0.1", port=bind.port, timeout=1)
        got = {str(rr) for rrset in r.answer for rr in rrset}
        if got != want:
            return False
    return True


def one_run(bind: BindServer, count: int, folder: Path, run: int) -> tuple[float, float]:
    names = [f"d{i}-r{run}.{ZONE}" for i in range(count)]
    provider = lab_provider(bind)
    provider.apply(ZONE, [Change(n, None, RRset.of(n, 3600, PRIMARY)) for n in names])
    config = folder / f"mxflip-{run}.toml"
    config.write_text(config_text(bind, names, folder / "journal.jsonl"))
    want = set(BACKUP)
    served_at: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            # Sample the last domain first (cheap), then confirm all of them.
            if served(bind, names[-1:], want) and served(bind, names, want):
                served_at.append(time.perf_counter())
                return
            time.sleep(0.005)

    poller = threading.Thread(target=poll, daemon=True)
    start = time.perf_counter()
    poller.start()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mxflip",
            "-c",
            str(config),
            "failover",
            "--all",
            "--now",
            "--yes",
            "--skip-readiness",
            "--reason",
            "benchmark",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    finished = time.perf_counter()
    poller.join(timeout=30)
    stop.set()
    if proc.returncode != 0:
        raise SystemExit(f"failover failed ({proc.returncode}): {proc.stderr[-2000:]}")
    if not served_at:
        raise SystemExit("the nameserver never served the new set")
    return served_at[0] - start, finished - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    compile_sources()  # see bench/_bytecode.py; the timed mxflip processes inherit:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bind = BindServer(folder / "bind", {ZONE: zone_text(ZONE)}).start()
        try:
            results = [one_run(bind, args.domains, folder, i) for i in range(args.runs)]
        finally:
            bind.stop()
    served_s = [r[0] for r in results]
    total_s = [r[1] for r in results]
    print(f"failover --all --now, {args.domains} domains, 1 nameserver, {args.runs} runs")
    print(
        "  start → every nameserver serves the new set: "
        f"median {statistics.median(served_s):.3f} s (min {min(served_s):.3f}, "
        f"max {max(served_s):.3f}); goal <= 1 s: "
        + ("met" if statistics.median(served_s) <= 1.0 else "NOT met")
    )
    print(
        "  command wall time (incl. verification): "
        f"median {statistics.median(total_s):.3f} s (min {min(total_s):.3f}, "
        f"max {max(total_s):.3f})"
    )


if __name__ == "__main__":
    main()
