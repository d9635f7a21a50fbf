"""The public API adapters use: what ``mxflip`` exports, and the lint rule that keeps
adapters off the core's internals."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import mxflip
import mxflip.testing

ROOT = Path(__file__).resolve().parents[1]


def banned_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    banned = config["tool"]["ruff"]["lint"]["flake8-tidy-imports"]["banned-api"]
    return set(banned)


def test_every_internal_module_is_banned_for_adapters() -> None:
    internal = {
        f"mxflip.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "mxflip").iterdir()
        if (p.suffix == ".py" and p.stem not in {"__init__", "__main__"})
        or (p.is_dir() and (p / "__init__.py").exists() and p.name != "testing")
    }
    assert internal, "no core modules found"
    assert internal - banned_modules() == set()
    assert "mxflip.testing" not in banned_modules()


def test_every_public_name_resolves() -> None:
    for name in mxflip.__all__:
        assert getattr(mxflip, name) is not None, name
    for name in mxflip.testing.__all__:
        assert callable(getattr(mxflip.testing, name)), name


def test_one_clock() -> None:
    from mxflip.rollout import Clock, SystemClock

    assert mxflip.Clock is Clock and mxflip.SystemClock is SystemClock


def test_lint_refuses_an_internal_import_in_an_adapter(tmp_path: Path) -> None:
    adapter = ROOT / "providers" / "rfc2136" / "mxflip_rfc2136" / "provider.py"
    source = "from mxflip.records import normalize_name\n\nprint(normalize_name)\n"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--select",
            "TID251",
            "--no-cache",
            "--stdin-filename",
            str(adapter),
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1
    assert "`mxflip.records` is banned" in result.stdout


def test_adapters_import_only_the_public_api() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "TID251", "--no-cache", "providers"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout
