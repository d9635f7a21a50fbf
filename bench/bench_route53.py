"""Benchmark: Route53 API calls to fail over 1,000 domains spread over 10 hosted zones.

Run by hand from the repository root::

    python bench/bench_route53.py [--zones 10] [--domains 1000]
    python bench/bench_route53.py --zones 1 --domains 5000   # one zone, split batches

It then times ``mxflip status --json`` over one zone of ``--domains // --zones`` domains
(``--status-runs``, default 3; BIND on loopback answers the nameserver questions).

Route53 is moto in server mode on loopback (real HTTP through botocore, fake keys, no
traffic elsewhere). Every HTTP request the provider sends is counted with a botocore
``before-send`` hook. For each zone the failover does what mxflip does: read every
domain's MX set, apply one conditional change batch, wait for INSYNC. The goal is at
most 3 calls per zone for read + apply + wait; the hosted-zone lookup (once per zone per
provider, remembered) is reported on its own line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "providers" / "route53")]

import boto3  # noqa: E402

from mxflip import Change, RRset  # noqa: E402
from mxflip_route53 import Route53Provider, Route53Settings, _batch  # noqa: E402
from tests.support.moto_route53 import (  # noqa: E402
    AWS_VARIABLES_TO_CLEAR,
    MotoServer,
    fake_aws_environment,
    strict_route53,
)

PRIMARY = ["10 mx1.primary.example.net.", "20 mx2.primary.example.net."]
BACKUP = ["10 mx1.backup.example.org.", "20 mx2.backup.example.org."]
PHASES = {
    "ListHostedZonesByName": "lookup",
    "ListResourceRecordSets": "read",
    "ChangeResourceRecordSets": "apply",
    "GetChange": "wait",
}


def seed(admin: Any, zones: list[str], per_zone: int) -> dict[str, list[str]]:
    """Create the zones and every domain's primary MX set, behind mxflip's back."""
    domains: dict[str, list[str]] = {}
    for zone in zones:
        names = [f"d{i:05}.{zone}" for i in range(per_zone)]
        seed_names(admin, zone, names, PRIMARY)
        domains[zone] = names
    return domains


def seed_names(admin: Any, zone: str, names: list[str], records: list[str]) -> None:
    """Create the hosted zone ``zone`` holding ``records`` (TTL 3600) at every name."""
    zone_id = admin.create_hosted_zone(Name=zone, CallerReference=uuid.uuid4().hex)["HostedZone"][
        "Id"
    ]
    # Within Route53's per-request limits (1,000 records, 32,000 value characters): the
    # adapter's own packing, so 5,000 domains seed in a few batches.
    groups = [_batch.items_for(Change(n, None, RRset.of(n, 3600, records))) for n in names]
    for batch in _batch.split(groups):
        admin.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={"Changes": [item.to_api() for item in batch]},
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=10)
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument(
        "--status-runs",
        type=int,
        default=3,
        help="then time `mxflip status --json` over one zone of that many domains this "
        "many times (0: skip)",
    )
    args = parser.parse_args()
    per_zone = args.domains // args.zones

    home = tempfile.mkdtemp(prefix="mxflip-bench-")
    for name in AWS_VARIABLES_TO_CLEAR:
        os.environ.pop(name, None)
    os.environ.update(fake_aws_environment(home))

    server = MotoServer().start()
    try:
        with strict_route53():
            admin = boto3.session.Session().client("route53", endpoint_url=server.url)
            run = uuid.uuid4().hex[:6]
            zones = [f"zone{i}-{run}.bench.test." for i in range(args.zones)]
            domains = seed(admin, zones, per_zone)

            provider = Route53Provider.from_settings(
                "bench", Route53Settings(endpoint_url=server.url)
            )
            calls: Counter[str] = Counter()
            provider._client.events.register(
                "before-send.route53",
                lambda event_name, **_: calls.update([event_name.rsplit(".", 1)[-1]]),
            )
            started = time.perf_counter()
            per_zone_calls: list[int] = []
            batches = 0
            for zone in zones:
                before = sum(calls.values()) - calls["ListHostedZonesByName"]
                live = provider.read(zone, domains[zone])
                changes = [
                    Change(name, rrset, RRset.of(name, 300, BACKUP)) for name, rrset in live.items()
                ]
                batches += provider.write_parts(zone, changes)
                provider.wait(provider.apply(zone, changes), 120)
                per_zone_calls.append(sum(calls.values()) - calls["ListHostedZonesByName"] - before)
            elapsed = time.perf_counter() - started
            failover_calls = Counter(calls)

            switched = sum(
                1
                for zone in zones
                for rrset in provider.read(zone, domains[zone]).values()
                if rrset is not None and rrset.same_records(RRset.of(zone, 300, BACKUP))
            )
    finally:
        server.stop()

    calls = failover_calls  # the check read above is not part of the failover
    total = sum(calls.values())
    work = total - calls["ListHostedZonesByName"]
    print(
        f"Route53 failover of {per_zone * args.zones} domains in {args.zones} zones "
        "(moto on loopback)"
    )
    for operation, phase in PHASES.items():
        print(f"  {phase:<7} {operation:<26} {calls[operation]:>5} calls")
    # One listing walk (paginated), one change batch per part (Route53's limits force a
    # split above ~500 domains with two records: a split batch is not a failure) and one
    # GetChange per batch; the goal of 3 calls per zone holds for zones that fit one batch.
    pages = calls["ListResourceRecordSets"]
    print(
        f"  change batches: {calls['ChangeResourceRecordSets']} for {batches} parts "
        f"({batches / args.zones:.1f} per zone, split only at Route53's limits)"
    )
    print(
        f"  read + apply + wait per zone: max {max(per_zone_calls)}, "
        f"mean {work / args.zones:.2f} (goal: 1 listing walk of {pages / args.zones:.1f} "
        "pages + 1 apply and 1 wait per part)"
    )
    print(
        f"  with the hosted-zone lookup:  {total / args.zones:.2f} calls per zone, {total} in all"
    )
    print(f"  domains switched: {switched} of {per_zone * args.zones}")
    print(f"  wall time: {elapsed:.2f} s ({elapsed / args.zones * 1000:.0f} ms per zone)")
    met = (
        calls["ChangeResourceRecordSets"] == batches
        and calls["GetChange"] <= batches * 2
        and work - pages == calls["ChangeResourceRecordSets"] + calls["GetChange"]
        and switched == per_zone * args.zones
    )
    print(f"  goal met: {'yes' if met else 'NO'}")
    if args.status_runs:
        status_figures(per_zone, args.status_runs)
    return 0 if met else 1


def status_figures(count: int, runs: int) -> None:
    """``mxflip status --json`` over ``count`` domains in one zone held by Route53 (moto),
    BIND on loopback answering the nameserver questions (see bench_status.py)."""
    import shutil

    if shutil.which("named") is None:
        print("  status --json: skipped (BIND's named is not installed)")
        return
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_status import measure_api, report_api

    print()
    report_api([measure_api("route53", count, runs)], runs)  # goal: status <= 3 s


if __name__ == "__main__":
    raise SystemExit(main())
