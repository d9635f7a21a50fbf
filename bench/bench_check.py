"""Benchmark ``check``: 500 domains × 3 hosts whose SMTP servers each greet after 300 ms.

Run by hand (never in the test suite): ``python bench/bench_check.py``.

What it measures: the wall time of one ``check_domains`` call in this process (every
lookup, handshake and judgement, from the SSL contexts to the last result) and this
process's CPU time over the same span. The lab runs in other processes so that its CPU
is not counted as the product's: the SMTP servers (1,500 loopback ports, one Python
asyncio process) and a private BIND9 ``named`` answering every name with 127.0.0.1 (so
each host has one A record, no AAAA, no TLSA, and no domain has an MTA-STS or MX
record: ~5,500 lookups, mostly negative answers). Their CPU is printed as "lab CPU";
on a machine with few cores it still competes with the probe for the processors.

It prints the wall time against the slowest single handshake (as the probe timed it,
so event-loop lag under load counts in it) and against one domain checked alone
before the run (the unloaded floor: banner delay plus a few round trips); the goal
of issue #3 is a ratio of at most 2 against the slowest handshake.

It runs at ``[probe] concurrency`` = 100 (mxflip's default: what a user gets) and at 2000
(a high value set by hand), and says which in the output; ``--concurrency N [N ...]``
picks others.

Options: ``--domains``, ``--hosts``, ``--delay``, ``--concurrency``, ``--dns-in-flight``;
``--shared`` (every domain on the same hosts: batched sessions), ``--no-dns`` (lookups
answered in-process, to see the SMTP side alone), ``--tls ec|rsa`` (the servers offer
STARTTLS with a trustme certificate of that key type, as real MX hosts do; without it
no TLS is negotiated).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mxflip.config import Config, DomainConfig, ProbeConfig
from mxflip.hostport import HostPort
from mxflip.lookup import HostAddresses, Lookup, TLSAAnswer
from mxflip.probe import DomainReadiness, Verdict
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

    async def tlsa(self, host: str, port: int = 25) -> TLSAAnswer:
        return TLSAAnswer((), True)


SERVERS = r"""
import asyncio, json, ssl, sys

count, delay = int(sys.argv[1]), float(sys.argv[2])
tls = None
if len(sys.argv) > 3:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(sys.argv[3])
EHLO = b"250-mx.bench.test\r\n250-PIPELINING\r\n" + (b"250-STARTTLS\r\n" if tls else b"")
REPLIES = {b"EHLO": EHLO + b"250 8BITMIME\r\n", b"STARTTLS": b"220 2.0.0 go ahead\r\n",
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
            if verb == b"STARTTLS" and tls:
                await writer.start_tls(tls)
            if verb == b"QUIT":
                break
    except (ConnectionError, OSError, ssl.SSLError):
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


#: mxflip's own default for ``[probe] concurrency`` (what a user gets without setting it).
DEFAULT_CONCURRENCY: int = ProbeConfig.__dataclass_fields__["concurrency"].default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=500)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds before the banner")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[DEFAULT_CONCURRENCY, 2000],
        help=f"[probe] concurrency values to run (default: {DEFAULT_CONCURRENCY}, the "
        "config default, and 2000, a high one)",
    )
    parser.add_argument("--dns-in-flight", type=int, default=64)
    parser.add_argument(
        "--no-dns",
        action="store_true",
        help="answer every lookup in-process (127.0.0.1, no TLSA/MTA-STS): SMTP alone",
    )
    parser.add_argument(
        "--tls", choices=("ec", "rsa"), help="servers offer STARTTLS with this key type"
    )
    parser.add_argument(
        "--shared",
        action="store_true",
        help="every domain uses the same hosts (a provider's MX): sessions are batched",
    )
    args = parser.parse_args()
    total = args.hosts if args.shared else args.domains * args.hosts

    with tempfile.TemporaryDirectory() as tmp:
        tls_args: list[str] = []
        ca_file = None
        if args.tls:
            key_type = trustme.KeyType.ECDSA if args.tls == "ec" else trustme.KeyType.RSA
            ca = trustme.CA(key_type=key_type)
            # every MX host is mxH-WHERE.bench.test, one label under the wildcard
            ca.issue_cert(
                "*.bench.test", key_type=key_type
            ).private_key_and_cert_chain_pem.write_to_path(f"{tmp}/server.pem")
            ca.cert_pem.write_to_path(f"{tmp}/ca.pem")
            tls_args, ca_file = [f"{tmp}/server.pem"], Path(f"{tmp}/ca.pem")
        servers = subprocess.Popen(
            [sys.executable, "-c", SERVERS, str(total), str(args.delay), *tls_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert servers.stdout is not None and servers.stdin is not None
        ports = json.loads(servers.stdout.readline())
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
                hosts = [f"mx{h}-{where}.bench.test." for h in range(args.hosts)]
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
            lookup_class = PreResolved if args.no_dns else Lookup
            measured = []
            for concurrency in args.concurrency:
                probe = ProbeConfig(
                    helo="probe.bench.test",
                    mail_from="probe@bench.test",
                    timeout=30,
                    connect=connect,
                    resolvers=(HostPort("127.0.0.1", dns.port),),
                    concurrency=concurrency,
                    ca_file=ca_file,
                )
                config = Config(path=None, providers={}, domains=domains, probe=probe)

                def run(
                    targets: list[DomainConfig], config: Config = config, probe: ProbeConfig = probe
                ) -> tuple[float, float, list[DomainReadiness]]:
                    start, cpu = time.perf_counter(), time.process_time()
                    lookup = lookup_class(probe.resolvers, timeout=10, in_flight=args.dns_in_flight)
                    results = check_domains(config, targets, "backup", lookup=lookup)
                    return time.perf_counter() - start, time.process_time() - cpu, results

                alone, _, _ = run(list(domains.values())[:1])
                lab_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                wall, cpu, results = run(list(domains.values()))
                measured.append((concurrency, alone, wall, cpu, results, lab_before))
        finally:
            dns.stop()
            servers.stdin.close()
            servers.wait(timeout=30)
    # named and the servers have exited: their CPU is in RUSAGE_CHILDREN (including the
    # first domain's run and their start-up, so a slight overestimate)
    lab_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for concurrency, alone, wall, cpu, results, lab_before in measured:
        lab_cpu = sum(
            getattr(lab_after, f) - getattr(lab_before, f) for f in ("ru_utime", "ru_stime")
        )
        report(args, concurrency, alone, wall, cpu, results, lab_cpu)


def report(
    args: argparse.Namespace,
    concurrency: int,
    alone: float,
    wall: float,
    cpu: float,
    results: list[DomainReadiness],
    lab_cpu: float,
) -> None:
    handshakes = [
        sum(s.ms for s in a.steps) / 1000 for r in results for h in r.hosts for a in h.addresses
    ]
    verdicts = {v.value: sum(r.verdict is v for r in results) for v in Verdict}
    slowest = max(handshakes)
    shared = " (shared hosts)" if args.shared else ""
    which = "the [probe] default" if concurrency == DEFAULT_CONCURRENCY else "high, set by hand"
    print(f"--- [probe] concurrency = {concurrency} ({which})")
    print(
        f"domains × hosts        : {args.domains} × {args.hosts}{shared}: {len(handshakes)} results"
    )
    print(f"banner delay           : {args.delay * 1000:.0f} ms; concurrency {concurrency}")
    print(f"verdicts               : {verdicts}")
    print(f"wall time              : {wall:.3f} s (probe process CPU {cpu:.3f} s)")
    print(f"lab CPU                : {lab_cpu:.3f} s (named + SMTP servers, this run to the end)")
    print(f"slowest handshake      : {slowest:.3f} s")
    print(f"median handshake       : {sorted(handshakes)[len(handshakes) // 2]:.3f} s")
    print(f"sum of handshakes      : {sum(handshakes):.1f} s (what one at a time would take)")
    print(f"wall / slowest         : {wall / slowest:.2f}× (goal ≤ 2×)")
    print(f"one domain alone       : {alone:.3f} s; wall / alone: {wall / alone:.2f}×")


if __name__ == "__main__":
    main()
