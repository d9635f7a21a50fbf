"""Benchmark: time to direct. At t0 the inbound proxy starts silently holding mail; how
long until the alert is sent, the switch to the backup set is verified, and the first
live-path canary arrives through the backup?

Run by hand from the repository root (needs bind9)::

    python bench/bench_time_to_direct.py [--k 60]

The full lab on loopback: BIND9 serving the domain, an aiosmtpd proxy (two MX hosts) and a
direct backup relay with certificates from a private CA, a Maildir, a loopback receiver
for the ``json://`` alert. ``mxflip watch`` runs with ``on_primary_failing = "failover"``,
``failing_rounds = 1`` and the production settings (interval 5 min, warn_after 5 min,
fail_after 10 min, failover_ttl 60 s) divided by ``k``, on the real clock. Figures are
printed in seconds and in multiples of ``interval``, then projected to production
(× k). Goal: detection ≤ interval + fail_after + one round; switch ≤ one round +
failover_ttl + verification.
"""

from __future__ import annotations

import argparse
import email
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import trustme  # noqa: E402

from mxflip.canary import CanaryStore, state_file  # noqa: E402
from mxflip.journal import Journal  # noqa: E402
from mxflip.watch.rounds import Watcher  # noqa: E402
from tests.support.bind import BindServer, zone_text  # noqa: E402
from tests.support.watch_lab import make_watch_lab  # noqa: E402

PROD = {"interval": 300.0, "warn_after": 300.0, "fail_after": 600.0, "failover_ttl": 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=float, default=60.0, help="time compression factor")
    args = parser.parse_args()
    k = args.k
    interval = PROD["interval"] / k
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bind = BindServer(folder / "bind", {"example.test.": zone_text("example.test.")}).start()
        try:
            lab_iter = make_watch_lab(folder / "lab", bind, trustme.CA())
            lab = next(lab_iter)
            try:
                run(lab, k, interval)
            finally:
                next(lab_iter, None)
        finally:
            bind.stop()


def run(lab: object, k: float, interval: float) -> None:
    from tests.support.watch_lab import WatchLab

    assert isinstance(lab, WatchLab)
    path = lab.write(
        f'interval = "{interval:g}s"\non_primary_failing = "failover"\nfailing_rounds = 1\n'
        f'notify = ["{lab.receiver.url()}"]\ntimeout = "2s"',
        canary="",
    )
    text = path.read_text()
    text = text.replace('warn_after = "2m"', f'warn_after = "{PROD["warn_after"] / k:g}s"')
    text = text.replace('fail_after = "4m"', f'fail_after = "{PROD["fail_after"] / k:g}s"')
    text = text.replace("failover_ttl = 60", f"failover_ttl = {max(1, round(60 / k))}")
    path.write_text(text)
    from mxflip.config import load_config

    config = load_config(path)
    received: list[tuple[float, str]] = []
    original = lab.receiver.requests

    class Stamped(list):  # type: ignore[type-arg]
        def append(self, item: object) -> None:
            received.append((time.time(), str(getattr(item, "body", ""))))
            super().append(item)

    lab.receiver.requests = Stamped(original)
    watcher = Watcher(config, verify_timeout=30)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    # Warm up: two healthy rounds.
    time.sleep(2 * interval + 0.5)
    t0 = time.time()
    lab.proxy.handler.drop = lab.proxy2.handler.drop = True
    journal = Journal(config.journal.path)  # type: ignore[arg-type]
    switched_at = delivered_at = alert_at = None
    deadline = t0 + 12 * interval
    while time.time() < deadline and not (switched_at and delivered_at and alert_at):
        time.sleep(0.1)
        alert_at = alert_at or next(
            (t for t, body in received if t > t0 and "failing" in body), None
        )
        if switched_at is None:
            for op in journal.read().operations:
                if op.kind == "failover" and op.result and op.outcome == "done":
                    switched_at = float(op.result["ts"])
        if switched_at and delivered_at is None:
            delivered_at = first_backup_delivery(lab.maildir, config, switched_at)
    watcher.request_stop()
    thread.join(timeout=3 * interval)
    watcher.close()
    print(f"k = {k:g}: interval {interval:g} s, fail_after {PROD['fail_after'] / k:g} s")
    rows = [
        ("t0 → alert sent", alert_at),
        ("t0 → switch verified", switched_at),
        ("t0 → first live-path canary via backup", delivered_at),
    ]
    for label, at in rows:
        if at is None:
            print(f"{label:<42} not reached within {12 * interval:g} s")
            continue
        s = at - t0
        print(
            f"{label:<42} {s:7.2f} s = {s / interval:5.2f} × interval"
            f"   → production {s * k / 60:6.1f} min"
        )
    goal = (PROD["interval"] + PROD["fail_after"] + PROD["interval"]) / 60
    print(f"goal: detection ≤ interval + fail_after + one round = {goal:g} min; total < 20 min")


def first_backup_delivery(maildir: Path, config: object, after: float) -> float | None:
    """Arrival (file time) of the first canary sent through the live path once it was the
    backup set."""
    records = CanaryStore(state_file(config)).load().records  # type: ignore[arg-type]
    live_backup = {r.token for r in records if r.via == "live" and r.path == "backup"}
    best = None
    for f in [*(maildir / "new").iterdir(), *(maildir / "cur").iterdir()]:
        msg = email.message_from_bytes(f.read_bytes())
        if msg.get("X-Mxflip-Canary") in live_backup:
            t = f.stat().st_mtime
            best = t if best is None else min(best, t)
    return best


if __name__ == "__main__":
    main()
