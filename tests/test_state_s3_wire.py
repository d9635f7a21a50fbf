"""What the S3 state backend puts on the wire, and in which order, against moto's server on
loopback: writes send their body with their headers (no ``Expect: 100-continue`` round
trip), and records written in the background while the lock is held still land before
the DNS change they announce and before the lock is released."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from mxflip.engine import Engine
from mxflip.plan import PlanOptions
from mxflip.provider import Change, ChangeHandle
from mxflip.records import RRset
from mxflip.state.s3 import S3Backend
from mxflip.state.s3client import send_body_with_headers
from tests.support.bind import BindServer
from tests.support.engine import (
    BACKUP,
    FakeClock,
    FlakyProvider,
    domain_names,
    engine_config,
    lab_provider,
    live,
    ready,
    seed,
)
from tests.support.moto_route53 import MotoServer
from tests.support.moto_s3 import (
    S3FaultProxy,
    moto_s3_fixture,  # noqa: F401  (the moto_s3 fixture)
    new_bucket,
    s3_environment,
    state_config,
)


class Recorder(S3FaultProxy):
    """The fault proxy, noting each request: operation, key, Expect header, and when it
    arrived and was answered (``time.monotonic``)."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        # The snapshot's version is asked with a HEAD (this proxy's own handler class).
        handler = self._server.RequestHandlerClass
        handler.do_HEAD = handler.do_GET  # type: ignore[attr-defined]
        self.requests: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        entry = {
            "op": self.classify(request.command, request.path),
            "path": request.path.split("?")[0],
            "expect": request.headers.get("Expect"),
            "start": time.monotonic(),
        }
        with self._log_lock:  # noted on arrival: complete once the client has its answer
            self.requests.append(entry)
        request.mx_entry = entry  # type: ignore[attr-defined]
        super()._handle(request)

    def _reply(  # type: ignore[override]
        self, request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        # Answered: stamped before the client can see the answer and send its next request.
        getattr(request, "mx_entry", {})["end"] = time.monotonic()
        S3FaultProxy._reply(request, status, headers, body)


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    return s3_environment(monkeypatch, tmp_path)


@pytest.fixture
def recorder(moto_s3: MotoServer) -> Iterator[Recorder]:
    proxy = Recorder(moto_s3.port).start()
    yield proxy
    proxy.stop()


def backend(url: str, bucket: str, home: Path) -> S3Backend:
    return S3Backend(state_config(url, bucket), home=home, sleep=lambda s: None)


def listed_records(be: S3Backend) -> int:
    reply = be._client.list_objects_v2(Bucket=be.bucket, Prefix=be.journal_prefix)
    return len(reply.get("Contents", []))


def test_writes_send_their_body_with_their_headers(
    moto_s3: MotoServer, recorder: Recorder, tmp_path: Path
) -> None:
    bucket = new_bucket(moto_s3)
    be = backend(recorder.url, bucket, tmp_path)
    with be.lock("mxflip failover"):
        be.read()  # the unsettled check every changing command makes first
        be.append({"type": "intent", "op": "op1", "ts": 1.0, "kind": "failover"})
        be.append({"type": "result", "op": "op1", "ts": 2.0, "outcome": "done"})
        be.put("watch/example.com", {"state": "ok"}, version=None)
    be.close()
    puts = [r for r in recorder.requests if r["op"] == "PutObject"]
    # the lock, two records, the document, the snapshot
    assert len(puts) == 5 and all(r["expect"] is None for r in puts)
    other = backend(moto_s3.url, bucket, tmp_path / "other")
    assert [o.outcome for o in other.read().operations] == ["done"]
    assert other.get("watch/example.com") is not None


def test_the_handler_leaves_requests_without_the_header_alone() -> None:
    # A botocore that no longer adds the header (or builds params differently): no-op.
    params: dict[str, Any] = {"headers": {"Content-Type": "application/json"}}
    send_body_with_headers(params)
    assert params == {"headers": {"Content-Type": "application/json"}}
    send_body_with_headers({"url": "http://127.0.0.1/"})
    with_expect: dict[str, Any] = {"headers": {"Expect": "100-continue", "X": "1"}}
    send_body_with_headers(with_expect)
    assert with_expect == {"headers": {"X": "1"}}


class Watching(FlakyProvider):
    """A provider that, before each DNS write, counts the records another client sees in
    the bucket against the records appended so far."""

    def __init__(self, inner: Any, be: S3Backend, seen: S3Backend) -> None:
        super().__init__(inner, fail_on=0)
        self.be = be
        self.seen = seen
        self.checks: list[tuple[int, int]] = []

    def apply(self, zone: str, changes: Sequence[Change]) -> ChangeHandle:
        appended = self.be.calls["PutObject"] - 1  # all but the lock
        self.checks.append((appended, listed_records(self.seen)))
        return super().apply(zone, changes)


def test_background_records_land_before_each_dns_change_and_before_the_release(
    engine_bind: BindServer, moto_s3: MotoServer, recorder: Recorder, tmp_path: Path
) -> None:
    names = domain_names(2)
    seed(engine_bind, names)
    config = engine_config(engine_bind, tmp_path, names)
    bucket = new_bucket(moto_s3)
    be = backend(recorder.url, bucket, tmp_path / "home")
    observer = backend(moto_s3.url, bucket, tmp_path / "observer")
    provider = Watching(lab_provider(engine_bind), be, observer)
    engine = Engine(config, be, clock=FakeClock(), readiness=ready, providers={"lab": provider})
    with be.lock("mxflip failover --all"):
        be.read()
        plan = asyncio.run(
            engine.plan_switch(
                "failover",
                list(config.domains.values()),
                PlanOptions(reason="wire order", restore_ttl_after=60.0),
            )
        )
        result = asyncio.run(engine.execute(plan))
    engine.close()
    be.close()
    assert result.outcome == "done"
    assert live(engine_bind, names) == {n: RRset.of(n, 3600, BACKUP) for n in names}
    # pre-lower, switch and raise-the-TTL writes: each saw every record appended before it
    assert len(provider.checks) >= 3
    assert all(appended == listed for appended, listed in provider.checks), provider.checks
    # The lock is released only after the last record landed.
    journal = [r for r in recorder.requests if "/journal/" in r["path"]]
    (release,) = [r for r in recorder.requests if r["op"] == "DeleteObject"]
    assert journal and release["start"] >= max(r["end"] for r in journal)
    view = backend(moto_s3.url, bucket, tmp_path / "fresh").read()
    (op,) = view.operations
    assert op.outcome == "done" and not view.skipped_lines
    assert listed_records(observer) == be.calls["PutObject"] - 2  # not the lock, snapshot


def three_operations(be: S3Backend) -> None:
    for n in range(3):
        with be.lock(f"mxflip op{n}"):
            be.read()
            be.append({"type": "intent", "op": f"op{n}", "ts": float(n), "kind": "failover"})
            be.append({"type": "result", "op": f"op{n}", "ts": float(n), "outcome": "done"})
    be.close()


def test_a_new_machine_fetches_the_snapshot_while_it_takes_the_lock(
    moto_s3: MotoServer, recorder: Recorder, tmp_path: Path
) -> None:
    bucket = new_bucket(moto_s3)
    first = backend(recorder.url, bucket, tmp_path / "first")
    with first.lock("mxflip op"):  # an empty journal: the snapshot is absent (404)
        assert first.read().operations == []
        first.append({"type": "intent", "op": "op", "ts": 0.0, "kind": "failover"})
    first.close()
    # Its absence, learnt while taking the lock, spares the snapshot write a HEAD.
    assert dict(first.calls) == {
        "GetObject": 1,
        "ListObjectsV2": 1,
        "PutObject": 3,
        "DeleteObject": 1,
    }
    three_operations(backend(moto_s3.url, bucket, tmp_path / "writer"))
    fresh = backend(recorder.url, bucket, tmp_path / "fresh")
    with fresh.lock("mxflip check"):
        assert [o.id for o in fresh.read().operations] == ["op", "op0", "op1", "op2"]
    fresh.close()
    assert dict(fresh.calls) == {
        "GetObject": 1,
        "ListObjectsV2": 1,
        "PutObject": 1,
        "DeleteObject": 1,
    }


def test_a_snapshot_prefetch_that_fails_costs_only_fetches(
    moto_s3: MotoServer, recorder: Recorder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = new_bucket(moto_s3)
    three_operations(backend(moto_s3.url, bucket, tmp_path / "writer"))
    recorder.inject("GetObject", 403, "AccessDenied", "Access Denied", times=1)
    fresh = backend(recorder.url, bucket, tmp_path / "fresh")
    with fresh.lock("mxflip check"):
        view = fresh.read()
    fresh.close()
    assert [o.id for o in view.operations] == ["op0", "op1", "op2"] and not view.skipped_lines
    assert "cannot read the journal snapshot" in caplog.text
    assert fresh.calls["GetObject"] == 1 + 6  # the refused snapshot, then each record
