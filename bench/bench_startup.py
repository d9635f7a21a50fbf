"""Benchmark: start-up time of mxflip commands, against ``python -c "import click"``.

Every command runs as a fresh process (the installed ``mxflip`` script, as a user runs
it), interleaved with the baseline so that both see the same machine load; the figure is
the median wall time of ``--runs`` runs, and the ratio is that median over the baseline's.
Run from the repo root:

    python bench/bench_startup.py [--runs 21]

Goals (issue 11): ``mxflip --help``, ``mxflip status --help`` and ``mxflip providers``
at most 1.3 x the baseline; ``mxflip validate`` of examples/rfc2136/mxflip.toml at most
3 x. The validate runs of the Route 53 and Cloudflare examples show that validating
loads neither SDK (their time is printed, with no goal of their own). The "floor" row
is not mxflip: ``import click, pydantic; from pydantic import BaseModel, Field`` alone,
the part of ``validate`` that no import structure can remove while the configuration is
validated by pydantic. The last column lists the heavy modules each command imported
(from ``python -X importtime``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _process import timed_run

ROOT = Path(__file__).resolve().parent.parent
LAB_KEY = 'key "mxflip-lab" { algorithm hmac-sha256; secret "c2VjcmV0LXNlY3JldC1zZWNyZXQ="; };\n'
HEAVY = ("boto3", "botocore", "cloudflare", "httpx", "pygments", "rich", "pydantic", "dns")


def mxflip_script() -> list[str]:
    script = Path(sys.executable).parent / "mxflip"
    if script.exists():
        return [str(script)]
    found = shutil.which("mxflip")
    if found:
        return [found]
    raise SystemExit("the mxflip script is not installed (pip install -e .)")


def examples(folder: Path) -> dict[str, Path]:
    """Copies of the example configurations, with the lab key the rfc2136 one needs."""
    out = {}
    for name in ("rfc2136", "route53", "cloudflare"):
        target = folder / name
        shutil.copytree(ROOT / "examples" / name, target)
        (target / "lab.key").write_text(LAB_KEY)
        out[name] = target / "mxflip.toml"
    return out


def once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``argv``."""
    return timed_run(argv, env=env)


def heavy_imports(argv: list[str], env: dict[str, str]) -> list[str]:
    """Top-level packages among HEAVY that the command imported."""
    cmd = [sys.executable, "-X", "importtime", *argv] if argv[0].endswith(".py") else None
    script = Path(argv[0])
    code = (
        "import sys, runpy; sys.argv = sys.argv[1:]; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    if cmd is None:
        cmd = [sys.executable, "-X", "importtime", "-c", code, *argv]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    seen = set()
    for line in result.stderr.splitlines():
        if "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            top = name.split(".")[0]
            if top in HEAVY and name == top:
                seen.add(top)
    return sorted(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="runs per command (median)")
    args = parser.parse_args()

    env = dict(os.environ)
    # Any non-empty PYTHONDONTWRITEBYTECODE (even "0") stops Python writing .pyc files:
    # with it, a module edited since its .pyc was written is compiled again on every run
    # and the figures measure the compiler. The warm-up run below writes them.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("MXFLIP_CONFIG", None)
    mxflip = mxflip_script()
    with tempfile.TemporaryDirectory() as tmp:
        configs = examples(Path(tmp))
        baseline = [sys.executable, "-c", "import click"]
        # Not mxflip: what importing click and pydantic's BaseModel costs by itself, the
        # floor under any command that validates a configuration with pydantic.
        floor = "import click, pydantic; from pydantic import BaseModel, Field"
        commands = {
            "floor: click + pydantic import": ([sys.executable, "-c", floor], None),
            "mxflip --help": ([*mxflip, "--help"], 1.3),
            "mxflip status --help": ([*mxflip, "status", "--help"], 1.3),
            "mxflip providers": ([*mxflip, "providers"], 1.3),
            "mxflip validate (rfc2136 example)": (
                [*mxflip, "-c", str(configs["rfc2136"]), "validate"],
                3.0,
            ),
            "mxflip validate (route53 example)": (
                [*mxflip, "-c", str(configs["route53"]), "validate"],
                None,
            ),
            "mxflip validate (cloudflare example)": (
                [*mxflip, "-c", str(configs["cloudflare"]), "validate"],
                None,
            ),
        }
        # Warm the file cache and byte-code once, then interleave the measured runs.
        for argv, _ in commands.values():
            once(argv, env)
            once(argv, env)  # the first run writes the .pyc files
        once(baseline, env)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        base: list[tuple[float, float]] = []
        for _ in range(args.runs):
            base.append(once(baseline, env))
            for name, (argv, _) in commands.items():
                times[name].append(once(argv, env))
        base_wall = statistics.median(t[0] for t in base)
        base_cpu = statistics.median(t[1] for t in base)
        print(f"runs per command: {args.runs} (median), interleaved with the baseline;")
        print("wall = elapsed time (the goal), cpu = user + system time of the process")
        print("(steadier than wall time when other work shares the cores)")
        label = 'python -c "import click"'
        print(f"{label:38} wall {base_wall * 1000:6.1f} ms  1.00 x   cpu {base_cpu * 1000:6.1f} ms")
        failed = False
        for name, (argv, goal) in commands.items():
            wall = statistics.median(t[0] for t in times[name])
            cpu = statistics.median(t[1] for t in times[name])
            ratio = wall / base_wall
            verdict = ""
            if goal is not None:
                ok = ratio <= goal
                failed |= not ok
                verdict = f"goal <= {goal:.1f} x: {'ok' if ok else 'MISSED'}"
            heavy = ", ".join(heavy_imports(argv, env)) or "-" if argv[0] in mxflip else "-"
            print(
                f"{name:38} wall {wall * 1000:6.1f} ms {ratio:5.2f} x   cpu {cpu * 1000:6.1f} ms "
                f"{cpu / base_cpu:5.2f} x   {verdict:20} heavy: {heavy}"
            )
        if failed:
            print("some goals were missed")


if __name__ == "__main__":
    main()
