"""A small in-process S3 on loopback: exactly what mxflip's S3 state backend relies on.

The fault matrix (tests/test_engine_faults.py) runs about 4,700 S3 requests against moto,
whose server side (werkzeug, moto's dispatch, its XML templates) costs about a millisecond
of CPU each: a third of the matrix's S3 half. That matrix tests the engine's handling of
failed writes, not S3, so it talks to this double instead. mxflip's real S3 backend and
botocore still run end to end over HTTP; only the server is lighter.

What it implements, and nothing else (path-style requests, no signature check, as moto):

* CreateBucket (``PUT /bucket``); a request for an absent bucket is 404 NoSuchBucket.
* PutObject (``PUT /bucket/key``) with ``If-None-Match: *`` (412 when the key exists) or
  ``If-Match: <etag>`` (412 when it differs, 404 NoSuchKey when the key is absent); each
  check and its write are one step under a lock, as real S3 decides them atomically.
  ``x-amz-meta-*`` headers are kept; the ETag is the quoted MD5 of the body.
* GetObject / HeadObject (404 NoSuchKey, HEAD without a body), with ETag,
  Content-Type, Last-Modified and the metadata.
* DeleteObject with an optional ``If-Match`` (412 when it differs, 404 when absent).
* ListObjectsV2 (``GET /bucket?list-type=2``) with ``prefix``, ``max-keys`` and
  ``continuation-token``, keys in byte order.

tests/test_s3double_contract.py runs the same requests against this double and moto and
asserts the same answers, so the two cannot drift apart unnoticed. Races and conditional
writes between processes are tested against moto (tests/test_state_s3*.py).
"""

from __future__ import annotations

import email.utils
import hashlib
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from xml.sax.saxutils import escape

import pytest

from tests.support.httpserver import LoopbackHTTPServer

_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


@dataclass(frozen=True)
class _Object:
    body: bytes
    etag: str
    content_type: str
    metadata: dict[str, str]
    modified: float


@dataclass
class _Bucket:
    objects: dict[str, _Object] = field(default_factory=dict)


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class S3Double(LoopbackHTTPServer):
    """The double's server on ``127.0.0.1:<port 0>`` in a daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        double = self

        class Handler(BaseHTTPRequestHandler):
            # Persistent connections, as S3 (and moto here) keep them.
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                double._serve(self)

            do_PUT = do_HEAD = do_DELETE = do_POST = do_GET

        super().__init__(Handler)

    def create_bucket(self, name: str) -> None:
        """Set-up without a request (what CreateBucket does)."""
        with self._lock:
            self._buckets.setdefault(name, _Bucket())

    # ------------------------------------------------------------------ requests

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            self._reply(request, 501, _error("NotImplemented", "chunked bodies"), {})
            return
        body = request.rfile.read(length) if length else b""
        split = urllib.parse.urlsplit(request.path)
        bucket, _, key = split.path.lstrip("/").partition("/")
        bucket = urllib.parse.unquote(bucket)
        key = urllib.parse.unquote(key)
        query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        try:
            status, payload, headers = self._dispatch(
                request.command, bucket, key, query, request.headers, body
            )
        except _Refused as exc:
            status, payload, headers = exc.status, _error(exc.code, exc.message), {}
            headers["Content-Type"] = "application/xml"
        self._reply(request, status, payload, headers)

    def _dispatch(
        self,
        method: str,
        bucket_name: str,
        key: str,
        query: dict[str, str],
        headers: Any,
        body: bytes,
    ) -> tuple[int, bytes, dict[str, str]]:
        if not key:
            if method == "PUT":
                self.create_bucket(bucket_name)
                return 200, b"", {"Location": f"/{bucket_name}"}
            if method == "GET" and query.get("list-type") == "2":
                return self._list(self._bucket(bucket_name), bucket_name, query)
            raise _Refused(501, "NotImplemented", f"{method} on a bucket")
        with self._lock:  # a condition and its write are one step
            bucket = self._bucket(bucket_name)
            current = bucket.objects.get(key)
            if method in ("GET", "HEAD"):
                if current is None:
                    raise _Refused(404, "NoSuchKey", "The specified key does not exist.")
                if method == "HEAD":  # the size of the body it does not send
                    return (
                        200,
                        b"",
                        {**_object_headers(current), "Content-Length": str(len(current.body))},
                    )
                return 200, current.body, _object_headers(current)
            if method == "PUT":
                self._check(current, headers)
                new = _Object(
                    body=body,
                    etag=f'"{hashlib.md5(body).hexdigest()}"',
                    content_type=headers.get("Content-Type", "binary/octet-stream"),
                    metadata={
                        k.lower()[len("x-amz-meta-") :]: v
                        for k, v in headers.items()
                        if k.lower().startswith("x-amz-meta-")
                    },
                    modified=time.time(),
                )
                bucket.objects[key] = new
                return 200, b"", {"ETag": new.etag}
            if method == "DELETE":
                if headers.get("If-Match") is not None:
                    self._check(current, headers)
                bucket.objects.pop(key, None)
                return 204, b"", {}
        raise _Refused(501, "NotImplemented", f"{method} on an object")

    def _bucket(self, name: str) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            raise _Refused(404, "NoSuchBucket", "The specified bucket does not exist")
        return bucket

    @staticmethod
    def _check(current: _Object | None, headers: Any) -> None:
        if headers.get("If-None-Match") == "*" and current is not None:
            raise _Refused(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            )
        wanted = headers.get("If-Match")
        if wanted is not None:
            if current is None:
                raise _Refused(404, "NoSuchKey", "The specified key does not exist.")
            if wanted != current.etag:
                raise _Refused(
                    412,
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold",
                )

    def _list(
        self, bucket: _Bucket, name: str, query: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        prefix = query.get("prefix", "")
        max_keys = int(query.get("max-keys") or 1000)
        token = query.get("continuation-token")
        with self._lock:
            keys = sorted(
                (k for k in bucket.objects if k.startswith(prefix)), key=lambda k: k.encode()
            )
            if token is not None:
                after = urllib.parse.unquote(token)
                keys = [k for k in keys if k.encode() > after.encode()]
            page = [(k, bucket.objects[k]) for k in keys[:max_keys]]
        truncated = len(keys) > max_keys
        # botocore asks for url-encoded keys (and decodes them); S3 and moto then say so.
        url = query.get("encoding-type") == "url"
        encode = (lambda text: urllib.parse.quote(text, safe="/")) if url else str
        parts = [
            f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{_XMLNS}">',
            f"<Name>{escape(name)}</Name><Prefix>{escape(encode(prefix))}</Prefix>",
            f"<MaxKeys>{max_keys}</MaxKeys>",
            "<EncodingType>url</EncodingType>" if url else "",
            f"<KeyCount>{len(page)}</KeyCount>",
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
        ]
        if truncated:  # opaque to the client, as moto's: here the last key given
            next_token = urllib.parse.quote(page[-1][0], safe="")
            parts.append(f"<NextContinuationToken>{escape(next_token)}</NextContinuationToken>")
        parts.extend(_contents(page, encode))
        parts.append("</ListBucketResult>")
        return 200, "".join(parts).encode(), {"Content-Type": "application/xml"}

    @staticmethod
    def _reply(
        request: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict[str, str]
    ) -> None:
        request.send_response(status)
        request.send_header("x-amz-request-id", "0000000000000000")
        for name, value in headers.items():
            request.send_header(name, value)
        if "Content-Length" not in headers:
            bodiless = request.command == "HEAD" or status == 204
            request.send_header("Content-Length", "0" if bodiless else str(len(payload)))
        request.end_headers()
        if request.command != "HEAD" and status != 204:
            request.wfile.write(payload)


def _object_headers(obj: _Object) -> dict[str, str]:
    headers = {
        "ETag": obj.etag,
        "Content-Type": obj.content_type,
        "Last-Modified": email.utils.formatdate(obj.modified, usegmt=True),
        "Accept-Ranges": "bytes",
    }
    headers.update({f"x-amz-meta-{k}": v for k, v in obj.metadata.items()})
    return headers


def _contents(page: list[tuple[str, _Object]], encode: Callable[[str], str]) -> Iterator[str]:
    for key, obj in page:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(obj.modified))
        yield (
            f"<Contents><Key>{escape(encode(key))}</Key><LastModified>{stamp}</LastModified>"
            f"<ETag>{escape(obj.etag)}</ETag><Size>{len(obj.body)}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
        )


def _error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message><RequestId>0000000000000000</RequestId></Error>"
    ).encode()


def _s3_double_fixture() -> Iterator[S3Double]:
    server = S3Double().start()
    yield server
    server.stop()


#: The double, one per test module: import it into the module
#: (``from tests.support.s3double import s3_double_fixture``) and ask for ``s3_double``.
s3_double_fixture = pytest.fixture(scope="module", name="s3_double")(_s3_double_fixture)
