"""S3 emulated by moto's server on loopback, for the shared state backend's tests.

moto 5 checks ``If-None-Match: *`` and ``If-Match`` on PutObject and DeleteObject, but the
check and the write are separate steps in its threaded server: two racing creates can both
pass the check. Real S3 decides them atomically, and that is what the lock relies on, so
:func:`atomic_conditional_writes` serialises moto's PutObject/DeleteObject handling (the
check and the write become one step) while inside.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mxflip.config import StateConfig
from tests.support.moto_route53 import (
    AWS_VARIABLES_TO_CLEAR,
    FAKE_ACCESS_KEY,
    FAKE_SECRET_KEY,
    FaultProxy,
    MotoServer,
    fake_aws_environment,
    start_moto,
)

_S3_OPERATIONS = (
    ("GET", re.compile(r"^/[^/?]+/?\?(.*&)?list-type=2"), "ListObjectsV2"),
    ("GET", re.compile(r"^/[^/?]+/.+"), "GetObject"),
    ("PUT", re.compile(r"^/[^/?]+/.+"), "PutObject"),
    ("DELETE", re.compile(r"^/[^/?]+/.+"), "DeleteObject"),
    ("PUT", re.compile(r"^/[^/?]+/?$"), "CreateBucket"),
)


def s3_operation_of(method: str, path: str) -> str:
    for verb, pattern, name in _S3_OPERATIONS:
        if verb == method and pattern.search(path):
            return name
    return f"{method} {path.split('?')[0]}"


class S3FaultProxy(FaultProxy):
    """:class:`FaultProxy` naming S3 operations (path-style requests)."""

    classify = staticmethod(s3_operation_of)


def _serialised(original: Callable[..., Any], lock: threading.Lock) -> Callable[..., Any]:
    def handler(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    handler.__wrapped__ = original  # type: ignore[attr-defined]
    return handler


@contextmanager
def atomic_conditional_writes() -> Iterator[None]:
    """Make moto's conditional PutObject/DeleteObject atomic while inside."""
    from moto.s3.responses import S3Response

    lock = threading.Lock()
    originals = {name: getattr(S3Response, name) for name in ("put_object", "delete_object")}
    for name, original in originals.items():
        setattr(S3Response, name, _serialised(original, lock))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(S3Response, name, original)


def s3_environment(monkeypatch: Any, home: Path) -> dict[str, str]:
    """Fake keys only, no shared config files, nothing beyond loopback."""
    for name in AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    env = fake_aws_environment(str(home))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def child_environment(home: Path) -> dict[str, str]:
    """An environment for child processes that talk to the test's moto server."""
    env = {k: v for k, v in os.environ.items() if k not in AWS_VARIABLES_TO_CLEAR}
    env.update(fake_aws_environment(str(home)))
    return env


#: One admin client per moto server (by URL): creating the bucket is set-up, and a boto3
#: client costs more to build than the request it makes.
_ADMIN_CLIENTS: dict[str, Any] = {}


def new_bucket(server: MotoServer) -> str:
    import boto3
    from botocore.config import Config

    name = f"mxflip-{uuid.uuid4().hex[:12]}"
    client = _ADMIN_CLIENTS.get(server.url)
    if client is None:
        client = _ADMIN_CLIENTS[server.url] = boto3.client(
            "s3",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id=FAKE_ACCESS_KEY,
            aws_secret_access_key=FAKE_SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )
    client.create_bucket(Bucket=name)
    return name


def state_config(url: str, bucket: str, **changes: Any) -> StateConfig:
    base = StateConfig(
        backend="s3",
        bucket=bucket,
        prefix="team",
        region="us-east-1",
        endpoint_url=url,
        lease=120.0,
    )
    return replace(base, **changes)


__all__ = [
    "MotoServer",
    "S3FaultProxy",
    "atomic_conditional_writes",
    "child_environment",
    "moto_s3_fixture",
    "new_bucket",
    "s3_environment",
    "start_moto",
    "state_config",
]


def _moto_s3_fixture() -> Iterator[MotoServer]:
    with atomic_conditional_writes():
        server = start_moto()
        yield server
        server.stop()


#: moto's server with atomic conditional writes, one per test module: import it into the
#: module (``from tests.support.moto_s3 import moto_s3_fixture``) and ask for ``moto_s3``.
moto_s3_fixture = pytest.fixture(scope="module", name="moto_s3")(_moto_s3_fixture)
