"""Test modules' assertion-rewritten byte code written once, before the xdist workers start.

pytest rewrites the asserts of every test module (and conftest and plugin module) it
imports and keeps the result in ``__pycache__`` (``*.cpython-311-pytest-X.pyc``). On a
fresh clone — every CI run — none exists yet, and every xdist worker collects every
module: each of the four workers rewrote all of them (about 2 s of CPU each; ``pytest
--collect-only`` on a fresh clone took 4.2 s against 2.0 s with the files in place). The
controller writes them first, with pytest's own functions, in two processes; the workers
then read them as on any later run.

This leans on pytest internals (``_pytest.assertion.rewrite``): where they differ, it does
nothing and the workers rewrite as before. A file written here that pytest would not have
rewritten is only never read.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def modules(root: Path) -> list[Path]:
    """What pytest rewrites in this repository: test modules, conftests, our plugins."""
    found: set[Path] = set()
    for folder in (root / "tests", *sorted((root / "providers").glob("*/tests"))):
        found.update(folder.rglob("test_*.py"))
        found.update(folder.rglob("conftest.py"))
    found.add(root / "tests" / "support" / "order.py")  # the root conftest's plugin
    return sorted(p for p in found if "__pycache__" not in p.parts)


def write_ahead(config: pytest.Config, root: Path) -> int:
    """Write the rewritten byte code of :func:`modules` that is missing or stale; returns
    how many were written (0 where assertions are not rewritten, or pytest differs)."""
    if config.getoption("assertmode", "rewrite") != "rewrite":
        return 0
    try:
        from _pytest.assertion import assertstate_key
        from _pytest.assertion.rewrite import (
            PYC_TAIL,
            _read_pyc,
            _rewrite_test,
            _write_pyc,
            get_cache_dir,
            try_makedirs,
        )

        state = config.stash[assertstate_key]
    except (ImportError, KeyError):
        return 0

    def stale(fn: Path) -> Path | None:
        cache = get_cache_dir(fn)
        pyc = cache / (fn.name[:-3] + PYC_TAIL)
        return pyc if try_makedirs(cache) and _read_pyc(fn, pyc) is None else None

    todo = [(fn, pyc) for fn in modules(root) if (pyc := stale(fn)) is not None]

    def write(part: list[tuple[Path, Path]]) -> None:
        for fn, pyc in part:
            try:
                source_stat, code = _rewrite_test(fn, config)
            except (OSError, SyntaxError):
                continue  # pytest reports it when it imports the module
            _write_pyc(state, code, source_stat, pyc)  # atomic: a rename

    # Half in a forked child, half here: the controller has no threads yet.
    child = os.fork() if len(todo) > 8 else -1
    if child == 0:
        try:
            write(todo[::2])
        finally:
            os._exit(0)
    write(todo[1::2] if child > 0 else todo)
    if child > 0:
        os.waitpid(child, 0)
    return len(todo)
