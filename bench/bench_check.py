"""Benchmark ``check``: 500 domains × 3 hosts whose SMTP servers each greet after 300 ms.

Run by hand (never in the test suite): ``python bench/bench_check.py``. The servers run in a
separate process (so they do not share the probe's CPU), on 1,500 loopback ports; names
resolve through a private BIND9. Prints the wall time of the whole check against the
slowest single handshake; the goal is a ratio of at most 2.

Options: ``--domains``, ``--hosts``, ``--delay``, ``--concurrency``, ``--dns-in-flight``;
``--shared`` (every domain on the same hosts: batched sessions), ``--no-dns`` (lookups
answered in-process, to see the SMTP side alone).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mxflip.config import Config, DomainConfig, ProbeConfig
from mxflip.hostport import HostPort
from mxflip.lookup import HostAddresses, Lookup, TLSARecord
from mxflip.probe import Verdict
from mxflip.readiness import check_domains
from mxflip.records import MX, RRset
from tests.support.bind import BindServer, zone_text


class PreResolved(Lookup):
    """Every host is 127.0.0.1 and nothing else exists: the check without DNS costs."""

    async def addresses(self, host: str) -> HostAddresses:
        return HostAddresses(host, ("127.0.0.1",))

    async def mx(self, domain: str, *, urgent: bool = False) -> RRset | None:
        return None

    async def txt(self, name: str) -> list[str]:
        return []

    async def tlsa(self, host: str, port: int = 25) -> list[TLSARecord]:
        return []


SERVERS = r"""
import asyncio, json, sys

count, delay = int(sys.argv[1]), float(sys.argv[2])
REPLIES = {b"EHLO": b"250-mx.bench.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
           b"MAIL": b"250 2.1.0 OK\r\n", b"RCPT": b"250 2.1.5 OK\r\n",
           b"RSET": b"250 2.0.0 OK\r\n", b"QUIT": b"221 2.0.0 Bye\r\n"}

async def handle(reader, writer):
    try:
        await asyncio.sleep(delay)
        writer.write(b"220 mx.bench.test ESMTP\r\n")
        for _ in range(10000):
            line = await reader.readline()
            if not line:
                break
            verb = line.split()[0].upper() if line.strip() else b""
            writer.write(REPLIES.get(verb, b"502 5.5.2 unknown\r\n"))
            await writer.drain()
            if verb == b"QUIT":
                break
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()

async def main():
    servers = [await asyncio.start_server(handle, "127.0.0.1", 0, backlog=64)
               for _ in range(count)]
    print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=500)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds before the banner")
    parser.add_argument("--concurrency", type=int, default=2000)
    parser.add_argument("--dns-in-flight", type=int, default=64)
    parser.add_argument(
        "--no-dns",
        action="store_true",
        help="answer every lookup in-process (127.0.0.1, no TLSA/MTA-STS): SMTP alone",
    )
    parser.add_argument(
        "--shared",
        action="store_true",
        help="every domain uses the same hosts (a provider's MX): sessions are batched",
    )
    args = parser.parse_args()
    total = args.hosts if args.shared else args.domains * args.hosts

    servers = subprocess.Popen(
        [sys.executable, "-c", SERVERS, str(total), str(args.delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert servers.stdout is not None and servers.stdin is not None
    ports = json.loads(servers.stdout.readline())
    with tempfile.TemporaryDirectory() as tmp:
        dns = BindServer(
            Path(tmp), {"bench.test.": zone_text("bench.test.", "* IN A 127.0.0.1")}
        ).start()
        try:
            connect: dict[str, tuple[HostPort, ...]] = {}
            domains: dict[str, DomainConfig] = {}
            port_iter = iter(ports)
            for d in range(args.domains):
                name = f"d{d}.bench.test."
                where = "shared" if args.shared else f"d{d}"
                hosts = [f"mx{h}.{where}.bench.test." for h in range(args.hosts)]
                for host in hosts:
                    if host not in connect:
                        connect[host] = (HostPort("127.0.0.1", next(port_iter)),)
                domains[name] = DomainConfig(
                    name=name,
                    provider="bench",
                    zone="bench.test.",
                    primary=frozenset({MX(10, f"primary.d{d}.bench.test")}),
                    backup=frozenset(MX(10 * (i + 1), h) for i, h in enumerate(hosts)),
                )
            probe = ProbeConfig(
                helo="probe.bench.test",
                mail_from="probe@bench.test",
                timeout=30,
                connect=connect,
                resolvers=(HostPort("127.0.0.1", dns.port),),
                concurrency=args.concurrency,
            )
            config = Config(path=None, providers={}, domains=domains, probe=probe)
            start, cpu = time.perf_counter(), time.process_time()
            lookup_class = PreResolved if args.no_dns else Lookup
            lookup = lookup_class(probe.resolvers, timeout=10, in_flight=args.dns_in_flight)
            results = check_domains(config, list(domains.values()), "backup", lookup=lookup)
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu
        finally:
            dns.stop()
            servers.stdin.close()
            servers.wait(timeout=30)

    handshakes = [
        sum(s.ms for s in a.steps) / 1000 for r in results for h in r.hosts for a in h.addresses
    ]
    verdicts = {v.value: sum(r.verdict is v for r in results) for v in Verdict}
    slowest = max(handshakes)
    shared = " (shared hosts)" if args.shared else ""
    print(
        f"domains × hosts        : {args.domains} × {args.hosts}{shared}: {len(handshakes)} results"
    )
    print(f"banner delay           : {args.delay * 1000:.0f} ms; concurrency {args.concurrency}")
    print(f"verdicts               : {verdicts}")
    print(f"wall time              : {wall:.3f} s (probe process CPU {cpu:.3f} s)")
    print(f"slowest handshake      : {slowest:.3f} s")
    print(f"median handshake       : {sorted(handshakes)[len(handshakes) // 2]:.3f} s")
    print(f"sum of handshakes      : {sum(handshakes):.1f} s (what one at a time would take)")
    print(f"wall / slowest         : {wall / slowest:.2f}× (goal ≤ 2×)")


if __name__ == "__main__":
    main()
