"""Benchmark: `mxflip init` over many zones, through the Cloudflare adapter and its fake.

Run by hand from the repository root::

    python bench/bench_init.py [--zones 200] [--domains 20]

The fake Cloudflare API runs on loopback; the real SDK talks HTTP to it. Each zone gets
``--domains`` names with MX records (half on one inbound filter, half on their own
server, mail.<name>). Printed: wall time of the discovery and of rendering the TOML, the
HTTP requests the adapter sent (the goal: one zone listing page per 50 zones, plus one
MX listing per zone while a zone's MX records fit one page), and the size of the result.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "providers" / "cloudflare")]

from mxflip.init import discover  # noqa: E402
from mxflip.render.init import init_toml  # noqa: E402
from providers.cloudflare.tests.fake_cloudflare import FakeCloudflare  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=200)
    parser.add_argument("--domains", type=int, default=20)
    args = parser.parse_args()
    api = FakeCloudflare()
    api.add_token("bench-token")
    for z in range(args.zones):
        zone = f"zone{z:04d}.test"
        api.add_zone(zone)
        for d in range(args.domains):
            name = zone if d == 0 else f"d{d:03d}.{zone}"
            host = "mx0a-001.pphosted.com" if d % 2 == 0 else f"mail.{name}"
            api.put_record(zone, name, host, 10, 3600)
    os.environ["CLOUDFLARE_API_TOKEN"] = "bench-token"
    with api.serve(), tempfile.TemporaryDirectory() as folder:
        cfg = Path(folder) / "mxflip.toml"
        cfg.write_text(f'[providers.cf]\ntype = "cloudflare"\nbase_url = "{api.base_url}"\n')
        api.requests.clear()
        start = time.perf_counter()
        result = discover(str(cfg), "cf")
        found = time.perf_counter() - start
        start = time.perf_counter()
        text = init_toml(result)
        rendered = time.perf_counter() - start
        calls = Counter(
            "list zones" if r.path.endswith("/zones") else "list MX" for r in api.requests
        )
    print(f"zones: {args.zones}, names with MX: {len(result.domains)}, sets: {len(result.sets)}")
    print(f"discover: {found:.2f} s ({found / args.zones * 1000:.1f} ms per zone)")
    print(f"render:   {rendered * 1000:.1f} ms, {len(text.splitlines())} lines")
    print(
        f"requests: {sum(calls.values())} "
        f"({calls['list zones']} zone listing pages, {calls['list MX']} MX listings)"
    )


if __name__ == "__main__":
    main()
