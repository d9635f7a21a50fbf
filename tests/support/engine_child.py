"""Run a failover in a child process that SIGKILLs itself (or blocks) at a phase boundary.

    python -m tests.support.engine_child CONFIG kill BOUNDARY
    python -m tests.support.engine_child CONFIG block BOUNDARY READY_FILE RELEASE_FILE
    python -m tests.support.engine_child CONFIG kill-now BOUNDARY   (--now, no TTL restore)

The child holds the journal lock like the CLI does, uses a fake clock starting at the
real time (so waits are instant) and a readiness check that says "ready".
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from mxflip.config import load_config
from mxflip.engine import Engine
from mxflip.journal import Journal, default_journal_path
from mxflip.plan import PlanOptions
from tests.support.engine import FakeClock, ready


def main(argv: list[str]) -> int:
    config_path, mode, boundary = argv[:3]
    config = load_config(config_path)
    journal = Journal(default_journal_path(config.journal.path))

    def failpoint(name: str) -> None:
        if name != boundary:
            return
        if mode.startswith("kill"):
            os.kill(os.getpid(), signal.SIGKILL)
        ready_file, release_file = Path(argv[3]), Path(argv[4])
        ready_file.write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not release_file.exists():
            if time.monotonic() > deadline:
                raise SystemExit("never released")
            time.sleep(0.02)

    engine = Engine(
        config, journal, clock=FakeClock(time.time()), readiness=ready, failpoint=failpoint
    )
    if mode == "kill-now":
        command = ["mxflip", "failover", "--all", "--now"]
        opts = PlanOptions(reason="child", now=True)
    else:
        command = ["mxflip", "failover", "--all", "--restore-ttl-after", "600"]
        opts = PlanOptions(reason="child", restore_ttl_after=600)
    with journal.lock(" ".join(command)):
        plan = asyncio.run(engine.plan_switch("failover", list(config.domains.values()), opts))
        asyncio.run(engine.execute(plan, command=command))
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
