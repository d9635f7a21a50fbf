"""The S3 double (tests/support/s3double.py) answers as moto does, for everything mxflip's
S3 state backend relies on: each case runs against both servers and asserts the same
literal outcome, on the wire (mxflip's own botocore client) and through the backend (the
lock, documents, journal, snapshot). The fault matrix runs on the double on the strength
of this test; races between processes stay on moto (tests/test_state_s3*.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mxflip.state.base import PreconditionFailed
from mxflip.state.s3 import S3Backend, _make_client
from tests.support.moto_route53 import MotoServer
from tests.support.moto_s3 import (
    moto_s3_fixture,  # noqa: F401  (the moto_s3 fixture)
    new_bucket,
    s3_environment,
    state_config,
)
from tests.support.s3double import (
    S3Double,
    s3_double_fixture,  # noqa: F401  (the s3_double fixture)
)

pytestmark = pytest.mark.real_server

#: A fresh bucket on the server under test; returns (endpoint URL, bucket name).
NewBucket = Callable[[], tuple[str, str]]


@pytest.fixture(params=["moto", "double"])
def fresh(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> NewBucket:
    s3_environment(monkeypatch, tmp_path)
    if request.param == "moto":
        moto: MotoServer = request.getfixturevalue("moto_s3")
        return lambda: (moto.url, new_bucket(moto))
    double: S3Double = request.getfixturevalue("s3_double")

    def make() -> tuple[str, str]:
        name = f"mxflip-{uuid.uuid4().hex[:12]}"
        double.create_bucket(name)
        return double.url, name

    return make


def outcome(client: Any, bucket: str, operation: str, **params: Any) -> tuple[Any, ...]:
    """What the caller sees: ("ok", the answer without metadata and times) or ("error",
    code, HTTP status)."""
    import botocore.exceptions as bce

    try:
        reply = getattr(client, operation)(Bucket=bucket, **params)
    except bce.ClientError as exc:
        status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
        return ("error", exc.response["Error"].get("Code"), status)
    reply.pop("ResponseMetadata", None)
    reply.pop("LastModified", None)
    if "Body" in reply:
        reply["Body"] = reply["Body"].read()
    for entry in reply.get("Contents", []):
        entry.pop("LastModified", None)
    reply.pop("Name", None)  # the bucket's name
    if "NextContinuationToken" in reply:  # opaque: only whether there is one
        reply["NextContinuationToken"] = "…"
    return ("ok", reply)


def md5(body: bytes) -> str:
    import hashlib

    return f'"{hashlib.md5(body).hexdigest()}"'


def test_conditional_writes_reads_and_deletes(fresh: NewBucket) -> None:
    url, bucket = fresh()
    client = _make_client(state_config(url, bucket))
    put = "put_object"
    assert outcome(client, bucket, put, Key="d/1", Body=b"x", IfNoneMatch="*") == (
        "ok",
        {"ETag": md5(b"x")},
    )
    assert outcome(client, bucket, put, Key="d/1", Body=b"y", IfNoneMatch="*") == (
        "error",
        "PreconditionFailed",
        412,
    )
    assert outcome(client, bucket, put, Key="d/1", Body=b"y", IfMatch='"0"') == (
        "error",
        "PreconditionFailed",
        412,
    )
    assert outcome(client, bucket, put, Key="d/2", Body=b"y", IfMatch='"0"') == (
        "error",
        "NoSuchKey",
        404,
    )
    assert outcome(
        client,
        bucket,
        put,
        Key="d/1",
        Body=b"z",
        IfMatch=md5(b"x"),
        ContentType="application/json",
        Metadata={"upto": "0001-x"},
    ) == ("ok", {"ETag": md5(b"z")})
    seen = {
        "AcceptRanges": "bytes",
        "ContentLength": 1,
        "ETag": md5(b"z"),
        "ContentType": "application/json",
        "Metadata": {"upto": "0001-x"},
    }
    assert outcome(client, bucket, "head_object", Key="d/1") == ("ok", seen)
    assert outcome(client, bucket, "get_object", Key="d/1") == ("ok", {**seen, "Body": b"z"})
    assert outcome(client, bucket, "head_object", Key="d/9") == ("error", "404", 404)
    assert outcome(client, bucket, "get_object", Key="d/9") == ("error", "NoSuchKey", 404)
    assert outcome(client, bucket, "delete_object", Key="d/1", IfMatch='"0"') == (
        "error",
        "PreconditionFailed",
        412,
    )
    assert outcome(client, bucket, "delete_object", Key="d/9", IfMatch='"0"') == (
        "error",
        "NoSuchKey",
        404,
    )
    assert outcome(client, bucket, "delete_object", Key="d/1", IfMatch=md5(b"z")) == ("ok", {})
    assert outcome(client, bucket, "get_object", Key="d/1") == ("error", "NoSuchKey", 404)
    assert outcome(client, bucket, "delete_object", Key="d/1") == ("ok", {})
    absent = _make_client(state_config(url, "mxflip-absent"))
    assert outcome(absent, "mxflip-absent", "get_object", Key="x") == (
        "error",
        "NoSuchBucket",
        404,
    )


def test_listing_pages_by_prefix_in_key_order(fresh: NewBucket) -> None:
    url, bucket = fresh()
    client = _make_client(state_config(url, bucket))
    keys = ["j/b", "j/a+b c", "j/a", "j/c%", "k/a", "j/a/z"]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    expected = sorted((k for k in keys if k.startswith("j/")), key=str.encode)
    pages: list[Any] = []
    token: str | None = None
    for _ in range(10):  # bounded
        params: dict[str, Any] = {"Prefix": "j/", "MaxKeys": 2}
        if token:
            params["ContinuationToken"] = token
        reply = client.list_objects_v2(Bucket=bucket, **params)
        pages.append(outcome(client, bucket, "list_objects_v2", **params))
        token = reply.get("NextContinuationToken")
        if not reply["IsTruncated"]:
            break
    listed = [e["Key"] for _, page in pages for e in page.get("Contents", [])]
    assert listed == expected
    assert [(p["KeyCount"], p["IsTruncated"], "NextContinuationToken" in p) for _, p in pages] == [
        (2, True, True),
        (2, True, True),
        (1, False, False),
    ]
    first = pages[0][1]
    assert {k: v for k, v in first.items() if k != "Contents"} == {
        "IsTruncated": True,
        "Prefix": "j/",
        "MaxKeys": 2,
        "EncodingType": "url",
        "KeyCount": 2,
        "NextContinuationToken": "…",
    }
    assert first["Contents"][0] == {
        "Key": expected[0],
        "ETag": md5(expected[0].encode()),
        "Size": len(expected[0]),
        "StorageClass": "STANDARD",
    }
    assert outcome(client, bucket, "list_objects_v2", Prefix="none/", MaxKeys=1000) == (
        "ok",
        {
            "IsTruncated": False,
            "Prefix": "none/",
            "MaxKeys": 1000,
            "EncodingType": "url",
            "KeyCount": 0,
        },
    )


def test_the_backend_end_to_end(fresh: NewBucket, tmp_path: Path) -> None:
    """What the fault matrix does with the backend: the lock, records written under it,
    the snapshot, documents with versions, and a reader on another machine."""
    url, bucket = fresh()

    def backend(home: Path) -> S3Backend:
        return S3Backend(state_config(url, bucket), home=home, sleep=lambda s: None)

    be = backend(tmp_path / "a")
    with be.lock("mxflip failover --all") as held:
        assert held.id
        be.append({"type": "intent", "op": "op1", "ts": 1.0, "kind": "failover", "steps": []})
        be.append({"type": "phase", "op": "op1", "ts": 2.0, "phase": "switch", "status": "done"})
        be.append({"type": "result", "op": "op1", "ts": 3.0, "outcome": "done"})
    assert be.holder() is None
    assert be.problems == []
    be.close()
    other = backend(tmp_path / "b")
    (op,) = other.read().operations
    assert op.outcome == "done" and op.kind == "failover"
    # The snapshot written at the lock's release gave the new machine every record.
    assert other.calls["GetObject"] == 1 and other.calls["ListObjectsV2"] == 1
    version = other.put("doc", {"n": 1}, version=None)
    with pytest.raises(PreconditionFailed):
        other.put("doc", {"n": 2}, version=None)
    with pytest.raises(PreconditionFailed):
        other.put("doc", {"n": 2}, version='"0"')
    second = other.put("doc", {"n": 2}, version=version)
    got = other.get("doc")
    assert got is not None and got.data == {"n": 2} and got.version == second
    with pytest.raises(PreconditionFailed):
        other.delete("doc", version=version)
    other.delete("doc", version=second)
    assert other.get("doc") is None
    with pytest.raises(PreconditionFailed):
        other.delete("doc", version=second)
    other.close()
