"""Benchmark: how long one delivery canary takes end to end on loopback, and what a
check of many outstanding canaries costs, for the Maildir and the IMAP (Dovecot) mailbox.

Run by hand from the repository root (needs dovecot-imapd for the IMAP figures)::

    python bench/bench_canary.py [--rounds 20] [--many 200]

A loopback aiosmtpd relay with STARTTLS plays the proxy and delivers into the Maildir
that a private Dovecot serves. "round" is send (SMTP + STARTTLS) + find + delete;
"many" is one check finding ``--many`` canaries at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import trustme  # noqa: E402

from mxflip.canary import canary_domains, check_canaries, send_canaries  # noqa: E402
from mxflip.config import load_config  # noqa: E402
from tests.support.canary_lab import make_lab  # noqa: E402
from tests.support.dovecot import DovecotServer  # noqa: E402


def figures(label: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(
        f"{label:<34} n={len(ms):<4} median {statistics.median(ms):7.1f} ms"
        f"   p95 {p95:7.1f} ms   max {ms[-1]:7.1f} ms"
    )


def bench(name: str, config_path: Path, rounds: int, many: int) -> None:
    config = load_config(config_path)
    domains = canary_domains(config, [])
    send, check = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        (result,) = asyncio.run(send_canaries(config, domains, "primary"))
        t1 = time.perf_counter()
        report = check_canaries(config)
        t2 = time.perf_counter()
        assert result.ok and [o.status for o in report.outcomes] == ["on_time"], report
        send.append(t1 - t0)
        check.append(t2 - t1)
    figures(f"{name}: send (SMTP+STARTTLS)", send)
    figures(f"{name}: check one (find+delete)", check)
    for _ in range(many):
        asyncio.run(send_canaries(config, domains, "primary"))
    t0 = time.perf_counter()
    report = check_canaries(config)
    elapsed = time.perf_counter() - t0
    assert len(report.outcomes) == many and report.deleted == many
    print(f"{name + f': check {many} at once':<34} {elapsed * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--many", type=int, default=200)
    args = parser.parse_args()
    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dovecot = DovecotServer(folder / "dovecot", ca)
        try:
            dovecot.start()
        except BaseException as exc:  # pytest.skip outside pytest
            print(f"dovecot did not start ({exc}); Maildir figures only")
            dovecot = None  # type: ignore[assignment]
        try:
            maildir = dovecot.maildir if dovecot else None
            gen = make_lab(folder / "lab", ca, maildir=maildir)
            lab = next(gen)
            bench("maildir", lab.config(), args.rounds, args.many)
            if dovecot is not None:
                os.environ["MXFLIP_CANARY_IMAP_USER"] = dovecot.user
                os.environ["MXFLIP_CANARY_IMAP_PASSWORD"] = dovecot.password
                canary = (
                    f'mailbox = "imap"\nimap_host = "127.0.0.1"\nimap_port = {dovecot.port}\n'
                    f'ca_file = "{dovecot.ca_file}"\n'
                )
                bench("imap", lab.config(canary=canary), args.rounds, args.many)
            gen.close()
        finally:
            if dovecot is not None:
                dovecot.stop()


if __name__ == "__main__":
    main()
