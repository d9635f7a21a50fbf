"""The S3 state backend against moto's server on loopback: journal objects, documents with
preconditions, the lease lock (races between processes, SIGKILL and takeover, renewal,
force-unlock), leader election between watch-like processes, faults as one-line errors,
and records kept locally while the bucket is unreachable."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxflip.errors import ExitCode, UsageError
from mxflip.journal import LockedError
from mxflip.state.base import PreconditionFailed, StateError
from mxflip.state.lease import Leader, Lease, LeaseHeld
from mxflip.state.s3 import PENDING_NAME, S3Backend, _make_client
from tests.support.engine import FakeClock
from tests.support.moto_route53 import FAKE_SECRET_KEY, MotoServer
from tests.support.moto_s3 import (
    S3FaultProxy,
    child_environment,
    moto_s3_fixture,  # noqa: F401  (the moto_s3 fixture)
    new_bucket,
    s3_environment,
    state_config,
)
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    return s3_environment(monkeypatch, tmp_path)


@pytest.fixture
def bucket(moto_s3: MotoServer) -> str:
    return new_bucket(moto_s3)


def backend(url: str, bucket: str, home: Path, **kw: Any) -> S3Backend:
    settings = state_config(url, bucket, **{k: kw.pop(k) for k in ("lease", "prefix") if k in kw})
    return S3Backend(settings, home=home, sleep=lambda s: None, **kw)


def record(op: str, rtype: str, ts: float, **fields: Any) -> dict[str, Any]:
    return {"type": rtype, "op": op, "ts": ts, **fields}


# ------------------------------------------------------------------ journal


def test_records_are_objects_listed_in_order(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    be = backend(moto_s3.url, bucket, tmp_path)
    be.append(record("op1", "intent", 1.0, kind="failover", steps=[]))
    for n in range(3):
        be.append(record("op1", "phase", 2.0 + n, phase=f"p{n}", status="done"))
    be.append(record("op1", "result", 9.0, outcome="done"))
    other = backend(moto_s3.url, bucket, tmp_path)  # another machine, fresh cache
    (op,) = other.read().operations
    assert op.outcome == "done" and [p["phase"] for p in op.phases] == ["p0", "p1", "p2"]
    listed = other._client.list_objects_v2(Bucket=bucket, Prefix="team/journal/")["Contents"]
    keys = [o["Key"] for o in listed]
    assert len(keys) == 5 and keys == sorted(keys)
    assert all(k.startswith("team/journal/") and k.endswith(".json") for k in keys)


def test_a_record_is_never_overwritten(moto_s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    be = backend(moto_s3.url, bucket, tmp_path)
    key = be.journal_prefix + "00000000000000000001-x-000001.json"
    be.put_record(key, record("a", "intent", 1.0))
    with pytest.raises(PreconditionFailed):
        be.put_record(key, record("b", "intent", 1.0))
    assert [o.id for o in backend(moto_s3.url, bucket, tmp_path).read().operations] == ["a"]


def test_reader_skips_an_unreadable_record_and_counts_it(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    be = backend(moto_s3.url, bucket, tmp_path)
    be.append(record("op1", "intent", 1.0))
    be._client.put_object(Bucket=bucket, Key=be.journal_prefix + "5-torn.json", Body=b'{"ty')
    view = backend(moto_s3.url, bucket, tmp_path).read()
    assert [o.id for o in view.operations] == ["op1"] and view.skipped_lines == 1


def test_note_from_a_machine_whose_clock_runs_behind_still_settles(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    be = backend(moto_s3.url, bucket, tmp_path)
    be.append(record("op1", "intent", 1.0))
    be.append(record("op1", "result", 2.0, outcome="failed"))
    behind = backend(moto_s3.url, bucket, tmp_path)
    behind.read()
    # Its own clock says 1970: the key still sorts after what it read.
    behind._last_ns = max(behind._last_ns, 0)
    key = behind._record_key()
    assert key > max(behind._cache)
    behind.append(record("op1", "note", 3.0, outcome="rolled-back", by="op2"))
    assert backend(moto_s3.url, bucket, tmp_path).read().operations[0].outcome == "rolled-back"


def test_reads_fetch_each_record_once(moto_s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    be = backend(moto_s3.url, bucket, tmp_path)
    for n in range(5):
        be.append(record(f"op{n}", "intent", float(n)))
    be.close()  # the cache is written once, when the command ends
    reader = backend(moto_s3.url, bucket, tmp_path / "other-machine")
    reader.read()
    # One for the snapshot (there is none: no locked operation wrote these), then each.
    assert reader.calls["GetObject"] == 6
    reader.read()
    assert reader.calls["GetObject"] == 6 and reader.calls["ListObjectsV2"] == 2
    reader.close()
    # The next command on either machine fetches nothing: records are never overwritten.
    for home in (tmp_path, tmp_path / "other-machine"):
        again = backend(moto_s3.url, bucket, home)
        assert len(again.read().operations) == 5 and again.calls["GetObject"] == 0
    # A cached record whose object is gone is not shown: the listing is the truth.
    first = sorted(reader._cache)[0]
    reader._client.delete_object(Bucket=bucket, Key=first)
    assert len(backend(moto_s3.url, bucket, tmp_path).read().operations) == 4


def locked_operations(be: S3Backend, count: int, first: int = 0) -> None:
    """``count`` operations of three records each, each under the lock (as commands do)."""
    for n in range(first, first + count):
        with be.lock(f"mxflip op{n}"):
            be.read()
            be.append(record(f"op{n}", "intent", float(n), kind="failover"))
            be.append(record(f"op{n}", "phase", float(n), phase="switch", status="done"))
            be.append(record(f"op{n}", "result", float(n), outcome="done"))


def test_a_new_machine_reads_the_journal_from_the_snapshot(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    writer = backend(moto_s3.url, bucket, tmp_path / "writer")
    locked_operations(writer, 5)
    writer.close()
    fresh = backend(moto_s3.url, bucket, tmp_path / "fresh")
    view = fresh.read()
    assert [o.id for o in view.operations] == [f"op{n}" for n in range(5)]
    assert all(o.outcome == "done" for o in view.operations)
    # One listing and one snapshot, not fifteen records.
    assert dict(fresh.calls) == {"ListObjectsV2": 1, "GetObject": 1}
    fresh.close()
    # A record written after the snapshot is fetched on its own; the rest still comes
    # from the snapshot (a stale snapshot costs fetches, nothing else).
    writer.append(record("op5", "intent", 5.0, kind="failover"))
    late = backend(moto_s3.url, bucket, tmp_path / "late")
    assert len(late.read().operations) == 6 and late.calls["GetObject"] == 2


def test_the_listing_is_the_truth_over_the_snapshot(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    writer = backend(moto_s3.url, bucket, tmp_path / "writer")
    locked_operations(writer, 3)
    gone = [k for k in sorted(writer._cache) if writer._cache[k]["op"] == "op1"]
    for key in gone:  # the snapshot still holds op1: it must not come back from there
        writer._client.delete_object(Bucket=bucket, Key=key)
    view = backend(moto_s3.url, bucket, tmp_path / "fresh").read()
    assert [o.id for o in view.operations] == ["op0", "op2"]


def test_a_damaged_snapshot_is_ignored_with_a_warning_then_replaced(
    moto_s3: MotoServer, bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = backend(moto_s3.url, bucket, tmp_path / "writer")
    locked_operations(writer, 2)
    name = writer._doc_key("journal-snapshot")
    for damage in (b'{"format": 1, "records": [["elsewhere/x", {}]]}', b"\x00not json"):
        writer._client.put_object(Bucket=bucket, Key=name, Body=damage)
        caplog.clear()
        fresh = backend(moto_s3.url, bucket, tmp_path / f"fresh-{len(damage)}")
        assert [o.id for o in fresh.read().operations] == ["op0", "op1"]
        assert fresh.calls["GetObject"] == 1 + 6  # the snapshot, then each record
        assert "journal snapshot" in caplog.text and "damaged" in caplog.text
    # The next operation (here on a machine that never saw the damage) replaces it.
    locked_operations(writer, 1, first=2)
    again = backend(moto_s3.url, bucket, tmp_path / "after")
    assert len(again.read().operations) == 3 and again.calls["GetObject"] == 1


def test_an_operation_costs_its_records_and_at_most_six_other_calls(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    other = backend(moto_s3.url, bucket, tmp_path / "other")
    locked_operations(other, 4)
    other.close()
    for n in (10, 11):  # a new machine, then the same one warm
        be = backend(moto_s3.url, bucket, tmp_path / "fresh")
        locked_operations(be, 1, first=n)
        be.close()
        records = 3
        assert sum(be.calls.values()) - records <= 6, dict(be.calls)


# ------------------------------------------------------------------ documents


def test_documents_are_written_only_at_the_version_read(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    be = backend(moto_s3.url, bucket, tmp_path)
    assert be.get("watch/example.com") is None
    v1 = be.put("watch/example.com", {"state": "ok"}, version=None)
    with pytest.raises(PreconditionFailed):
        be.put("watch/example.com", {"state": "x"}, version=None)
    v2 = be.put("watch/example.com", {"state": "suspect"}, version=v1)
    with pytest.raises(PreconditionFailed):
        be.put("watch/example.com", {"state": "stale"}, version=v1)
    doc = be.get("watch/example.com")
    assert doc is not None and doc.data == {"state": "suspect"} and doc.version == v2
    with pytest.raises(PreconditionFailed):
        be.delete("watch/example.com", version=v1)
    be.delete("watch/example.com", version=v2)
    assert be.get("watch/example.com") is None
    with pytest.raises(ValueError):
        be.get("../escape")


# ------------------------------------------------------------------ the lock


def test_second_lock_is_refused_with_the_holder(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    first = backend(moto_s3.url, bucket, tmp_path)
    assert first.holder() is None
    with first.lock("mxflip failover --all") as info:
        assert (first.holder() or "").startswith(f"pid {os.getpid()}, ")
        with pytest.raises(LockedError) as refused:
            backend(moto_s3.url, bucket, tmp_path).lock("mxflip failback").__enter__()
        text = str(refused.value)
        assert f"pid {os.getpid()}" in text and "'mxflip failover --all'" in text
        assert f"mxflip unlock --force {info.id} --reason TEXT" in text
        assert refused.value.exit_code == ExitCode.FAILURE
    with backend(moto_s3.url, bucket, tmp_path).lock("mxflip failback"):
        pass


def test_expired_lease_is_taken_over_and_journalled(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    clock = FakeClock(time.time())
    crashed = backend(moto_s3.url, bucket, tmp_path, clock=clock, lease=60.0)
    Lease(crashed, "lock", duration=60.0, clock=clock, command="mxflip failover").acquire()
    taker = backend(moto_s3.url, bucket, tmp_path, clock=clock, lease=60.0)
    with pytest.raises(LockedError):
        taker.lock("mxflip rollback").__enter__()
    clock.sleep(59)
    with pytest.raises(LockedError):
        taker.lock("mxflip rollback").__enter__()
    clock.sleep(1)
    with taker.lock("mxflip rollback") as info:
        keys = taker._client.list_objects_v2(Bucket=bucket, Prefix="team/journal/")["Contents"]
        (event,) = [
            json.loads(taker._client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
            for o in keys
        ]
        assert event["type"] == "lock" and event["event"] == "takeover"
        assert event["op"] == info.id and event["holder"]["command"] == "mxflip failover"


def test_the_holder_renews_its_lease_while_it_runs(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    holder = backend(moto_s3.url, bucket, tmp_path, lease=2.0)
    with holder.lock("mxflip failover"):
        first = holder.get("lock")
        assert first is not None
        deadline = time.monotonic() + 10
        while holder.calls["PutObject"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        now = holder.get("lock")
        assert now is not None and now.version != first.version
        assert now.data["expires_ts"] > first.data["expires_ts"]
        with pytest.raises(LockedError):
            backend(moto_s3.url, bucket, tmp_path, lease=2.0).lock("x").__enter__()
    assert holder.get("lock") is None and holder.problems == []


def test_force_unlock_needs_the_lock_id_and_is_journalled(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    be = backend(moto_s3.url, bucket, tmp_path)
    with pytest.raises(UsageError, match="no operation lock is held"):
        be.force_unlock("abc", "x")
    lease = Lease(be, "lock", duration=120, clock=FakeClock(time.time()), command="mxflip drain")
    lease.acquire()
    assert lease.info is not None
    with pytest.raises(UsageError, match=f"is {lease.info.id}, not nope"):
        be.force_unlock("nope", "x")
    held = be.force_unlock(lease.info.id, "laptop died mid-incident")
    assert held["command"] == "mxflip drain" and be.get("lock") is None
    reader = backend(moto_s3.url, bucket, tmp_path)
    listed = reader._client.list_objects_v2(Bucket=bucket, Prefix="team/journal/")["Contents"]
    body = json.loads(reader._client.get_object(Bucket=bucket, Key=listed[0]["Key"])["Body"].read())
    assert body["event"] == "force-unlock" and body["reason"] == "laptop died mid-incident"


def child(*args: str, home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.state_child", *args],
        cwd=ROOT,
        env={**child_environment(home), "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def read_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """One line from a child, bounded."""
    assert proc.stdout is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    assert box and box[0], f"child said nothing within {timeout} s"
    return box[0].strip()


def test_two_processes_race_for_the_lock_exactly_one_wins(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    procs = [child("race", moto_s3.url, bucket, home=tmp_path) for _ in range(2)]
    try:
        for trial in range(200):
            for p in procs:
                assert p.stdin is not None
                p.stdin.write(f"go {trial}\n")
                p.stdin.flush()
            said = sorted(read_line(p) for p in procs)
            assert said == [f"lost {trial}", f"won {trial}"], said
            for p in procs:
                assert p.stdin is not None
                p.stdin.write(f"release {trial}\n")
                p.stdin.flush()
            assert [read_line(p) for p in procs] == [f"released {trial}"] * 2
    finally:
        for p in procs:
            if p.stdin:
                p.stdin.close()
            p.wait(timeout=30)


def test_sigkilled_holder_is_taken_over_after_its_lease(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    holder = child("hold", moto_s3.url, bucket, "30", home=tmp_path)
    try:
        said = read_line(holder)
        assert said.startswith("held ")
        lock_id = said.split()[1]
        clock = FakeClock(time.time())
        other = backend(moto_s3.url, bucket, tmp_path, clock=clock, lease=30.0)
        with pytest.raises(LockedError, match=lock_id):
            other.lock("mxflip rollback").__enter__()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        with pytest.raises(LockedError, match=lock_id):  # killed, but its lease still runs
            other.lock("mxflip rollback").__enter__()
        clock.sleep(31)
        with other.lock("mxflip rollback") as info:
            assert info.id != lock_id
        view_events = [
            json.loads(other._client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
            for o in other._client.list_objects_v2(Bucket=bucket, Prefix="team/journal/")[
                "Contents"
            ]
        ]
        assert [(e["event"], e["holder"]["id"]) for e in view_events] == [("takeover", lock_id)]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)


def test_two_watchers_one_leader_and_takeover_when_it_dies(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    lease = 2.0
    first = child("leader", moto_s3.url, bucket, str(lease), "0.25", home=tmp_path)
    try:
        assert read_line(first).startswith("leader ")
        second = child("leader", moto_s3.url, bucket, str(lease), "0.25", home=tmp_path)
        try:
            assert read_line(second) == "follower"
            be = backend(moto_s3.url, bucket, tmp_path)
            observer = Leader(be, "watch", duration=lease, clock=FakeClock(time.time()))
            leading = observer.holder()
            assert leading is not None and leading.pid == first.pid
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            said = read_line(second, timeout=20)
            assert said.startswith("leader ")
            holder = observer.holder()
            assert holder is not None and holder.pid == second.pid
            # It took over only after the dead leader's lease expired.
            assert holder.since >= leading.expires - 0.5
        finally:
            second.kill()
            second.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=10)


def test_leader_step_in_process(moto_s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    clock = FakeClock(time.time())
    a = Leader(backend(moto_s3.url, bucket, tmp_path), "w", duration=10, clock=clock)
    b = Leader(backend(moto_s3.url, bucket, tmp_path), "w", duration=10, clock=clock)
    assert a.step() and not b.step()
    clock.sleep(6)
    assert a.step() and not b.step()  # renewed at t+6: good until t+16
    clock.sleep(9)
    assert not b.step()
    clock.sleep(2)
    assert b.step() and not a.step() and not a.is_leader
    b.resign()
    assert a.step()
    with pytest.raises(LeaseHeld):
        b.lease.acquire()


# ------------------------------------------------------------------ faults


def test_no_credentials(
    monkeypatch: pytest.MonkeyPatch, moto_s3: MotoServer, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StateError, match="no AWS credentials found") as err:
        backend(moto_s3.url, "mxflip-nocreds", tmp_path).read()
    assert err.value.exit_code == ExitCode.FAILURE and "credential chain" in str(err.value)


def test_bucket_missing(moto_s3: MotoServer, tmp_path: Path) -> None:
    with pytest.raises(StateError, match="the state bucket mxflip-absent does not exist"):
        backend(moto_s3.url, "mxflip-absent", tmp_path).lock("x").__enter__()


def test_endpoint_down_is_bounded(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    waits: list[float] = []
    be = S3Backend(state_config(url, "mxflip-x"), home=tmp_path, sleep=waits.append)
    with pytest.raises(StateError, match=f"cannot reach {url}") as err:
        be.read()
    assert be.calls["ListObjectsV2"] == 4 and len(waits) == 3
    assert "endpoint_url" in str(err.value)


@pytest.fixture
def proxy(moto_s3: MotoServer) -> Iterator[S3FaultProxy]:
    p = S3FaultProxy(moto_s3.port).start()
    yield p
    p.stop()


def test_throttling_is_retried_then_reported(
    proxy: S3FaultProxy, bucket: str, tmp_path: Path
) -> None:
    be = backend(proxy.url, bucket, tmp_path)
    proxy.inject("ListObjectsV2", 503, "SlowDown", "Please reduce your request rate", times=2)
    assert be.read().operations == []
    assert proxy.faulted["ListObjectsV2"] == 2 and be.calls["ListObjectsV2"] == 3
    proxy.inject("PutObject", 503, "SlowDown", "Please reduce your request rate", times=9)
    with pytest.raises(StateError, match="throttled PutObject and retries ran out"):
        be.lock("x").__enter__()


def test_access_denied_names_the_permissions_never_the_secret(
    proxy: S3FaultProxy, bucket: str, tmp_path: Path
) -> None:
    proxy.inject("PutObject", 403, "AccessDenied", "Access Denied", times=1)
    with pytest.raises(StateError) as err:
        backend(proxy.url, bucket, tmp_path).lock("x").__enter__()
    text = str(err.value)
    assert "was denied (AccessDenied)" in text and "s3:PutObject" in text
    assert FAKE_SECRET_KEY not in text and "AKIA" not in text


def test_losing_the_bucket_mid_operation_keeps_records_locally_then_settles(
    proxy: S3FaultProxy, bucket: str, tmp_path: Path
) -> None:
    be = backend(proxy.url, bucket, tmp_path)
    be.append(record("op1", "intent", 1.0))
    proxy.inject("PutObject", 500, "InternalError", "We encountered an internal error", times=8)
    be.append(record("op1", "phase", 2.0, phase="switch", status="done"))
    be.append(record("op1", "result", 3.0, outcome="done"))
    assert be.problems and PENDING_NAME in be.problems[0]
    pending = (tmp_path / PENDING_NAME).read_text().splitlines()
    assert [json.loads(line)["record"]["type"] for line in pending] == ["phase", "result"]
    # An intent is never kept aside: nothing may start that the team cannot see.
    proxy.inject("PutObject", 500, "InternalError", "We encountered an internal error", times=4)
    with pytest.raises(StateError):
        be.append(record("op2", "intent", 4.0))
    # The next command writes them first.
    later = backend(proxy.url, bucket, tmp_path)
    (op,) = later.read().operations
    assert op.outcome == "done" and not (tmp_path / PENDING_NAME).exists()


def test_pending_records_that_still_cannot_be_written_refuse_the_next_command(
    proxy: S3FaultProxy, bucket: str, tmp_path: Path
) -> None:
    be = backend(proxy.url, bucket, tmp_path)
    be.append(record("op1", "intent", 1.0))
    proxy.inject("PutObject", 500, "InternalError", "internal", times=4)
    be.append(record("op1", "result", 3.0, outcome="done"))
    proxy.inject("PutObject", 403, "AccessDenied", "Access Denied", times=1)
    with pytest.raises(StateError, match=r"1 journal record\(s\) from an earlier operation"):
        backend(proxy.url, bucket, tmp_path).lock("x").__enter__()
    assert (tmp_path / PENDING_NAME).exists()


def test_racing_takeovers_of_an_expired_lease_have_one_winner(
    moto_s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    clock = FakeClock(time.time())
    stores = [backend(moto_s3.url, bucket, tmp_path) for _ in range(4)]
    Lease(stores[0], "lock", duration=10, clock=clock, command="crashed").acquire()

    def take(lease: Lease, barrier: threading.Barrier, won: list[str]) -> None:
        barrier.wait(timeout=10)
        if lease.try_acquire():
            won.append(lease.command)

    for trial in range(20):
        clock.sleep(11)  # the last holder "crashed": its lease ran out
        takers = [
            Lease(store, "lock", duration=10, clock=clock, command=f"taker {trial}.{n}")
            for n, store in enumerate(stores)
        ]
        barrier = threading.Barrier(len(takers))
        won: list[str] = []
        threads = [threading.Thread(target=take, args=(t, barrier, won)) for t in takers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(won) == 1, won


@functools.cache
def client_for(url: str) -> Any:
    """One botocore client per moto server for the property test (a client takes 0.2 s)."""
    return _make_client(state_config(url, "unused"))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=12), st.floats(-1e9, 1e10, allow_nan=False)),
        min_size=1,
        max_size=8,
    )
)
def test_listing_order_is_append_order_whatever_the_timestamps(
    moto_s3: MotoServer, bucket: str, tmp_path: Path, phases: list[tuple[str, float]]
) -> None:
    """Records carry the writer's (possibly injected, repeated or backwards) clock; their
    object names still list in the order they were appended."""
    prefix = f"p{time.monotonic_ns()}"
    client = client_for(moto_s3.url)
    be = backend(moto_s3.url, bucket, tmp_path, prefix=prefix, client=client)
    be.append(record("op", "intent", 5.0))
    for name, ts in phases:
        be.append(record("op", "phase", ts, phase=name, status="done"))
    reader = backend(moto_s3.url, bucket, tmp_path / "reader", prefix=prefix, client=client)
    (op,) = reader.read().operations
    assert [p["phase"] for p in op.phases] == [name for name, _ in phases]
