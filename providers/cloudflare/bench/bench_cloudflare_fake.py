"""Time the Cloudflare adapter against the loopback fake API (run by hand, prints figures).

    python -m providers.cloudflare.bench.bench_cloudflare_fake [NAMES]   # from the repo root

Creates NAMES domains with two MX records each in one zone, reads them back, then
switches them all to a one-record backup set, and prints the wall time and the number of
API requests of each step. The figures measure the adapter and SDK overhead (the fake
answers in microseconds), not Cloudflare's latency. ``mxflip status --json`` over a
Cloudflare zone of N domains (the fake as provider, BIND as nameserver) is timed by
``python bench/bench_status.py --adapter cloudflare --domains 5000``.
"""

from __future__ import annotations

import os
import sys
import time

from mxflip import Change, RRset
from mxflip_cloudflare import CloudflareProvider, CloudflareSettings
from providers.cloudflare.tests.fake_cloudflare import FakeCloudflare


def main(count: int) -> None:
    fake = FakeCloudflare()
    fake.add_token("bench-token")
    fake.add_zone("bench.test")
    with fake.serve():
        os.environ["CLOUDFLARE_API_TOKEN"] = "bench-token"
        provider = CloudflareProvider.from_settings(
            "bench", CloudflareSettings(base_url=fake.base_url)
        )
        names = [f"d{i:05d}.bench.test." for i in range(count)]
        primary = [RRset.of(n, 3600, ["10 mx1.proxy.test.", "20 mx2.proxy.test."]) for n in names]
        backup = [RRset.of(n, 60, ["10 mail.backup.test."]) for n in names]

        def step(label: str, fn: object) -> None:
            before = len(fake.requests)
            start = time.perf_counter()
            fn()  # type: ignore[operator]
            elapsed = time.perf_counter() - start
            print(
                f"{label:<34} {elapsed * 1000:8.1f} ms  {len(fake.requests) - before:4d} requests"
            )

        print(f"{count} domains, 2 MX records each, one zone (batch_size 200, per_page 1000)")
        step(
            "create (None -> primary)",
            lambda: provider.apply("bench.test.", [Change(r.name, None, r) for r in primary]),
        )
        step("read all", lambda: provider.read("bench.test.", names))
        step(
            "switch (primary -> backup)",
            lambda: provider.apply(
                "bench.test.", [Change(a.name, a, b) for a, b in zip(primary, backup, strict=True)]
            ),
        )
        step("read all", lambda: provider.read("bench.test.", names))
        provider.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
