"""The lean botocore client of the S3 state backend: the loader data it keeps for the next
command is trimmed to what mxflip calls, rebuilt when damaged, and the client built from it
works against moto's server on loopback like a stock one."""

from __future__ import annotations

from pathlib import Path

import pytest

from mxflip.state.s3client import OPERATIONS, make_client, trim_model
from tests.support.moto_route53 import MotoServer
from tests.support.moto_s3 import (
    moto_s3_fixture,  # noqa: F401  (the moto_s3 fixture)
    new_bucket,
    s3_environment,
    state_config,
)


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s3_environment(monkeypatch, tmp_path)


def data_files(home: Path) -> list[Path]:
    return sorted(home.glob("s3-client-*.json"))


def round_trip(client: object, bucket: str) -> bytes:
    client.put_object(Bucket=bucket, Key="k", Body=b"v", IfNoneMatch="*")  # type: ignore[attr-defined]
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]  # type: ignore[attr-defined]
    assert [o["Key"] for o in listed] == ["k"]
    body: bytes = client.get_object(Bucket=bucket, Key="k")["Body"].read()  # type: ignore[attr-defined]
    client.delete_object(Bucket=bucket, Key="k")  # type: ignore[attr-defined]
    return body


def test_the_kept_data_builds_a_working_client(moto_s3: MotoServer, tmp_path: Path) -> None:
    settings = state_config(moto_s3.url, "unused")
    first = make_client(settings, home=tmp_path)
    (kept,) = data_files(tmp_path)
    assert kept.stat().st_size < 400_000  # botocore's own S3 model alone is ~1.3 MB
    second = make_client(settings, home=tmp_path)  # built from the kept data
    names = {"get_object", "head_object", "put_object", "delete_object", "list_objects_v2"}
    assert names <= set(dir(second)) and "copy_object" not in dir(second)
    assert "copy_object" in dir(first)  # the first one was stock
    for client in (first, second):
        bucket = new_bucket(moto_s3)
        assert round_trip(client, bucket) == b"v"
        assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


@pytest.mark.parametrize("damage", [b"", b"{not json", b'{"format": 1, "entries": 7}'])
def test_damaged_data_is_rebuilt(moto_s3: MotoServer, tmp_path: Path, damage: bytes) -> None:
    settings = state_config(moto_s3.url, "unused")
    make_client(settings, home=tmp_path)
    (kept,) = data_files(tmp_path)
    good = kept.read_bytes()
    kept.write_bytes(damage)
    client = make_client(settings, home=tmp_path)
    assert round_trip(client, new_bucket(moto_s3)) == b"v"
    assert kept.read_bytes() == good


def test_the_trimmed_model_holds_every_shape_its_operations_reach() -> None:
    import botocore.loaders

    model = botocore.loaders.create_loader().load_service_model("s3", "service-2")
    trimmed = trim_model(model)
    assert set(trimmed["operations"]) == set(OPERATIONS)
    assert trimmed["metadata"] == model["metadata"]
    shapes = trimmed["shapes"]
    # A listed object is read for its key only (the parser skips what the model lacks).
    assert list(shapes["Object"]["members"]) == ["Key"]
    for shape in shapes.values():
        assert "documentation" not in shape
        refs = [shape.get("member"), shape.get("key"), shape.get("value")]
        refs += list(shape.get("members", {}).values())
        for ref in refs:
            if isinstance(ref, dict):
                assert ref["shape"] in shapes
    for op in trimmed["operations"].values():
        for ref in (op.get("input"), op.get("output"), *op.get("errors", [])):
            if ref:
                assert ref["shape"] in shapes


def sent_and_received(client: object, bucket: str) -> list[tuple[object, ...]]:
    """What ``client`` sends for the calls the backend makes (headers that differ per
    request left out) and what it returns or raises."""
    sent: list[tuple[object, ...]] = []
    varying = {"authorization", "x-amz-date", "amz-sdk-invocation-id", "user-agent"}

    def record(request: object, **_: object) -> None:
        headers = {
            k.lower(): v
            for k, v in request.headers.items()  # type: ignore[attr-defined]
            if k.lower() not in varying
        }
        body = request.body  # type: ignore[attr-defined]
        body = body.getvalue() if hasattr(body, "getvalue") else body  # bytes sent as a file
        sent.append((request.method, request.url, sorted(headers.items()), body))  # type: ignore[attr-defined]

    client.meta.events.register("before-send", record)  # type: ignore[attr-defined]
    out: list[tuple[object, ...]] = []
    put = client.put_object(  # type: ignore[attr-defined]
        Bucket=bucket, Key="p/journal/1.json", Body=b"{}", IfNoneMatch="*"
    )
    out.append(("put", put["ETag"]))
    listed = client.list_objects_v2(Bucket=bucket, Prefix="p/journal/", MaxKeys=1000)  # type: ignore[attr-defined]
    out.append(("list", [o["Key"] for o in listed["Contents"]], listed["IsTruncated"]))
    head = client.head_object(Bucket=bucket, Key="p/journal/1.json")  # type: ignore[attr-defined]
    out.append(("head", head["ETag"], head["ContentLength"]))
    got = client.get_object(Bucket=bucket, Key="p/journal/1.json")  # type: ignore[attr-defined]
    out.append(("get", got["Body"].read(), got["ETag"]))
    for call in (
        lambda: client.put_object(
            Bucket=bucket, Key="p/journal/1.json", Body=b"x", IfNoneMatch="*"
        ),  # type: ignore[attr-defined]
        lambda: client.get_object(Bucket=bucket, Key="p/absent.json"),  # type: ignore[attr-defined]
    ):
        with pytest.raises(Exception) as caught:
            call()
        out.append(("error", type(caught.value).__name__, caught.value.response["Error"]["Code"]))  # type: ignore[attr-defined]
    client.delete_object(Bucket=bucket, Key="p/journal/1.json", IfMatch=put["ETag"])  # type: ignore[attr-defined]
    return [*sent, *out]


def test_the_lean_session_sends_and_parses_like_a_stock_one(
    moto_s3: MotoServer, tmp_path: Path
) -> None:
    """The session without other services' built-in handlers makes the same requests
    and reads the same replies as botocore's own session."""
    import botocore.session

    from mxflip.state.s3client import s3_session

    def client(session: object) -> object:
        return session.create_client(  # type: ignore[attr-defined]
            "s3", region_name="us-east-1", endpoint_url=moto_s3.url
        )

    stock = sent_and_received(client(botocore.session.get_session()), new_bucket(moto_s3))
    lean = sent_and_received(client(s3_session()), new_bucket(moto_s3))
    assert len(lean) == len(stock) > 8
    for ours, theirs in zip(lean, stock, strict=True):
        assert _unbucket(ours) == _unbucket(theirs)


def _unbucket(item: tuple[object, ...]) -> str:
    import re

    return re.sub(r"mxflip-[0-9a-f]+", "BUCKET", repr(item))


@pytest.mark.parametrize(
    ("event", "kept"),
    [
        ("before-call", True),
        ("before-call.s3", True),
        ("before-parameter-build.s3.PutObject", True),
        ("before-parse.*", True),
        ("needs-retry.s3.*", True),
        ("docs.*.s3.CopyObject.complete-section", True),
        ("before-call.ec2", False),
        ("after-call.s3-control", False),
        ("docs.*.glacier.*.complete-section", False),
        ("before-parameter-build.route53", False),
    ],
)
def test_which_built_in_handlers_an_s3_client_keeps(event: str, kept: bool) -> None:
    from mxflip.state.s3client import fires_for_s3

    assert fires_for_s3(event) is kept


def test_endpoint_rules_keep_every_parameter_a_rule_reads() -> None:
    from mxflip.state.s3client import drop_unread_parameters

    ruleset = {
        "parameters": {n: {"type": "String"} for n in ("Bucket", "Region", "Key", "Endpoint")},
        "rules": [
            {
                "conditions": [{"fn": "isSet", "argv": [{"ref": "Region"}]}],
                "endpoint": {"url": "https://{Bucket}.s3.{url#authority}"},
            },
            {"conditions": [], "error": "no {Endpoint} here"},
        ],
    }
    drop_unread_parameters(ruleset)
    assert list(ruleset["parameters"]) == ["Bucket", "Region", "Endpoint"]
    unread = {"parameters": {"Key": {"type": "String"}}, "rules": []}
    drop_unread_parameters(unread)  # no rules at all: nothing is judged unread
    assert list(unread["parameters"]) == ["Key"]


@pytest.mark.parametrize(
    "params",
    [
        {"Bucket": "mxflip-state", "Region": "eu-west-1"},
        {"Bucket": "mxflip.state.example", "Region": "us-east-1", "UseFIPS": True},
        {"Bucket": "mxflip-state", "Region": "us-west-2", "UseDualStack": True},
        {"Bucket": "mxflip-state", "Region": "us-east-1", "Endpoint": "http://127.0.0.1:9000"},
        {"Bucket": "mxflip-state", "Region": "us-east-1", "ForcePathStyle": True},
        {"Bucket": "mxflip-state", "Region": "us-east-1", "Accelerate": True},
        {"Bucket": "arn:aws:s3:us-east-1:123456789012:accesspoint/ap", "Region": "us-east-1"},
        {"Bucket": "mxflip--use1-az4--x-s3", "Region": "us-east-1"},
        {"Region": "us-east-1"},
    ],
)
def test_trimmed_endpoint_rules_resolve_as_botocores_own(params: dict[str, object]) -> None:
    """Dropping the parameters no rule reads changes no endpoint, whatever the key."""
    import copy

    import botocore.loaders
    from botocore.endpoint_provider import EndpointProvider
    from botocore.exceptions import EndpointResolutionError

    from mxflip.state.s3client import RULESET, drop_unread_parameters

    loader = botocore.loaders.create_loader()
    full = loader.load_service_model("s3", RULESET)
    trimmed = copy.deepcopy(full)
    drop_unread_parameters(trimmed)
    assert {"Bucket", "Region", "Endpoint"} <= set(trimmed["parameters"])
    partitions = loader.load_data("partitions")

    def resolve(ruleset: dict[str, object], **extra: object) -> str:
        try:
            return repr(EndpointProvider(ruleset, partitions).resolve_endpoint(**params, **extra))
        except EndpointResolutionError as exc:
            return f"error: {exc}"

    for key in ("journal/0001.json", "a/../b?c", ""):
        assert resolve(trimmed) == resolve(full, Key=key, Prefix=key)


def test_requests_to_one_bucket_share_one_endpoint_resolution(
    moto_s3: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each journal record is a new key; the endpoint is still worked out once."""
    from botocore.endpoint_provider import RuleSet

    evaluated: list[object] = []
    original = RuleSet.evaluate

    def counting(self: RuleSet, input_parameters: dict[str, object]) -> object:
        evaluated.append(sorted(input_parameters))
        return original(self, input_parameters)

    monkeypatch.setattr(RuleSet, "evaluate", counting)
    settings = state_config(moto_s3.url, "unused")
    for built in ("first", "from kept data"):
        client = make_client(settings, home=tmp_path)
        bucket = new_bucket(moto_s3)
        evaluated.clear()
        for n in range(5):
            client.put_object(Bucket=bucket, Key=f"p/journal/{n}.json", Body=b"{}")
            client.get_object(Bucket=bucket, Key=f"p/journal/{n}.json")["Body"].read()
        assert len(evaluated) == 1, (built, evaluated)
        assert "Key" not in evaluated[0]
