"""Byte code for the processes a benchmark times.

With ``PYTHONDONTWRITEBYTECODE`` set (to anything, even "0"), Python writes no ``.pyc``
files: every mxflip module edited since its last ``.pyc`` is then compiled from source in
every timed process, and the figures measure the compiler (~50 ms per command on this
project, more for the paths with more modules) instead of mxflip. An installed mxflip
never pays that: pip compiles at install time. So benchmarks compile once, up front.
"""

from __future__ import annotations

import compileall
import os
from collections.abc import Mapping
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
