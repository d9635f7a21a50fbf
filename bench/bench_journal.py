"""Benchmark: reading (and validating) a long journal, as every changing command and
``status`` do before anything else.

Writes a journal of N operations of D domains each (intent, four phases, result, as
mxflip writes them) and times ``Journal.read()`` (every record's shape is checked and
every step parsed) and ``unsettled()``. Run from the repo root:

    python bench/bench_journal.py [--operations 2000] [--domains 10] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mxflip.journal import Journal  # noqa: E402


def write(path: Path, operations: int, domains: int) -> int:
    lines = []
    for i in range(operations):
        op = f"20261130T{i:06d}Z-{i:06x}"
        steps = [
            {
                "domain": f"d{j}.example.test.",
                "zone": "example.test.",
                "provider": "lab",
                "before": {"name": f"d{j}.example.test.", "ttl": 3600, "records": ["10 a.test."]},
                "prelower": None,
                "after": {"name": f"d{j}.example.test.", "ttl": 60, "records": ["10 b.test."]},
            }
            for j in range(domains)
        ]
        lines.append(
            {
                "type": "intent",
                "op": op,
                "ts": 1.8e9 + i,
                "kind": "failover",
                "steps": steps,
                "options": {},
                "user": "u",
                "host": "h",
            }
        )
        for phase in ("switch", "verify"):
            for status in ("start", "done"):
                lines.append(
                    {"type": "phase", "op": op, "ts": 1.8e9 + i, "phase": phase, "status": status}
                )
        lines.append(
            {
                "type": "result",
                "op": op,
                "ts": 1.8e9 + i,
                "outcome": "done",
                "states": {s["domain"]: "after" for s in steps},
            }
        )
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in lines)
    path.write_text(text)
    return len(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=2000)
    parser.add_argument("--domains", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.jsonl"
        size = write(path, args.operations, args.domains)
        journal = Journal(path)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            view = journal.read()
            view.unsettled()
            times.append(time.perf_counter() - t0)
        assert len(view.operations) == args.operations and not view.problems
    print(
        f"journal of {args.operations} operations x {args.domains} domains "
        f"({size / 1e6:.1f} MB): read + validate + unsettled() "
        f"median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms "
        f"over {args.runs} runs"
    )


if __name__ == "__main__":
    main()
