"""Child processes for the shared-state tests (they talk to the test's moto server).

python -m tests.support.state_child race URL BUCKET
    per line "go N" on stdin: try the lock under prefix race-N, print "won N" or
    "lost N"; per line "release N": release it if held.
python -m tests.support.state_child hold URL BUCKET LEASE
    take the lock with a LEASE-second lease, print "held LOCK_ID", keep renewing it
    until killed (at most 60 s).
python -m tests.support.state_child leader URL BUCKET LEASE INTERVAL
    a watch-like loop: every INTERVAL seconds one leader-election step; prints
    "leader EXPIRES" when it becomes leader and "follower" when it is not (60 s max).
"""

from __future__ import annotations

import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

from mxflip.errors import MxflipError
from mxflip.rollout import SystemClock
from mxflip.state.lease import Leader
from mxflip.state.s3 import S3Backend, _make_client
from tests.support.moto_s3 import state_config


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def race(url: str, bucket: str) -> int:
    settings = state_config(url, bucket)
    client = _make_client(settings)
    home = Path(mkdtemp())
    held: dict[str, AbstractContextManager[Any]] = {}
    for line in sys.stdin:
        verb, trial = line.split()
        if verb == "go":
            backend = S3Backend(
                state_config(url, bucket, prefix=f"race-{trial}"), home=home, client=client
            )
            lock = backend.lock("mxflip race")
            try:
                lock.__enter__()
            except MxflipError:
                say(f"lost {trial}")
                continue
            held[trial] = lock
            say(f"won {trial}")
        elif verb == "release":
            lock = held.pop(trial, None)  # type: ignore[assignment]
            if lock is not None:
                lock.__exit__(None, None, None)
            say(f"released {trial}")
    return 0


def hold(url: str, bucket: str, lease: str) -> int:
    backend = S3Backend(state_config(url, bucket, lease=float(lease)), home=Path(mkdtemp()))
    with backend.lock("mxflip failover --all") as info:
        say(f"held {info.id}")
        time.sleep(60)
    return 0


def leader(url: str, bucket: str, lease: str, interval: str) -> int:
    backend = S3Backend(state_config(url, bucket), home=Path(mkdtemp()))
    elect = Leader(backend, "watch", duration=float(lease), clock=SystemClock())
    was: bool | None = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = elect.step()
        if now != was:
            info = elect.lease.info
            say(f"leader {info.expires!r}" if now and info else "follower")
            was = now
        time.sleep(float(interval))
    return 0


def main(argv: list[str]) -> int:
    mode, *rest = argv
    return {"race": race, "hold": hold, "leader": leader}[mode](*rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
