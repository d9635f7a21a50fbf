"""The one rule for tests that need a real server: fail under CI, skip elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import NoReturn


def find_binary(*candidates: str) -> str | None:
    """The first of ``candidates`` found on PATH (or as an absolute path)."""
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def server_unavailable(server: str, reason: str, install: str) -> NoReturn:
    """Under ``CI=true`` the server must be there, so the test fails; on a developer
    machine without it the test is skipped with the command that installs it."""
    # Imported here: the tests' child processes (tests.support.engine_child, …) import
    # the lab helpers and never need pytest (~55 ms of CPU per child).
    import pytest

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{server} is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"{server} not available: {reason} ({install})")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate a test server, killing it if it has not exited within 10 s (bounded)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
