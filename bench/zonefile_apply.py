"""How long the zone-file adapter takes to read and to switch one MX RRset, by zone size.

Run by hand (not a test): python bench/zonefile_apply.py [SIZES...]
A switch parses the old text (unless this process parsed the very same text before: the
adapter keeps the last few parses, keyed by the text) and the edited text once, to prove
the edit; dnspython's parser dominates. Each round here writes the original file anew
and uses a new provider, but the parse cache is per process: the read before the switch
makes the switch's own parse of the old text free, as within one mxflip command.
Prints one line per zone size: records, read ms, in-place switch ms, rewrite switch ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mxflip import Change, RRset
from mxflip_zonefile import ZoneFileProvider, ZoneFileSettings

ZONE = "bench.test."
A = RRset.of(ZONE, 300, ["10 mx1.proxy.example.net.", "20 mx2.proxy.example.net."])
B = RRset.of(ZONE, 60, ["10 backup.example.org."])


def zone_text(records: int, with_ttl: bool) -> str:
    head = f"$ORIGIN {ZONE}\n" + ("$TTL 300\n" if with_ttl else "")
    head += "@ 300 IN SOA ns1 hostmaster 2026010100 3600 600 86400 60\n@ 300 IN NS ns1\n"
    # Without $TTL, the host after the MX takes its TTL from it: edits fall back to rewrites.
    head += "@ 300 IN MX 10 mx1.proxy.example.net.\n@ 300 IN MX 20 mx2.proxy.example.net.\n"
    body = "".join(f"h{i} IN A 10.0.{i // 250 % 250}.{i % 250}\n" for i in range(records))
    return head + body


def timed(fn: Callable[[], None], rounds: int, setup: Callable[[], None] = lambda: None) -> float:
    samples = []
    for _ in range(rounds):
        setup()
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def measure(size: int, with_ttl: bool) -> tuple[float, float]:
    """Median read ms and switch ms for a zone of ``size`` host records."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.test.zone"
        original = zone_text(size, with_ttl)
        path.write_text(original)
        provider = ZoneFileProvider("bench", ZoneFileSettings(file=path))
        read_ms = timed(lambda: provider.read(ZONE, [ZONE]) and None, 5)

        def reset() -> None:
            path.write_text(original)  # every round switches A to B in the original file

        def switch() -> None:
            handle = provider.apply(ZONE, [Change(ZONE, A, B)])
            assert handle.detail["rewritten"] is (not with_ttl)

        return read_ms, timed(switch, 5, reset)


def main(sizes: list[int]) -> None:
    print(f"{'records':>8} {'read ms':>9} {'in-place ms':>12} {'rewrite ms':>11}")
    for size in sizes:
        read_ms, in_place_ms = measure(size, with_ttl=True)
        _, rewrite_ms = measure(size, with_ttl=False)
        print(f"{size:>8} {read_ms:>9.1f} {in_place_ms:>12.1f} {rewrite_ms:>11.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Prints one line per zone size: records, read ms, in-place switch ms, "
        "rewrite switch ms.",
    )
    parser.add_argument(
        "sizes",
        nargs="*",
        type=int,
        default=[100, 1_000, 10_000, 50_000],
        metavar="SIZE",
        help="host records in the zone (default: 100 1000 10000 50000)",
    )
    main(parser.parse_args().sizes)
