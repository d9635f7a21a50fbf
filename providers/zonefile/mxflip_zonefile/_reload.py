"""Private: run the configured reload command (``rndc reload ZONE``…) after a write.

The command is an argv list run without a shell; ``{zone}`` and ``{file}`` in its
arguments are replaced. Only the program's name ever appears in messages: the other
arguments may hold something private (a key file path, a password option).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

PLACEHOLDERS = ("{zone}", "{file}")
_PLACEHOLDER = re.compile(r"\{[A-Za-z_]+\}")
_TAIL_CHARS = 400


class ReloadError(Exception):
    """The reload command failed; ``detail`` says how, ``program`` names what ran."""

    def __init__(self, program: str, detail: str) -> None:
        super().__init__(f"{program}: {detail}")
        self.program = program
        self.detail = detail


def check_command(argv: Sequence[str]) -> None:
    """Raise ValueError for an empty command or an unknown ``{placeholder}``."""
    if not argv or not argv[0].strip():
        raise ValueError('must name a program, for example ["rndc", "reload", "{zone}"]')
    for arg in argv:
        for found in _PLACEHOLDER.findall(arg):
            if found not in PLACEHOLDERS:  # a typo such as {zonename} would run as text
                raise ValueError(f"unknown placeholder {found} (use {' or '.join(PLACEHOLDERS)})")


def expand(argv: Sequence[str], zone: str, file: Path) -> list[str]:
    """``argv`` with ``{zone}`` (no trailing dot) and ``{file}`` substituted."""
    name = zone.rstrip(".")
    return [a.replace("{zone}", name).replace("{file}", str(file)) for a in argv]


def run(argv: Sequence[str], *, timeout: float) -> None:
    """Run ``argv`` (no shell, no stdin) and wait at most ``timeout`` seconds; on a
    timeout its whole process group is killed (a wrapper script's children too)."""
    program = Path(argv[0]).name
    try:
        # A session of its own: on a timeout, killing the group leaves no orphan behind.
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ReloadError(program, "program not found") from None
    except PermissionError:
        raise ReloadError(program, "program is not executable") from None
    except OSError as exc:
        raise ReloadError(program, f"cannot run it: {exc.strerror or exc}") from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise ReloadError(program, f"did not finish within {timeout:g} s and was killed") from None
    if proc.returncode != 0:
        tail = _tail(stderr) or _tail(stdout) or "no output"
        status = (
            f"killed by signal {-proc.returncode}"
            if proc.returncode < 0
            else f"exit status {proc.returncode}"
        )
        raise ReloadError(program, f"{status}: {tail}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=5)  # bounded: every member of the group was killed


def _tail(output: bytes) -> str:
    text = " ".join(output.decode("utf-8", "replace").split())
    return text if len(text) <= _TAIL_CHARS else "…" + text[-_TAIL_CHARS:]
