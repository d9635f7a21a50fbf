"""Benchmark: status, failover and rollback for N domains in one zone, by adapter.

A private BIND9 on loopback serves one zone holding N domains (``[sets]`` + ``[defaults]``
config, one ``[domains."…"]`` line each). For each adapter (``rfc2136``: TSIG UPDATEs;
``zonefile``: the file BIND serves, reloaded with rndc) and each N it runs, as separate
``python -m mxflip`` processes, exactly what a user would:

    status --json  (RUNS times, before the failover)
    failover --all --now --yes --skip-readiness --reason benchmark --json
    status --json  (RUNS times, right after it: domains sit on the short TTL)
    rollback --yes --reason benchmark --json

and prints wall times (median), spurious DNS errors in the status documents (a nameserver
answer with an error: none is expected on loopback), answers that needed a retry
("slow"), peak memory (max RSS from wait4: status / failover+rollback; for zonefile the
latter includes the ``rndc`` it runs, a child of the process) and the CPU time
per domain, so the growth from the smallest to the largest N can be read off directly.

The series: every status run counts as failed when any nameserver answer is
``unreachable`` (or has an error) or its exit code is not the expected one (0 before the
failover: every domain on primary; 1 after it: every domain on backup); the load
(``uptime``) is printed at the start and end of each series. ``--runs 20`` is the issue's
"no spurious timeouts in 20 runs". The growth table prints, per command, the CPU seconds at
each N and the marginal CPU cost per domain between consecutive N (flat = linear growth).

    python bench/bench_status.py [--adapter rfc2136|zonefile|both]
                                 [--domains 100 500 1000 2000 5000] [--runs 3]
    python bench/bench_status.py --adapter route53|cloudflare|api --domains 5000 --runs 3

``route53`` (moto in server mode) and ``cloudflare`` (the adapter's loopback fake API) are
measured for ``status --json`` only: the same BIND answers the nameserver questions, the
API backend holds the same records (seeded behind mxflip's back) and serves the provider's
read. A failover against them would leave BIND behind, so their failover figures come from
``bench_route53.py`` and ``providers/cloudflare/bench``.

Goals (issue 14, 2-core machine): status --json at N = 5000 <= 3 s, no spurious timeouts in
20 runs, after a failover <= 1.2 x before; failover and rollback at N = 5000 <= 8 s; peak
memory <= 200 MiB; growth linear from 100 to 5000 for every command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _process import compile_sources  # noqa: E402

from tests.support.scale import ADAPTERS, ScaleLab  # noqa: E402


@dataclass
class Run:
    seconds: float
    code: int
    max_rss_mib: float
    #: User + system CPU seconds of the process: less disturbed by a busy machine.
    cpu: float
    #: Nameserver answers with an error, and answers that needed a retry (status only).
    errors: int = 0
    slow: int = 0
    stderr: str = ""
    #: Nameserver answers marked unreachable (status only).
    unreachable: int = 0

    def failed(self, expected_code: int) -> bool:
        """A status run with an unreachable nameserver, an error or an unexpected exit."""
        return self.code != expected_code or self.errors > 0 or self.unreachable > 0


def mxflip(config: Path, *args: str) -> Run:
    """Run one mxflip command as its own process; wall time and peak memory."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mxflip", "-c", str(config), *args],
            cwd=ROOT,
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        try:
            doc = json.loads(text) if text.strip() else {}
        except ValueError:
            doc = {}
        cpu = usage.ru_utime + usage.ru_stime
        # Only counts are kept: a child's peak RSS starts from this process's size at the
        # fork (Linux keeps ru_maxrss across exec), so the benchmark must stay small.
        errors, slow, unreachable = dns_errors(doc)
        stderr = err.read().decode()[-2000:]
        rss = usage.ru_maxrss / 1024
        return Run(seconds, proc.returncode, rss, cpu, errors, slow, stderr, unreachable)


def dns_errors(doc: dict[str, object]) -> tuple[int, int, int]:
    """(nameserver answers with an error, answers that needed a retry, unreachable
    answers) in a status doc."""
    errors = slow = unreachable = 0
    for domain in doc.get("domains", []):  # type: ignore[attr-defined]
        for ns in domain["nameservers"]:
            errors += ns["error"] is not None
            slow += bool(ns.get("slow"))
            unreachable += bool(ns.get("unreachable"))
    return errors, slow, unreachable


def load_text() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


@dataclass
class Row:
    adapter: str
    domains: int
    status_before: list[Run]
    failover: Run
    status_after: list[Run]
    rollback: Run
    #: The load at the start and end of each status series (before, after).
    loads: tuple[str, str, str, str] = ("", "", "", "")


def measure(adapter: str, count: int, runs: int) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        lab = ScaleLab(Path(tmp), count, adapter).start()
        try:
            config = lab.config()
            load0 = load_text()
            before = [mxflip(config, "status", "--json") for _ in range(runs)]
            load1 = load_text()
            failover = mxflip(
                config,
                *("failover", "--all", "--now", "--yes", "--skip-readiness"),
                *("--reason", "benchmark", "--json"),
            )
            if failover.code != 0:
                raise SystemExit(f"failover failed ({failover.code}): {failover.stderr[-1500:]}")
            load2 = load_text()
            after = [mxflip(config, "status", "--json") for _ in range(runs)]
            load3 = load_text()
            rollback = mxflip(config, "rollback", "--yes", "--reason", "benchmark", "--json")
            if rollback.code != 0:
                raise SystemExit(f"rollback failed ({rollback.code}): {rollback.stderr[-1500:]}")
        finally:
            lab.stop()
    return Row(adapter, count, before, failover, after, rollback, (load0, load1, load2, load3))


API_ADAPTERS = ("route53", "cloudflare")


@dataclass
class ApiRow:
    adapter: str
    domains: int
    status: list[Run]
    #: API requests the provider sent per status run (listing pages, zone lookup).
    requests: float
    loads: tuple[str, str]


def measure_api(adapter: str, count: int, runs: int) -> ApiRow:
    """``status --json`` with the provider on an API backend and BIND as nameserver."""
    from tests.support.scale import PRIMARY, SCALE_ZONE

    with tempfile.TemporaryDirectory() as tmp:
        lab = ScaleLab(Path(tmp), count, "rfc2136").start()
        try:
            if adapter == "route53":
                backend = _route53_backend(tmp, lab.names, PRIMARY, SCALE_ZONE)
            else:
                backend = _cloudflare_backend(lab.names, PRIMARY, SCALE_ZONE)
            with backend as (provider_table, counter):
                config = lab.config()
                text = config.read_text()
                start = text.index("[providers.lab]")
                end = text.index("[sets]")
                config.write_text(text[:start] + provider_table + "\n" + text[end:])
                load0 = load_text()
                before = counter()
                status = [mxflip(config, "status", "--json") for _ in range(runs)]
                requests = (counter() - before) / runs
                load1 = load_text()
        finally:
            lab.stop()
    for run in status:
        if run.code not in (0, 1):
            print(f"{adapter} status exited {run.code}: {run.stderr[-800:]}", file=sys.stderr)
    return ApiRow(adapter, count, status, requests, (load0, load1))


@contextlib.contextmanager
def _route53_backend(
    home: str, names: list[str], records: list[str], zone: str
) -> Iterator[tuple[str, Callable[[], int]]]:
    import boto3

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_route53 import seed_names

    from tests.support.moto_route53 import (
        AWS_VARIABLES_TO_CLEAR,
        MotoServer,
        fake_aws_environment,
        strict_route53,
    )

    saved = dict(os.environ)
    for name in AWS_VARIABLES_TO_CLEAR:
        os.environ.pop(name, None)
    os.environ.update(fake_aws_environment(home))  # the mxflip processes inherit it
    server = MotoServer().start()
    seen = [0]
    try:
        with strict_route53():
            admin = boto3.session.Session().client("route53", endpoint_url=server.url)
            seed_names(admin, zone, names, records)

            real = server._server.RequestHandlerClass.handle_one_request

            def counting(handler: object) -> None:
                seen[0] += 1
                real(handler)  # type: ignore[arg-type]

            server._server.RequestHandlerClass.handle_one_request = counting  # type: ignore[method-assign]
            yield (
                f'[providers.lab]\ntype = "route53"\nendpoint_url = "{server.url}"\n',
                (lambda: seen[0]),
            )
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _cloudflare_backend(
    names: list[str], records: list[str], zone: str
) -> Iterator[tuple[str, Callable[[], int]]]:
    from providers.cloudflare.tests.fake_cloudflare import FakeCloudflare

    fake = FakeCloudflare()
    fake.add_token("bench-token")
    fake.add_zone(zone)
    for name in names:
        for record in records:
            priority, host = record.split()
            fake.put_record(zone, name, host, int(priority), 3600)
    saved = os.environ.get("CLOUDFLARE_API_TOKEN")
    os.environ["CLOUDFLARE_API_TOKEN"] = "bench-token"  # the mxflip processes inherit it
    try:
        with fake.serve():
            yield (
                f'[providers.lab]\ntype = "cloudflare"\nbase_url = "{fake.base_url}"\n',
                (lambda: len(fake.requests)),
            )
    finally:
        if saved is None:
            os.environ.pop("CLOUDFLARE_API_TOKEN", None)
        else:
            os.environ["CLOUDFLARE_API_TOKEN"] = saved


def report_api(rows: list[ApiRow], runs: int) -> None:
    print(
        f"status --json with the provider on its test backend, BIND on loopback as nameserver "
        f"({os.cpu_count()} cores); median of {runs} runs; wall s (CPU s of the mxflip process)"
    )
    print(
        f"{'adapter':>10} {'N':>5} {'status':>12} {'peak MiB':>8} {'API requests/run':>16} "
        f"{'failed runs':>11}  load"
    )
    for r in rows:
        failed = sum(s.failed(0) for s in r.status)
        peak = max(s.max_rss_mib for s in r.status)
        print(
            f"{r.adapter:>10} {r.domains:>5} {both(r.status):>12} {peak:>8.0f} "
            f"{r.requests:>16.1f} {failed:>5} of {len(r.status):<3}  "
            f"{r.loads[0]} -> {r.loads[1]}"
        )


def median(runs: list[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


def both(runs: list[Run]) -> str:
    """Median wall seconds (median CPU seconds)."""
    wall = statistics.median(r.seconds for r in runs)
    return f"{wall:.2f} ({statistics.median(r.cpu for r in runs):.2f})"


def report(rows: list[Row], runs: int) -> None:
    load = os.getloadavg()[0]
    print(
        f"one zone, N domains, BIND9 on loopback, {os.cpu_count()} cores (load {load:.1f}); "
        f"status: median of {runs} runs; wall s (CPU s of the mxflip process)"
    )
    head = (
        f"{'adapter':>8} {'N':>5} {'status':>12} {'after':>12} {'ratio (CPU)':>11} "
        f"{'failover':>12} {'rollback':>12} {'peak MiB':>10} {'DNS errors':>10} "
        f"{'slow':>5} {'status CPU ms/100 dom':>21}"
    )
    print(head)
    for r in rows:
        statuses = r.status_before + r.status_after
        errors = sum(s.errors for s in statuses)
        slow = sum(s.slow for s in statuses)
        codes = {s.code for s in statuses}
        peak = max(x.max_rss_mib for x in statuses)
        change_peak = max(x.max_rss_mib for x in (r.failover, r.rollback))
        before, after = median(r.status_before), median(r.status_after)
        cpu = statistics.median(s.cpu for s in r.status_before)
        cpu_after = statistics.median(s.cpu for s in r.status_after)
        ratio = f"{after / before:.2f} ({cpu_after / cpu:.2f})"
        print(
            f"{r.adapter:>8} {r.domains:>5} {both(r.status_before):>12} "
            f"{both(r.status_after):>12} {ratio:>11} "
            f"{both([r.failover]):>12} {both([r.rollback]):>12} {peak:>5.0f}/{change_peak:<4.0f} "
            f"{errors:>10} {slow:>5} {cpu / r.domains * 100 * 1000:>21.1f}"
            + ("" if codes <= {0, 1} else f"  exit codes {sorted(codes)}")
        )
    print()
    print(
        "status series: a run fails on any unreachable nameserver answer, DNS error or "
        "unexpected exit (0 before the failover, 1 after it)"
    )
    for r in rows:
        failed_before = sum(s.failed(0) for s in r.status_before)
        failed_after = sum(s.failed(1) for s in r.status_after)
        print(
            f"{r.adapter:>8} {r.domains:>5}  before: {failed_before} of {len(r.status_before)} "
            f"failed ({r.loads[0]} -> {r.loads[1]})  after: {failed_after} of "
            f"{len(r.status_after)} failed ({r.loads[2]} -> {r.loads[3]})"
        )
    growth(rows)


def growth(rows: list[Row]) -> None:
    """Per adapter and command: CPU s at each N, then the marginal CPU ms per domain
    between consecutive N (constant when growth is linear)."""
    print()
    print(
        "growth: CPU s of the mxflip process at each N  |  marginal CPU ms per domain "
        "between consecutive N (flat = linear)"
    )
    commands = {
        "status": lambda r: statistics.median(s.cpu for s in r.status_before),
        "after": lambda r: statistics.median(s.cpu for s in r.status_after),
        "failover": lambda r: r.failover.cpu,
        "rollback": lambda r: r.rollback.cpu,
    }
    for adapter in dict.fromkeys(r.adapter for r in rows):
        mine = sorted((r for r in rows if r.adapter == adapter), key=lambda r: r.domains)
        print(f"{adapter:>8} N: " + " ".join(f"{r.domains:>7}" for r in mine))
        for name, cpu in commands.items():
            values = [cpu(r) for r in mine]
            marginal = [
                (b - a) / (rb.domains - ra.domains) * 1000
                for a, b, ra, rb in zip(values, values[1:], mine, mine[1:], strict=False)
            ]
            print(
                f"{name:>12}: "
                + " ".join(f"{v:>7.2f}" for v in values)
                + "  |  "
                + " ".join(f"{m:>5.2f}" for m in marginal)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--adapter",
        choices=[*ADAPTERS, "both", *API_ADAPTERS, "api"],
        default="both",
        help="both: rfc2136 and zonefile; api: route53 and cloudflare (status only)",
    )
    parser.add_argument("--domains", type=int, nargs="+", default=[100, 500, 1000, 2000, 5000])
    parser.add_argument("--runs", type=int, default=3, help="status runs before and after")
    args = parser.parse_args()
    compile_sources()  # see bench/_bytecode.py; the timed mxflip processes inherit:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.adapter in (*API_ADAPTERS, "api"):
        apis = API_ADAPTERS if args.adapter == "api" else (args.adapter,)
        report_api([measure_api(a, n, args.runs) for a in apis for n in args.domains], args.runs)
        return
    adapters = ADAPTERS if args.adapter == "both" else (args.adapter,)
    rows = [measure(a, n, args.runs) for a in adapters for n in args.domains]
    report(rows, args.runs)


if __name__ == "__main__":
    main()
