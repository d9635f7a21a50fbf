"""The processes a benchmark times: their byte code, their environment, their clock.

With ``PYTHONDONTWRITEBYTECODE`` set (to anything, even "0"), Python writes no ``.pyc``
files: every mxflip module edited since its last ``.pyc`` is then compiled from source in
every timed process, and the figures measure the compiler (~50 ms per command on this
project, more for the paths with more modules) instead of mxflip. An installed mxflip
never pays that: pip compiles at install time. So benchmarks compile once, up front.
"""

from __future__ import annotations

import compileall
import os
import resource
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def compile_sources() -> None:
    """Write the ``.pyc`` of mxflip and the adapters (compileall writes them whatever
    ``PYTHONDONTWRITEBYTECODE`` says); up-to-date ones are left alone."""
    for folder in (ROOT / "mxflip", ROOT / "providers"):
        compileall.compile_dir(folder, quiet=1)


def timed_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) for a timed child, without
    ``PYTHONDONTWRITEBYTECODE``, after compiling the sources."""
    compile_sources()
    out = dict(os.environ if env is None else env)
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    return out


def timed_run(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``argv``, in seconds; a
    non-zero exit stops the benchmark with the command's stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu
