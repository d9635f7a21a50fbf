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

Issue #11's two goals, each printed with PASS or MISSED (medians of ``--runs``, default 3):

* ``--domains 200 --addresses --tls ec --cli``: ``mxflip check`` as a new process over
  all domains ≤ 2.0 × its time for one domain (run at the default concurrency and at 2000);
* ``--domains 1000 --addresses --tls ec --plain``: the probe's CPU, DNS included, ≤ 1.5 ×
  a plain asyncio client's doing the same dialogue and asking the same DNS questions
  (both defined in the output; the ratio against the plain client without DNS, the
  previous rounds' figure, is printed too).

With both ``--cli`` and ``--plain`` it also prints a floor: the all-domains wall time and
ratio a CLI would reach if each session cost the plain client's CPU (see
:func:`floor_lines`), i.e. how far cutting Python overhead alone could go. The probe
computes its TLS handshakes' checks in a thread beside the event loop on a machine with
two CPUs or more (``mxflip.net.starttls``); the CPU figures count every thread.

Options: ``--domains``, ``--hosts``, ``--delay``, ``--concurrency``, ``--dns-in-flight``;
``--shared`` (every domain on the same hosts: batched sessions), ``--no-dns`` (lookups
answered in-process, to see the SMTP side alone), ``--tls ec|rsa`` (the servers offer
STARTTLS with a trustme certificate of that key type, as real MX hosts do; without it
no TLS is negotiated).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver
import dns.flags
import dns.resolver
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _process import compile_sources

from mxflip.config import Config, DomainConfig, ProbeConfig
from mxflip.hostport import HostPort
from mxflip.net.lookup import HostAddresses, Lookup, TLSAAnswer, TLSARecord
from mxflip.probe import DomainReadiness, Verdict
from mxflip.readiness import check_domains
from mxflip.records import MX, RRset
from tests.support.bind import BindServer, zone_text
from tests.support.ports import free_port


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


class DnspythonLookup(Lookup):
    """The same questions through dnspython's async resolver (a fresh socket, source port
    and random ID per query, a Message object per answer): the alternative to the
    hand-written wire format of mxflip.net.lookup, for ``--dns dnspython``."""

    def __init__(
        self, resolvers: Sequence[HostPort] = (), *, timeout: float = 5.0, in_flight: int = 64
    ) -> None:
        super().__init__(resolvers, timeout=timeout, in_flight=in_flight)
        self.lifetime = timeout

    def _resolver(self) -> dns.asyncresolver.Resolver:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [ns.host for ns in self.nameservers]
        resolver.port = self.nameservers[0].port
        resolver.lifetime = self.lifetime
        resolver.use_edns(0, 0, 1232)
        resolver.flags = dns.flags.RD | dns.flags.AD
        return resolver

    async def _ask(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        try:
            return await self._resolver().resolve(name, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return None

    async def addresses(self, host: str) -> HostAddresses:
        a, aaaa = await asyncio.gather(self._ask(host, "A"), self._ask(host, "AAAA"))
        found = [str(r) for answer in (a, aaaa) if answer and answer.rrset for r in answer.rrset]
        return HostAddresses(host, tuple(found))

    async def mx(self, domain: str, *, urgent: bool = False) -> RRset | None:
        answer = await self._ask(domain, "MX")
        if answer is None or answer.rrset is None:
            return None
        records = frozenset(MX(r.preference, r.exchange.to_text()) for r in answer.rrset)
        return RRset(domain, answer.rrset.ttl, records)

    async def txt(self, name: str) -> list[str]:
        answer = await self._ask(name, "TXT")
        if answer is None or answer.rrset is None:
            return []
        return [b"".join(r.strings).decode() for r in answer.rrset]

    async def tlsa(self, host: str, port: int = 25) -> TLSAAnswer:
        answer = await self._ask(f"_{port}._tcp.{host}", "TLSA")
        records = tuple(
            TLSARecord(r.usage, r.selector, r.mtype, r.cert)
            for r in (answer.rrset if answer and answer.rrset else ())
        )
        authenticated = bool(answer and answer.response.flags & dns.flags.AD)
        return TLSAAnswer(records, authenticated)


SERVERS = r"""
import asyncio, json, ssl, sys

count, delay = int(sys.argv[1]), float(sys.argv[2])
# with --addresses, server i listens on ADDRESSES[i]:PORT; otherwise on 127.0.0.1, any port
addresses = json.loads(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else None
tls = None
if len(sys.argv) > 4:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(sys.argv[4])
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
    if addresses:
        port = addresses["port"]
        servers = [await asyncio.start_server(handle, a, port, backlog=64)
                   for a in addresses["hosts"][:count]]
    else:
        servers = [await asyncio.start_server(handle, "127.0.0.1", 0, backlog=64)
                   for _ in range(count)]
    print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def loopback_address(index: int) -> str:
    """The ``index``-th distinct loopback address for an MX host (127.1.0.1, 127.1.0.2, …):
    every host its own address, as real MX hosts have, on one port."""
    return f"127.1.{index // 250}.{index % 250 + 1}"


class _PlainDNSAnswer(asyncio.DatagramProtocol):
    """The plain client's DNS: the first datagram on the query's own endpoint."""

    def __init__(self, answer: asyncio.Future[bytes]) -> None:
        self.answer = answer

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.answer.done():
            self.answer.set_result(data)


#: The plain client's query types (the numbers a stub resolver writes).
_PLAIN_TYPES = {"A": 1, "AAAA": 28, "MX": 15, "TXT": 16, "TLSA": 52}


async def plain_query(name: str, rdtype: str, server: tuple[str, int]) -> int:
    """One DNS question the plainest asyncio way that meets issue #11's terms: a datagram
    endpoint (a fresh socket, so a fresh source port) per query, a random ID from
    ``secrets``, the query packed with ``struct``; the answer's ID and RCODE are checked,
    nothing else is read. Returns the RCODE."""
    loop = asyncio.get_running_loop()
    qid = secrets.randbits(16)
    labels = name.rstrip(".").encode().split(b".")
    query = (
        struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
        + b"".join(bytes((len(label),)) + label for label in labels)
        + b"\x00"
        + struct.pack("!HH", _PLAIN_TYPES[rdtype], 1)
    )
    answer: asyncio.Future[bytes] = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _PlainDNSAnswer(answer), remote_addr=server
    )
    try:
        transport.sendto(query)
        async with asyncio.timeout(10):
            data = await answer
    finally:
        transport.close()
    if data[:2] != query[:2]:
        raise OSError(f"{name}/{rdtype}: an answer with another ID")
    return data[3] & 0x0F


async def plain_dialogue(
    targets: list[tuple[str, int, str, str]],
    ca_file: Path | None,
    concurrency: int,
    dns_server: tuple[str, int] | None = None,
    dns_in_flight: int = 64,
) -> tuple[int, int]:
    """The same dialogue as the probe (banner, EHLO, STARTTLS with a verified certificate
    when offered, EHLO, MAIL, RCPT, RSET, QUIT) by the plainest asyncio client: no step
    timing, no findings, no reply checks. With ``dns_server`` it first asks the questions
    the probe asks (A and AAAA of a host before its dialogue; TLSA per host, MX and the
    MTA-STS TXT per domain alongside) through :func:`plain_query`, ``dns_in_flight`` at
    once, as the probe's default. Its CPU is the floor the probe is measured against.
    Returns (dialogues that reached QUIT, DNS questions answered)."""
    import ssl as _ssl

    context = _ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    limit = asyncio.Semaphore(concurrency)
    dns_limit = asyncio.Semaphore(dns_in_flight)
    done = 0
    asked = 0

    async def ask(name: str, rdtype: str) -> None:
        nonlocal asked
        assert dns_server is not None
        async with dns_limit:
            await plain_query(name, rdtype, dns_server)
        asked += 1

    async def one(address: str, port: int, host: str, domain: str) -> None:
        nonlocal done
        if dns_server is not None:
            await asyncio.gather(ask(host, "A"), ask(host, "AAAA"))
        async with limit:
            reader, writer = await asyncio.open_connection(address, port)

            async def reply() -> bytes:
                while True:
                    line = await reader.readline()
                    if line[3:4] != b"-":
                        return line

            async def command(text: str) -> bytes:
                writer.write(text.encode() + b"\r\n")
                await writer.drain()
                return await reply()

            await reply()
            ehlo = await command("EHLO probe.bench.test")
            if b"STARTTLS" in ehlo or ca_file:
                await command("STARTTLS")
                await writer.start_tls(context, server_hostname=host.rstrip("."))
                await command("EHLO probe.bench.test")
            await command("MAIL FROM:<probe@bench.test>")
            await command(f"RCPT TO:<postmaster@{domain.rstrip('.')}>")
            await command("RSET")
            await command("QUIT")
            writer.close()
            await writer.wait_closed()
            done += 1

    side: list[Awaitable[None]] = []
    if dns_server is not None:
        side += [ask(f"_25._tcp.{host}", "TLSA") for _, _, host, _ in targets]
        for domain in sorted({domain for _, _, _, domain in targets}):
            side += [ask(domain, "MX"), ask(f"_mta-sts.{domain}", "TXT")]
    await asyncio.gather(*(one(*t) for t in targets), *side)
    return done, asked


def write_cli_config(
    folder: Path,
    domains: dict[str, DomainConfig],
    connect: dict[str, tuple[HostPort, ...]],
    dns_port: int,
    ca_file: Path | None,
    concurrency: int,
) -> Path:
    """The same lab as an ``mxflip.toml`` for ``mxflip check`` (a zone-file provider that
    the backup profile never reads)."""
    zone = folder / "bench.test.zone"
    zone.write_text("$ORIGIN bench.test.\n@ 3600 IN SOA ns. host. 1 2 3 4 5\n@ 3600 IN NS ns.\n")
    lines = [
        "[providers.files]",
        'type = "zonefile"',
        f'file = "{zone}"',
        "[defaults]",
        'provider = "files"',
        'zone = "bench.test"',
        "[probe]",
        'helo = "probe.bench.test"',
        'mail_from = "probe@bench.test"',
        "timeout = 30",
        f"concurrency = {concurrency}",
        f'resolvers = ["127.0.0.1:{dns_port}"]',
        *([f'ca_file = "{ca_file}"'] if ca_file else []),
        "[probe.connect]",
        *(f'"{host.rstrip(".")}" = "{t[0]}"' for host, t in connect.items()),
    ]
    for name, d in domains.items():
        lines += [
            f'[domains."{name.rstrip(".")}"]',
            "primary = [" + ", ".join(f'"{mx.preference} {mx.host}"' for mx in d.primary) + "]",
            "backup = ["
            + ", ".join(f'"{mx.preference} {mx.host}"' for mx in sorted(d.backup))
            + "]",
        ]
    path = folder / "mxflip.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


#: ``python -m mxflip`` that also reports, at exit, the CPU of its main thread (the one
#: the event loop runs on; handshake threads are not counted): the critical path of an
#: all-domains check, steadier than the wall time on a shared machine.
_CLI_MAIN = (
    "import atexit, runpy, sys, time\n"
    "atexit.register(lambda: sys.stderr.write(f'\\nMARK {time.thread_time():.4f}\\n'))\n"
    "sys.argv[0] = 'mxflip'\n"
    "runpy.run_module('mxflip', run_name='__main__', alter_sys=True)\n"
)
_LOOP_CPU_MARK = "bench-loop-thread-cpu"


@dataclass(frozen=True)
class CLIRun:
    wall: float
    cpu: float  # user + system, every thread
    loop_cpu: float  # the main (event loop) thread alone
    code: int


def time_cli(config: Path, domains: list[str]) -> CLIRun:
    """Wall, CPU and exit code of ``mxflip check`` in a new process: start-up, config,
    lookups, handshakes and rendering, as a user waits for them."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _CLI_MAIN.replace("MARK", _LOOP_CPU_MARK),
            "-c",
            str(config),
            "check",
            "--json",
            *domains,
        ],
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime"))
    marked = [line for line in done.stderr.decode().splitlines() if _LOOP_CPU_MARK in line]
    loop_cpu = float(marked[-1].split()[-1]) if marked else float("nan")
    return CLIRun(wall, cpu, loop_cpu, done.returncode)


def compare_cli(
    args: argparse.Namespace, config: Path, domains: list[str]
) -> tuple[list[str], float, dict[str, float]]:
    """``mxflip check --json`` as a new process for one domain, then for all, interleaved
    ``--runs`` times; the medians of the wall times are compared. Returns the lines, the
    CPU the runs spent (RUSAGE_CHILDREN counts it; it is not the lab's) and the medians
    (``one_wall``, ``all_wall``, ``one_cpu``, ``all_cpu``)."""
    one: list[CLIRun] = []
    every: list[CLIRun] = []
    for _ in range(args.runs):
        one.append(time_cli(config, domains[:1]))
        every.append(time_cli(config, []))
    one_wall = statistics.median(r.wall for r in one)
    all_wall = statistics.median(r.wall for r in every)
    ratio = all_wall / one_wall
    spent = sum(r.cpu for r in one + every)

    def figures(runs: list[CLIRun]) -> str:
        walls = ", ".join(f"{r.wall:.2f}" for r in runs)
        return (
            f"median {statistics.median(r.wall for r in runs):.3f} s wall ({walls}); "
            f"median CPU {statistics.median(r.cpu for r in runs):.3f} s, of which the event "
            f"loop's thread {statistics.median(r.loop_cpu for r in runs):.3f} s; "
            f"exit {sorted({r.code for r in runs})}"
        )

    one_cpu = statistics.median(r.cpu for r in one)
    all_cpu = statistics.median(r.cpu for r in every)
    one_loop = statistics.median(r.loop_cpu for r in one)
    all_loop = statistics.median(r.loop_cpu for r in every)
    lines = [
        "CLI, how measured      : `mxflip check --json` as a new process (start-up, config, "
        "lookups, handshakes, JSON), wall by perf_counter, CPU = user + system of the child "
        "(resource.RUSAGE_CHILDREN), the event loop's thread alone by time.thread_time() at "
        f"exit; 1 domain and all interleaved, {args.runs} runs each",
        f"mxflip check, 1 domain : {figures(one)}",
        f"mxflip check, all      : {figures(every)}",
        f"all / 1 domain (CLI)   : {ratio:.2f}× — goal ≤ 2.0×: "
        f"{'PASS' if ratio <= 2.0 else 'MISSED'}",
        f"CLI CPU, all − 1 domain: {all_cpu - one_cpu:.3f} s, of which the event loop's thread "
        f"{all_loop - one_loop:.3f} s (medians: the work the domains add beyond start-up; on "
        "a loaded machine steadier figures than the wall ratio)",
    ]
    medians = {"one_wall": one_wall, "all_wall": all_wall, "one_cpu": one_cpu, "all_cpu": all_cpu}
    return lines, spent, medians


def floor_lines(cli: dict[str, float], plain: dict[str, float]) -> list[str]:
    """What ``mxflip check`` over all domains would take if each session cost the CPU the
    plain client's does (``--plain``, with DNS), the rest unchanged: the CPU the domains
    add to the CLI (all − 1 domain) shrinks by the plain/probe ratio, and the wall time
    by as much (the all-domains process is CPU-bound). A floor for cutting Python
    overhead alone."""
    added = cli["all_cpu"] - cli["one_cpu"]
    share = plain["plain_dns"] / plain["dns"]
    wall = cli["all_wall"] - added * (1 - share)
    ratio = wall / cli["one_wall"]
    return [
        f"floor, plain sessions : {wall:.3f} s wall, {ratio:.2f}× one domain — if each "
        f"session cost the plain client's CPU ({share:.2f} of the probe's, with DNS): the "
        f"CPU the domains add to the CLI ({added:.3f} s) × {share:.2f}, the wall time "
        "shorter by the difference"
    ]


def compare_plain(
    args: argparse.Namespace,
    config: Config,
    domains: dict[str, DomainConfig],
    connect: dict[str, tuple[HostPort, ...]],
    ca_file: Path | None,
    lookup_class: type[Lookup],
) -> tuple[list[str], dict[str, float]]:
    """The probe's CPU with DNS (the resolver lookups through BIND) and without (lookups
    answered in-process: the SMTP side alone) against the plain client's CPU for the same
    sessions without and with the same DNS questions, all in this process, interleaved
    ``--runs`` times on the same servers; the medians are compared like for like."""
    targets = [
        (t.host, t.port, host, name)
        for name, d in domains.items()
        for host in sorted(mx.host for mx in d.backup)
        for t in connect[host][:1]
    ]
    resolver = config.probe.resolvers[0]
    with_dns = not args.no_dns
    keys = ("plain", "plain_dns", "smtp", "dns") if with_dns else ("plain", "smtp", "dns")
    cpu: dict[str, list[float]] = {k: [] for k in keys}
    ready, done, asked = 0, 0, 0
    concurrency = config.probe.concurrency
    for _ in range(args.runs):
        before = time.process_time()
        done, _ = asyncio.run(plain_dialogue(targets, ca_file, concurrency))
        cpu["plain"].append(time.process_time() - before)
        if with_dns:
            before = time.process_time()
            _, asked = asyncio.run(
                plain_dialogue(
                    targets,
                    ca_file,
                    concurrency,
                    (resolver.host, resolver.port),
                    args.dns_in_flight,
                )
            )
            cpu["plain_dns"].append(time.process_time() - before)
        before = time.process_time()
        lookup: Lookup = PreResolved(config.probe.resolvers, timeout=10)
        results = asyncio.run(
            check_domains(config, list(domains.values()), "backup", lookup=lookup)
        )
        cpu["smtp"].append(time.process_time() - before)
        before = time.process_time()
        lookup = lookup_class(config.probe.resolvers, timeout=10, in_flight=args.dns_in_flight)
        asyncio.run(check_domains(config, list(domains.values()), "backup", lookup=lookup))
        cpu["dns"].append(time.process_time() - before)
        ready = sum(r.verdict is Verdict.READY for r in results)
    median = {k: statistics.median(v) for k, v in cpu.items()}
    plain, smtp, dns = median["plain"], median["smtp"], median["dns"]
    questions = 3 * len(targets) + 2 * len(domains)

    def runs(key: str) -> str:
        return ", ".join(f"{x:.2f}" for x in cpu[key])

    lines = [
        "CPU, how measured      : time.process_time() (user + system CPU of this process, "
        "all threads) around each run; the lab (BIND, SMTP servers) runs in other processes",
        "plain client           : one asyncio coroutine per address: banner, EHLO, STARTTLS "
        "with the same verifying context when offered, EHLO, MAIL, RCPT, RSET, QUIT; no "
        "timeouts, step records, findings (addresses given)",
        "plain client's DNS     : the probe's questions (A and AAAA of a host before its "
        "dialogue; TLSA per host, MX and MTA-STS TXT per domain), each from a datagram "
        "endpoint of its own with a `secrets` ID, the answer's ID and RCODE checked; "
        f"{args.dns_in_flight} in flight, as the probe",
        "what the probe adds    : step timeouts and timings, reply parsing and checks, "
        "findings and verdicts, the certificate chain and expiry, DNS answers read "
        "(records, CNAMEs, AD bit), tries with timeouts, the MTA-STS policy check",
        f"runs (interleaved)     : {args.runs}, medians below; concurrency {concurrency} for both",
        f"plain, SMTP only       : {plain:.3f} s CPU ({runs('plain')}; {done} of "
        f"{len(targets)} dialogues to QUIT)",
    ]
    if with_dns:
        lines.append(
            f"plain, DNS + SMTP      : {median['plain_dns']:.3f} s CPU ({runs('plain_dns')}; "
            f"{asked} DNS questions answered)"
        )
    lines += [
        f"probe, SMTP side alone : {smtp:.3f} s CPU ({runs('smtp')}; {ready} domains ready; "
        "lookups answered in-process)",
        f"probe with DNS         : {dns:.3f} s CPU ({runs('dns')}; {questions} questions: "
        "A, AAAA, TLSA per host, MX and MTA-STS TXT per domain through BIND)",
        f"probe / plain, SMTP    : {smtp / plain:.2f}× (both without DNS)",
    ]
    if with_dns:
        ratio = dns / median["plain_dns"]
        lines += [
            f"probe / plain, DNS share: probe {dns - smtp:.3f} s, plain "
            f"{median['plain_dns'] - plain:.3f} s (with DNS − without)",
            f"probe / plain, with DNS: {ratio:.2f}× (both asking the same questions) — goal "
            f"≤ 1.5×: {'PASS' if ratio <= 1.5 else 'MISSED'}",
            f"probe with DNS / plain SMTP only: {dns / plain:.2f}× (the previous rounds' "
            "figure: the plain client asked no DNS)",
        ]
    return lines, median


#: mxflip's own default for ``[probe] concurrency`` (what a user gets without setting it).
_default = ProbeConfig.__dataclass_fields__["concurrency"].default
assert isinstance(_default, int)
DEFAULT_CONCURRENCY: int = _default


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
    parser.add_argument(
        "--dns",
        choices=("mxflip", "dnspython"),
        default="mxflip",
        help="the readiness lookups' client: mxflip.net.lookup's wire format (default) or "
        "dnspython's async resolver",
    )
    parser.add_argument(
        "--addresses",
        action="store_true",
        help="every MX host on its own loopback address (127.1.x.y), one port for all",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="also run a plain asyncio client through the same dialogue and compare CPU",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="repetitions of the --plain and --cli comparisons (medians are compared)",
    )
    parser.add_argument(
        "--cli",
        action="store_true",
        help="also time `mxflip check` as a new process: one domain, then all",
    )
    args = parser.parse_args()
    compile_sources()  # see bench/_bytecode.py; the timed mxflip processes inherit:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    total = args.hosts if args.shared else args.domains * args.hosts
    host_addresses = [loopback_address(i) for i in range(total)]
    layout = {"port": free_port(), "hosts": host_addresses}

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
            [
                sys.executable,
                "-c",
                SERVERS,
                str(total),
                str(args.delay),
                json.dumps(layout) if args.addresses else "",
                *tls_args,
            ],
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
            where_iter = iter(host_addresses)
            for d in range(args.domains):
                name = f"d{d}.bench.test."
                where = "shared" if args.shared else f"d{d}"
                hosts = [f"mx{h}-{where}.bench.test." for h in range(args.hosts)]
                for host in hosts:
                    if host not in connect:
                        address = next(where_iter) if args.addresses else "127.0.0.1"
                        connect[host] = (HostPort(address, next(port_iter)),)
                domains[name] = DomainConfig(
                    name=name,
                    provider="bench",
                    zone="bench.test.",
                    primary=frozenset({MX(10, f"primary.d{d}.bench.test")}),
                    backup=frozenset(MX(10 * (i + 1), h) for i, h in enumerate(hosts)),
                )
            lookup_class = (
                PreResolved
                if args.no_dns
                else DnspythonLookup
                if args.dns == "dnspython"
                else Lookup
            )
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
                    results = asyncio.run(check_domains(config, targets, "backup", lookup=lookup))
                    return time.perf_counter() - start, time.process_time() - cpu, results

                alone, _, _ = run(list(domains.values())[:1])
                lab_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                wall, cpu, results = run(list(domains.values()))
                extra: list[str] = []
                cli_cpu = 0.0
                if args.plain:
                    lines, plain_cpu = compare_plain(
                        args, config, domains, connect, ca_file, lookup_class
                    )
                    extra += lines
                if args.cli:
                    cli_config = write_cli_config(
                        Path(tmp), domains, connect, dns.port, ca_file, concurrency
                    )
                    lines, cli_cpu, cli_medians = compare_cli(args, cli_config, list(domains))
                    extra += lines
                    if args.plain and "plain_dns" in plain_cpu:
                        extra += floor_lines(cli_medians, plain_cpu)
                measured.append(
                    (concurrency, alone, wall, cpu, results, lab_before, cli_cpu, extra)
                )
        finally:
            dns.stop()
            servers.stdin.close()
            servers.wait(timeout=30)
    # named and the servers have exited: their CPU is in RUSAGE_CHILDREN (including the
    # first domain's run and their start-up, so a slight overestimate)
    lab_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for i, (concurrency, alone, wall, cpu, results, lab_before, _, extra) in enumerate(measured):
        # the CLI runs' CPU is in RUSAGE_CHILDREN too: not the lab's
        cli_cpu = sum(m[6] for m in measured[i:])
        lab_cpu = (
            sum(getattr(lab_after, f) - getattr(lab_before, f) for f in ("ru_utime", "ru_stime"))
            - cli_cpu
        )
        report(args, concurrency, alone, wall, cpu, results, lab_cpu, extra)


def report(
    args: argparse.Namespace,
    concurrency: int,
    alone: float,
    wall: float,
    cpu: float,
    results: list[DomainReadiness],
    lab_cpu: float,
    extra: list[str],
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
    print(f"machine load (1 min)   : {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"verdicts               : {verdicts}")
    print(f"wall time              : {wall:.3f} s (probe process CPU {cpu:.3f} s)")
    print(
        f"lab CPU                : {lab_cpu:.3f} s "
        "(named + SMTP servers over every run: counted when they exit)"
    )
    print(f"slowest handshake      : {slowest:.3f} s")
    print(f"median handshake       : {sorted(handshakes)[len(handshakes) // 2]:.3f} s")
    print(f"sum of handshakes      : {sum(handshakes):.1f} s (what one at a time would take)")
    print(f"wall / slowest         : {wall / slowest:.2f}× (goal ≤ 2×)")
    print(f"one domain alone       : {alone:.3f} s; wall / alone: {wall / alone:.2f}×")
    layout_text = "its own loopback address" if args.addresses else "127.0.0.1, its own port"
    print(f"DNS client             : {'none (in-process answers)' if args.no_dns else args.dns}")
    print(f"MX host layout         : each host on {layout_text}")
    for line in extra:
        print(line)


if __name__ == "__main__":
    main()
