"""``mxflip drill --sandbox`` as a real process, held where a test wants to signal it.

    python -m tests.support.drill_child MODE [more `mxflip drill` arguments]

MODE ``probe``: the post-switch probe step waits (at most :data:`HOLD` seconds) before it
probes, so Ctrl-C or SIGTERM reaches the drill inside that step, never racing it.
MODE ``restore``: as ``probe``, and from then on the sandbox's DNS server keeps serving
the zone as it was (the backup set): the restore's rollback writes the primary set, and
its verification polls the nameservers until a signal (or ``--verify-timeout``) ends it.

Each hold is announced on stderr as one JSON line, ``{"event": "test-hold", "step": …}``,
after the command's own progress lines. The sandbox's journal is copied to
``$DRILL_CHILD_JOURNAL`` before the sandbox removes it, so the test can read what was
journalled. Everything else is the real command: ``mxflip.cli.main``, its signal routing,
its exit codes and its JSON document.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mxflip.config import DomainConfig
from mxflip.plan import Readiness, ReadinessVerdict
from mxflip.records import RRset

#: The longest a hold waits for the test's signal (bounded: a lost signal fails the test).
HOLD = 60.0

_out = threading.Lock()


def announce(step: str) -> None:
    with _out:
        sys.stderr.write(json.dumps({"event": "test-hold", "step": step}) + "\n")
        sys.stderr.flush()


def hold_the_probe(real: Readiness, on_hold: Callable[[], None]) -> Readiness:
    """Readiness that answers as ``real`` does, but whose second call (the drill's probe
    of the now-live set, after the switch) first calls ``on_hold`` and then waits, at most
    :data:`HOLD` seconds, for a signal to cancel it."""
    calls = 0

    async def check(
        domains: Sequence[DomainConfig], targets: Mapping[str, RRset]
    ) -> Mapping[str, ReadinessVerdict]:
        nonlocal calls
        calls += 1
        if calls == 2:
            on_hold()
            await asyncio.sleep(HOLD)
        return await real(domains, targets)

    return check


def main(argv: list[str]) -> None:
    import mxflip.readiness
    import mxflip.sandbox
    from mxflip.cli import main as mxflip_main
    from mxflip.config import Config

    mode, rest = argv[0], argv[1:]
    # Ctrl-C as at a terminal, even when the test run was started with SIGINT ignored
    # (in the background without job control), which this process would inherit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    frozen = threading.Event()
    announced = threading.Event()

    real_zone = mxflip.sandbox.ZoneResponder.zone

    def zone(self: mxflip.sandbox.ZoneResponder) -> Any:
        if not frozen.is_set():
            return real_zone(self)
        # The file changed since the freeze: the restore wrote it, and is now verifying.
        st = os.stat(self.path)
        if not announced.is_set() and (st.st_ino, st.st_mtime_ns, st.st_size) != self._seen:
            announced.set()
            announce("restore")
        return self._zone

    mxflip.sandbox.ZoneResponder.zone = zone  # type: ignore[method-assign]

    real_close = mxflip.sandbox.Sandbox.close

    def close(self: mxflip.sandbox.Sandbox) -> None:
        target = os.environ.get("DRILL_CHILD_JOURNAL")
        if target and self.folder is not None and self.journal_path.exists():
            shutil.copyfile(self.journal_path, target)
        real_close(self)

    mxflip.sandbox.Sandbox.close = close  # type: ignore[method-assign]

    real_readiness = mxflip.readiness.default_readiness

    def on_hold() -> None:
        if mode == "restore":
            frozen.set()
        announce("probe")

    def held_readiness(config: Config) -> Readiness:
        real = real_readiness(config)
        assert real is not None
        return hold_the_probe(real, on_hold)

    mxflip.readiness.default_readiness = held_readiness  # type: ignore[assignment]
    sys.argv = ["mxflip", "drill", "--sandbox", *rest]
    mxflip_main()


if __name__ == "__main__":
    main(sys.argv[1:])
