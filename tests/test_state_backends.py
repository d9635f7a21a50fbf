"""One contract, both state backends: journal records in and out, documents written only at
the version read, a bounded read-modify-write, leader election with an injected clock.
The local backend runs on files in tmp_path; the S3 backend on moto's server."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxflip.config import StateConfig
from mxflip.journal import LockedError
from mxflip.state import PreconditionFailed, StateBackend, open_state, update_document
from mxflip.state.base import check_key
from mxflip.state.lease import Leader
from mxflip.state.local import LocalBackend
from mxflip.state.s3 import S3Backend
from tests.support.engine import FakeClock
from tests.support.moto_s3 import (
    MotoServer,
    moto_s3_fixture,  # noqa: F401  (the moto_s3 fixture)
    new_bucket,
    s3_environment,
    state_config,
)


@pytest.fixture(params=["local", "s3"])
def make(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A factory of backends sharing one store (two processes, or two machines)."""
    if request.param == "local":
        return lambda: LocalBackend(tmp_path / "state" / "journal.jsonl")
    s3_environment(monkeypatch, tmp_path)
    moto_s3: MotoServer = request.getfixturevalue("moto_s3")
    bucket = new_bucket(moto_s3)
    counter = iter(range(1000))
    return lambda: S3Backend(
        state_config(moto_s3.url, bucket),
        home=tmp_path / f"home{next(counter)}",
        sleep=lambda s: None,
    )


def test_journal_round_trip(make: Any) -> None:
    a, b = make(), make()
    a.append({"type": "intent", "op": "20270101T000000Z-aaaaaa", "ts": 1.0, "steps": []})
    b.append({"type": "result", "op": "20270101T000000Z-aaaaaa", "ts": 2.0, "outcome": "failed"})
    (op,) = a.read().operations
    assert op.outcome == "failed" and op.unsettled


def test_documents_with_preconditions(make: Any) -> None:
    a, b = make(), make()
    assert a.get("watch/example.com") is None
    v1 = a.put("watch/example.com", {"n": 1}, version=None)
    doc = b.get("watch/example.com")
    assert doc is not None and doc.data == {"n": 1} and doc.version == v1
    with pytest.raises(PreconditionFailed):
        b.put("watch/example.com", {"n": 9}, version=None)
    v2 = b.put("watch/example.com", {"n": 2}, version=v1)
    with pytest.raises(PreconditionFailed):
        a.put("watch/example.com", {"n": 3}, version=v1)
    with pytest.raises(PreconditionFailed):
        a.delete("watch/example.com", version=v1)
    a.delete("watch/example.com", version=v2)
    assert b.get("watch/example.com") is None


def test_update_document_retries_when_another_writer_wins(make: Any) -> None:
    a, b = make(), make()
    raced = []

    def bump(data: dict[str, Any] | None) -> dict[str, Any]:
        if not raced:  # another writer slips in between our read and our write
            raced.append(b.put("counter", {"n": 100}, version=None))
        return {"n": (data or {"n": 0})["n"] + 1}

    data, version = update_document(a, "counter", bump)
    assert data == {"n": 101}
    doc = b.get("counter")
    assert doc is not None and doc.data == {"n": 101} and doc.version == version


def test_concurrent_read_modify_writes_lose_nothing(make: Any) -> None:
    backends = [make() for _ in range(4)]
    backends[0].put("counter", {"n": 0}, version=None)

    def work(be: StateBackend) -> None:
        for _ in range(5):
            update_document(be, "counter", lambda d: {"n": (d or {"n": 0})["n"] + 1}, attempts=50)

    threads = [threading.Thread(target=work, args=(be,)) for be in backends]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    doc = backends[0].get("counter")
    assert doc is not None and doc.data == {"n": 20}


def test_leader_election(make: Any) -> None:
    clock = FakeClock(time.time())
    one = Leader(make(), "watch", duration=30, clock=clock)
    two = Leader(make(), "watch", duration=30, clock=clock)
    assert one.step() and not two.step()
    holder = two.holder()
    assert holder is not None and holder.command == "mxflip watch"
    clock.sleep(29)
    assert not two.step()
    clock.sleep(2)  # the leader stopped renewing (it died): its lease ran out
    assert two.step() and not one.step()
    assert not one.is_leader and two.is_leader


def test_operation_lock_refuses_a_second_holder(make: Any) -> None:
    a, b = make(), make()
    with a.lock("mxflip failover --all"), pytest.raises(LockedError, match="'mxflip failover"):
        b.lock("mxflip failback --all").__enter__()
    with b.lock("mxflip failback --all"):
        pass


def test_open_state_picks_the_configured_backend(tmp_path: Path) -> None:
    from mxflip.config import Config

    local = Config(path=None, providers={}, domains={})
    assert isinstance(open_state(local, journal_path=tmp_path / "j.jsonl"), LocalBackend)
    shared = Config(
        path=None,
        providers={},
        domains={},
        state=StateConfig(backend="s3", bucket="b-state", endpoint_url="http://127.0.0.1:9"),
    )
    be = open_state(shared, journal_path=tmp_path / "j.jsonl")
    assert isinstance(be, S3Backend) and be.path == "s3://b-state/mxflip/"
    assert be.home == tmp_path


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40))
def test_document_keys_never_escape(key: str) -> None:
    try:
        check_key(key)
    except ValueError:
        return
    assert ".." not in key and not key.startswith("/") and "\\" not in key
    assert key == key.lower() and all(part for part in key.split("/"))


def test_the_s3_backend_is_imported_only_when_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mxflip --help`` and commands on the local backend never load botocore."""
    import shutil

    from tests.test_startup_imports import LAB_KEY, ROOT, loaded_by

    folder = tmp_path / "rfc2136"
    shutil.copytree(ROOT / "examples" / "rfc2136", folder)
    (folder / "lab.key").write_text(LAB_KEY)
    monkeypatch.setenv("MXFLIP_JOURNAL", str(tmp_path / "state" / "journal.jsonl"))
    assert loaded_by("--help")[0] == []
    loaded, out = loaded_by("-c", str(folder / "mxflip.toml"), "history", "--json")
    assert not [m for m in loaded if m.startswith(("boto3", "botocore"))]
    assert '"operations": []' in out
