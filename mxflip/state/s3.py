"""The shared state backend on S3 (or any S3-compatible store) with conditional writes.

Layout under ``s3://BUCKET/PREFIX/``:

* ``journal/<ns-timestamp>-<writer>-<seq>.json`` — one object per journal record, created
  with ``If-None-Match: *`` (an append is never lost or overwritten); the names sort in
  the order they were written, so a listing is the journal.
* ``state/lock.json`` — the operation lock, a lease (see :mod:`mxflip.state.lease`).
* ``state/<key>.json`` — documents (canary state, the watcher's per-domain state, leader
  leases), written with ``If-Match`` on the version read.
* ``state/journal-snapshot.json`` — every record up to some point, in one object, so that a
  machine that never read the journal fetches it in one call instead of one per record.
  Rewritten (``If-Match`` on the version known, ``If-None-Match: *`` when absent) by each
  locked operation that wrote records, before it releases the lock. Never the truth over the
  records: the listing decides which records exist (a snapshot record whose object is gone
  is not shown, a listed record it lacks is fetched), so a stale or missing snapshot only
  costs fetches, and a damaged one is ignored with a warning and replaced.

boto3 is imported only when this backend is built (``pip install 'mxflip[s3]'``), so
commands that never touch S3 stay fast. Every call is bounded: one attempt per botocore
call, retried here with :func:`mxflip.retry.retrying` (injectable sleep) on throttling,
5xx and connection errors. Records are immutable once written, so each is fetched once per
process and kept in memory, and in a cache file in the state folder for the next command.

When the bucket becomes unreachable in the middle of an operation, records after the
intent are kept in a local *pending* file (never silently: the command ends with exit 3
naming it) and the next command writes them before it does anything else.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mxflip.clock import Clock, SystemClock
from mxflip.errors import UsageError
from mxflip.files import append_synced, atomic_write, ensure_private_folder, read_bytes
from mxflip.journal import JournalView, LockedError, iso, parse_journal, whoami
from mxflip.logs import timed
from mxflip.retry import Sleep, retrying
from mxflip.state.base import Document, PreconditionFailed, StateError, check_key, encode
from mxflip.state.lease import Lease, LeaseHeld, LeaseInfo, Renewer

if TYPE_CHECKING:
    from mxflip.config import StateConfig

log = logging.getLogger(__name__)

LOCK_KEY = "lock"
SNAPSHOT_KEY = "journal-snapshot"
PENDING_NAME = "s3-pending.jsonl"

_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded"}
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "AccountProblem",
}
_TRANSIENT = {"InternalError", "ServiceUnavailable", "RequestTimeout", "ConditionalRequestConflict"}


class _Retryable(Exception):
    """A failed call worth another try; carries the StateError to raise if none is left."""

    def __init__(self, error: StateError) -> None:
        super().__init__(error.message)
        self.error = error


class S3Backend:
    """Journal, lock and documents in one bucket and prefix."""

    kind = "s3"

    def __init__(
        self,
        settings: StateConfig,
        *,
        home: Path,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        attempts: int = 4,
        client: Any = None,
    ) -> None:
        self.settings = settings
        self.bucket = str(settings.bucket)
        self.prefix = settings.prefix.strip("/")
        self.lease = settings.lease
        self.home = home
        self.clock = clock or SystemClock()
        self._sleep = sleep
        self._attempts = attempts
        self._client_future: Future[Any] = Future()
        if client is not None:
            self._client_future.set_result(client)
        else:
            # Built in the background (importing botocore and reading its data is most of
            # the backend's fixed cost): the command's own start-up, and any network wait
            # before its first state call, overlap it. The first call waits for it.
            threading.Thread(
                target=self._build_client, name="mxflip-s3-client", daemon=True
            ).start()
        #: API calls made, by operation (every attempt counts): the benchmark's figure.
        self.calls: Counter[str] = Counter()
        #: What could not be written or released, for the command to report (exit 3).
        self.problems: list[str] = []
        self._cache: dict[str, dict[str, Any] | None] = {}
        #: The journal line (``encode(record)``) of records known by their exact bytes —
        #: those this process wrote and those of the cache file — so that reading the
        #: journal and writing the snapshot do not serialise them again.
        self._lines: dict[str, bytes] = {}
        self._disk_loaded = False
        self._unsaved: dict[str, Mapping[str, Any]] = {}
        self._writer = secrets.token_hex(4)
        self._seq = 0
        self._last_ns = 0
        self._key_lock = threading.Lock()
        #: The journal's keys as last listed, plus the records appended since.
        self._keys: list[str] = []
        #: The snapshot's version as last read or written (None: absent), when known.
        self._snapshot_version: str | None = None
        self._snapshot_known = False
        self._snapshot_saved: str | None = None
        self._snapshot_read = False
        self._snapshot_future: Future[tuple[str | None, bytes] | None] | None = None
        self._wrote = False
        #: While this process holds the lock, records after the intent are written in the
        #: background (see :meth:`append`); these are the writes not yet waited for.
        self._background = False
        self._inflight: list[Future[None]] = []
        self._last_write: Future[None] | None = None
        self._record_pool: ThreadPoolExecutor | None = None
        self._pending_lock = threading.Lock()

    def _build_client(self) -> None:
        try:
            self._client_future.set_result(_make_client(self.settings, self.home))
        except BaseException as exc:  # raised where the client is first used
            self._client_future.set_exception(exc)

    @property
    def _client(self) -> Any:
        return self._client_future.result()

    # ------------------------------------------------------------------ naming

    @property
    def path(self) -> str:
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}"

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    @property
    def journal_prefix(self) -> str:
        return self._key("journal") + "/"

    def _doc_key(self, key: str) -> str:
        return self._key("state", check_key(key) + ".json")

    def _record_key(self) -> str:
        """A new journal object name: later than any this process wrote or has read, so
        a record written after reading another (a note about an intent) sorts after it
        even when this machine's clock runs behind."""
        with self._key_lock:
            ns = max(time.time_ns(), self._last_ns + 1)
            self._last_ns = ns
            self._seq += 1
            return f"{self.journal_prefix}{ns:020d}-{self._writer}-{self._seq:06d}.json"

    # ------------------------------------------------------------------ calls

    def _call(self, operation: str, **params: Any) -> Any:
        """One API call with bounded retries; errors become StateError with a hint."""
        method = getattr(self._client, _SNAKE[operation])

        def once() -> Any:
            self.calls[operation] += 1
            try:
                return method(Bucket=self.bucket, **params)
            except Exception as exc:
                if _not_found(exc):
                    raise _Missing() from None
                error, retry = self._translate(exc, operation)
                if retry:
                    raise _Retryable(error) from None
                raise error from None

        try:
            with timed(log, "s3 request", operation=operation, key=params.get("Key")) as fields:
                for attempt in retrying(
                    lambda e: isinstance(e, _Retryable),
                    attempts=self._attempts,
                    max_wait=4.0,
                    max_total=30.0,
                    sleep=self._sleep,
                ):
                    with attempt:
                        fields["attempts"] = attempt.retry_state.attempt_number
                        return once()
        except _Retryable as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _translate(self, exc: Exception, operation: str) -> tuple[StateError, bool]:
        import botocore.exceptions as bce

        where = f"s3://{self.bucket}"
        if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
            return StateError(
                f"no AWS credentials found for the state bucket {where}",
                hint="set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an instance "
                "role (the AWS credential chain)",
            ), False
        if isinstance(
            exc,
            bce.EndpointConnectionError
            | bce.ConnectTimeoutError
            | bce.ReadTimeoutError
            | bce.ConnectionClosedError,
        ):
            endpoint = self.settings.endpoint_url or f"the S3 endpoint of {self.settings.region}"
            return StateError(
                f"cannot reach {endpoint} for the state bucket {self.bucket}",
                hint="check [state] endpoint_url and region, and the network",
            ), True
        if isinstance(exc, bce.ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code == "PreconditionFailed" or status == 412:
                return PreconditionFailed(
                    f"a conditional write to {where} was refused: another writer changed it",
                    hint="run the command again",
                ), False
            if code == "NoSuchBucket":
                return StateError(
                    f"the state bucket {self.bucket} does not exist",
                    hint="create it (with versioning) or fix [state] bucket",
                ), False
            if code in _DENIED or status == 403:
                return StateError(
                    f"access to the state bucket {where} was denied ({code or status})",
                    hint="the credentials need s3:ListBucket, s3:GetObject, s3:PutObject and "
                    f"s3:DeleteObject on {where}/{self.prefix}*",
                ), False
            if code in _THROTTLED or status == 503:
                return StateError(
                    f"the state bucket {where} throttled {operation} and retries ran out",
                    hint="try again in a minute; many clients may share this bucket",
                ), True
            if code in _TRANSIENT or status >= 500 or status == 409:
                if code == "ConditionalRequestConflict" or status == 409:
                    error: StateError = PreconditionFailed(
                        f"a conditional write to {where} conflicted with another writer",
                        hint="run the command again",
                    )
                else:
                    error = StateError(
                        f"the state bucket {where} failed {operation} ({code or status})",
                        hint="try again; check the storage service's status",
                    )
                return error, True
            return StateError(
                f"the state bucket {where} refused {operation} ({code or status})",
                hint="check [state] bucket, prefix, region and endpoint_url",
            ), False
        if isinstance(exc, bce.BotoCoreError):
            return StateError(
                f"the state bucket {where}: {type(exc).__name__}",
                hint="check [state] bucket, region and endpoint_url",
            ), False
        raise exc

    # ------------------------------------------------------------------ documents

    def get(self, key: str) -> Document | None:
        """The document at ``key`` (None: absent). Its ETag is the version."""
        try:
            reply = self._call("GetObject", Key=self._doc_key(key))
        except _Missing:
            return None
        body = reply["Body"].read()
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise StateError(
                f"the state object {self._doc_key(key)} in s3://{self.bucket} is damaged",
                hint="inspect it; mxflip never writes anything but a JSON object there",
            )
        return Document(data, str(reply["ETag"]))

    def put(self, key: str, data: Mapping[str, Any], *, version: str | None) -> str:
        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
        try:
            reply = self._call(
                "PutObject",
                Key=self._doc_key(key),
                Body=encode(data),
                ContentType="application/json",
                **condition,
            )
        except _Missing:
            # If-Match on an object that is gone: another writer removed it.
            raise PreconditionFailed(
                f"the state object {self._doc_key(key)} was removed by another writer",
                hint="run the command again",
            ) from None
        return str(reply["ETag"])

    def delete(self, key: str, *, version: str) -> None:
        try:
            self._call("DeleteObject", Key=self._doc_key(key), IfMatch=version)
        except _Missing:
            raise PreconditionFailed(
                f"the state object {self._doc_key(key)} was already removed"
            ) from None

    # ------------------------------------------------------------------ journal

    def append(self, record: Mapping[str, Any]) -> None:
        """Create one record object. Only the intent of an operation must reach the
        bucket (else nothing starts); a later record that cannot be written is kept in
        the local pending file and reported, and the next command writes it.

        While this process holds the lock, a record other than an intent is written in
        the background and ``append`` returns at once: the records an operation writes
        after its last DNS change (switch done, verify, result) then cost one round trip
        together instead of one each. Its name, and so its place in the journal, is
        fixed here. :meth:`flush` waits for them — the rollout calls it before every DNS
        change, so a record still lands before the change it announces — and so do
        :meth:`read` and the lock's release (the lock is released only after the last
        record landed)."""
        key = self._record_key()
        body = dict(record)
        if self._background and body.get("type") != "intent":
            with self._key_lock:
                before = self._last_write
                future = self._records_pool().submit(self._write_record, key, body, before)
                self._inflight.append(future)
                self._last_write = future
            return
        self._write_record(key, body)

    def _write_record(
        self, key: str, body: dict[str, Any], before: Future[None] | None = None
    ) -> None:
        try:
            line = self.put_record(key, body)
        except StateError as exc:
            if body.get("type") == "intent" or isinstance(exc, PreconditionFailed):
                raise
            if before is not None:
                # The pending file keeps journal order: the record appended before this
                # one is written or kept first (it started first: no cycle).
                wait([before])
            self._keep_pending(key, body, exc)
            return
        with self._key_lock:
            self._cache[key] = body
            self._lines[key] = line
            self._unsaved[key] = body
            bisect.insort(self._keys, key)
            self._wrote = True

    def _records_pool(self) -> ThreadPoolExecutor:
        if self._record_pool is None:
            # A handful in flight is all an operation has between two DNS changes.
            self._record_pool = ThreadPoolExecutor(
                max_workers=6, thread_name_prefix="mxflip-s3-record"
            )
        return self._record_pool

    def flush(self) -> None:
        """Return once every record appended so far has landed in the bucket (or, the
        bucket being unreachable, was kept in the pending file). Raises what a record
        written in the background raised (a refused conditional create)."""
        with self._key_lock:
            waiting, self._inflight = self._inflight, []
        error: BaseException | None = None
        for future in waiting:  # each write is bounded by its retries
            exc = future.exception()
            if exc is not None and error is None:
                error = exc
        if error is not None:
            raise error

    def put_record(self, key: str, record: Mapping[str, Any]) -> bytes:
        """Create the record object ``key``; returns the body written."""
        body = encode(record)
        self._call(
            "PutObject",
            Key=key,
            Body=body,
            ContentType="application/json",
            IfNoneMatch="*",
        )
        return body

    def read(self) -> JournalView:
        """Every operation, oldest first. A listed record that cannot be fetched yet (or
        is not JSON) is skipped and counted; it is fetched again on the next read."""
        self.flush()  # this process's records in flight are part of the journal it reads
        self.settle()
        if self._disk_loaded:
            keys = self._list_journal()
        else:
            # The record cache (a line per record this machine read) is parsed while the
            # listing is on its way: a few ms of CPU for a long journal, spent waiting.
            listing = self._records_pool().submit(self._list_journal)
            try:
                self._load_disk_cache()
            finally:
                keys = listing.result()  # bounded by the call's own retries
        missing = [k for k in keys if self._cache.get(k) is None]
        if missing and not self._snapshot_read:
            # Another machine wrote since this one last read: its snapshot has them all
            # in one call (and its version is what the next snapshot write needs). Once
            # per command: a record that stays unreadable costs its own fetch only.
            self._snapshot_read = True
            self._load_snapshot(set(missing))
            missing = [k for k in keys if self._cache.get(k) is None]
        elif self._snapshot_future is not None and not self._snapshot_read:
            # Prefetched but not needed (an empty journal): its version still spares
            # the snapshot write a question.
            self._snapshot_read = True
            got = self._take_snapshot()
            if got is not None:
                self._snapshot_version, self._snapshot_known = got[0], True
        if missing:
            fetched: dict[str, dict[str, Any]] = {}
            with ThreadPoolExecutor(max_workers=min(8, len(missing))) as pool:
                for key, record in zip(missing, pool.map(self._fetch, missing), strict=True):
                    self._cache[key] = record
                    if record is not None:
                        fetched[key] = record
            self._remember(fetched)
        if keys:
            self._note_seen(keys[-1])
        with self._key_lock:
            self._keys = keys
        lines = [self._line(k) for k in keys]
        records = [line for line in lines if line is not None]
        # One parser for both backends: the records in listing order, as journal lines.
        view = parse_journal(b"\n".join(records))
        unread = len(keys) - len(records)
        if not unread:
            return view
        return JournalView(
            view.operations,
            view.skipped_lines + unread,
            (*view.problems, f"{unread} listed record(s) could not be read yet"),
        )

    def _line(self, key: str) -> bytes | None:
        """The journal line of the record ``key`` (None: not read)."""
        line = self._lines.get(key)
        if line is not None:
            return line
        record = self._cache.get(key)
        return None if record is None else encode(record)

    def _list_journal(self) -> list[str]:
        """The journal's keys, in order (one call per 1000)."""
        keys: list[str] = []
        token: str | None = None
        for _ in range(100_000):  # bounded: a million records per page of 1000 … and more
            params: dict[str, Any] = {"Prefix": self.journal_prefix, "MaxKeys": 1000}
            if token:
                params["ContinuationToken"] = token
            reply = self._call("ListObjectsV2", **params)
            keys.extend(str(o["Key"]) for o in reply.get("Contents", []))
            token = reply.get("NextContinuationToken")
            if not reply.get("IsTruncated") or not token:
                break
        keys.sort()
        return keys

    # ------------------------------------------------------------------ record cache

    @property
    def cache_path(self) -> Path:
        """Records already fetched, so a command does not fetch the whole journal again.
        Safe because a record object is never overwritten; the listing stays the truth
        (a cached record whose object is gone is not shown)."""
        raw = f"{self.settings.endpoint_url}|{self.bucket}|{self.prefix}"
        return self.home / f"s3-cache-{hashlib.sha256(raw.encode()).hexdigest()[:12]}.jsonl"

    def _load_disk_cache(self) -> None:
        if self._disk_loaded:
            return
        self._disk_loaded = True
        try:
            raw = read_bytes(self.cache_path)
        except OSError:
            return
        for line in raw.split(b"\n"):
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                entry = json.loads(line)
                key, record = entry.get("k"), entry.get("r")
                if isinstance(key, str) and isinstance(record, dict):
                    if self._cache.setdefault(key, record) is record:
                        # The record's own text inside the line (see _save_cache): the
                        # JSON the record was just parsed from, on one line.
                        head = b'{"k":' + json.dumps(key).encode() + b',"r":'
                        if line.startswith(head) and line.endswith(b"}"):
                            self._lines.setdefault(key, line[len(head) : -1])
                elif "s" in entry and not self._snapshot_known:
                    # The snapshot version this machine last read or wrote (the last
                    # line wins); only a guess: a refused write asks the bucket.
                    version = entry["s"]
                    self._snapshot_saved = version if isinstance(version, str) else None
        if self._snapshot_saved is not None and not self._snapshot_known:
            self._snapshot_version, self._snapshot_known = self._snapshot_saved, True

    def _remember(self, records: Mapping[str, Mapping[str, Any]]) -> None:
        """Queue records for the cache file; :meth:`close` writes them in one append."""
        self._unsaved.update(records)

    def _save_cache(self) -> None:
        lines = [
            json.dumps({"k": k, "r": r}, sort_keys=True, separators=(",", ":")) + "\n"
            for k, r in self._unsaved.items()
        ]
        if self._snapshot_known and self._snapshot_version != self._snapshot_saved:
            lines.append(json.dumps({"s": self._snapshot_version}) + "\n")
            self._snapshot_saved = self._snapshot_version
        if not lines:
            return
        text = "".join(lines)
        self._unsaved = {}
        try:
            ensure_private_folder(self.home)
            # Not fsynced (a few ms per command): a line lost in a crash is fetched again.
            append_synced(self.cache_path, text.encode(), fsync=False)
        except OSError as exc:  # only a cache: the next command fetches again
            log.debug("cannot write the record cache %s: %s", self.cache_path, exc)

    def _note_seen(self, key: str) -> None:
        stamp = key[len(self.journal_prefix) :].split("-", 1)[0]
        with self._key_lock, contextlib.suppress(ValueError):
            self._last_ns = max(self._last_ns, int(stamp))

    def _fetch(self, key: str) -> dict[str, Any] | None:
        try:
            reply = self._call("GetObject", Key=key)
        except _Missing:
            return None  # listed but not readable yet (or removed): tolerated
        try:
            record = json.loads(reply["Body"].read())
        except ValueError:
            return None
        if not isinstance(record, dict) or "op" not in record or "type" not in record:
            return None
        return record

    # ------------------------------------------------------------------ snapshot

    def _prefetch_snapshot(self) -> None:
        """On a machine that knows no record yet (a new one: no record cache), start
        fetching the snapshot while the lock is being taken: the first read needs it,
        and it does not depend on the lock (the listing decides what it is used for)."""
        if self._snapshot_read or self._snapshot_future is not None:
            return
        if self._disk_loaded:
            known = any(record is not None for record in self._cache.values())
        else:
            # Whether the cache file holds anything, not what: it is parsed during the
            # listing (see read). A file without records only costs the snapshot fetched
            # when the read needs it instead of now.
            try:
                known = self.cache_path.stat().st_size > 0
            except OSError:
                known = False
        if known:
            return
        self._snapshot_future = self._records_pool().submit(self._get_snapshot)

    def _get_snapshot(self) -> tuple[str | None, bytes]:
        """The snapshot's version (None: absent) and body; StateError when unreadable."""
        try:
            reply = self._call("GetObject", Key=self._doc_key(SNAPSHOT_KEY))
        except _Missing:
            return None, b""
        return str(reply["ETag"]), reply["Body"].read()

    def _take_snapshot(self) -> tuple[str | None, bytes] | None:
        """The prefetched snapshot, else fetched now; None (with a warning: it is only a
        shortcut, the records are fetched one by one) when it cannot be read."""
        future, self._snapshot_future = self._snapshot_future, None
        try:
            return future.result() if future is not None else self._get_snapshot()
        except StateError as exc:
            name = self._doc_key(SNAPSHOT_KEY)
            log.warning("cannot read the journal snapshot %s: %s", name, exc.message)
            return None

    def _load_snapshot(self, wanted: set[str]) -> None:
        """Take the ``wanted`` (listed, not yet known) records from the snapshot."""
        name = self._doc_key(SNAPSHOT_KEY)
        got = self._take_snapshot()
        if got is None:
            return
        version, body = got
        self._snapshot_version, self._snapshot_known = version, True
        if version is None:
            return
        try:
            records = _snapshot_records(body, self.journal_prefix)
        except ValueError as exc:
            log.warning(
                "the journal snapshot %s in s3://%s is damaged (%s); ignored: the records are "
                "fetched one by one, and the next operation replaces it",
                name,
                self.bucket,
                exc,
            )
            return
        found = {k: r for k, r in records if k in wanted}
        self._cache.update(found)
        self._remember(found)

    def _write_snapshot(self) -> None:
        """Replace the snapshot with every record known (the journal as listed by the
        last read, plus what this process appended since). Failures are only logged: the
        snapshot is a shortcut, never the journal."""
        with self._key_lock:
            keys = list(self._keys)
        records = [(k, line) for k, line in ((k, self._line(k)) for k in keys) if line is not None]
        if not records:
            return
        upto = records[-1][0]
        body = snapshot_body(upto, records)
        name = self._doc_key(SNAPSHOT_KEY)
        for _ in range(2):  # bounded: a second refusal means another writer is at it
            try:
                if not self._snapshot_known:
                    self._snapshot_version, theirs = self._snapshot_head(name)
                    self._snapshot_known = True
                    if theirs >= upto:
                        return  # a later operation's snapshot is there already
                version = self._snapshot_version
                condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
                reply = self._call(
                    "PutObject",
                    Key=name,
                    Body=body,
                    ContentType="application/json",
                    Metadata={"upto": upto[len(self.journal_prefix) :]},
                    **condition,
                )
            except (PreconditionFailed, _Missing):
                self._snapshot_known = False  # another writer: ask for its version
                continue
            except StateError as exc:
                log.warning("cannot write the journal snapshot %s: %s", name, exc.message)
                return
            self._snapshot_version = str(reply["ETag"])
            return
        log.info("the journal snapshot %s kept changing; left to the next operation", name)

    def _snapshot_head(self, name: str) -> tuple[str | None, str]:
        """The snapshot's version (None: absent) and the last record key it holds."""
        try:
            reply = self._call("HeadObject", Key=name)
        except _Missing:
            return None, ""
        upto = str(reply.get("Metadata", {}).get("upto", ""))
        return str(reply["ETag"]), self.journal_prefix + upto if upto else ""

    # ------------------------------------------------------------------ pending records

    @property
    def pending_path(self) -> Path:
        return self.home / PENDING_NAME

    def _keep_pending(self, key: str, record: Mapping[str, Any], exc: StateError) -> None:
        with self._pending_lock:  # records written in the background fail together
            self._keep_pending_locked(key, record, exc)

    def _keep_pending_locked(self, key: str, record: Mapping[str, Any], exc: StateError) -> None:
        line = json.dumps(
            {"bucket": self.bucket, "key": key, "record": record},
            sort_keys=True,
            separators=(",", ":"),
        )
        try:
            ensure_private_folder(self.home)
            append_synced(self.pending_path, (line + "\n").encode())
        except OSError as err:
            self.problems.append(
                f"a journal record ({record.get('type')} of {record.get('op')}) could not be "
                f"written to {self.path} ({exc.message}) nor kept in {self.pending_path} "
                f"({err.strerror or err})"
            )
            log.error("%s", self.problems[-1])
            return
        problem = (
            f"{self.path} became unreachable ({exc.message}); the journal records it could "
            f"not take are kept in {self.pending_path} and the next command writes them"
        )
        if problem not in self.problems:  # one line for the whole outage
            self.problems.append(problem)
            log.error("%s", problem)

    def settle(self) -> int:
        """Write the records kept in the pending file for this bucket; the file keeps what
        still could not be written. Raises StateError (exit 3) while any remains."""
        try:
            raw = read_bytes(self.pending_path)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StateError(
                f"cannot read {self.pending_path}: {exc.strerror or exc}",
                hint="it holds journal records not yet written to the shared state",
            ) from None
        entries: list[dict[str, Any]] = []
        for line in raw.split(b"\n"):
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and isinstance(entry.get("record"), dict):
                    entries.append(entry)
        mine = [
            e
            for e in entries
            if e.get("bucket") == self.bucket
            and str(e.get("key", "")).startswith(self.journal_prefix)
        ]
        if not mine:
            return 0
        written = 0
        for entry in mine:
            try:
                self.put_record(str(entry["key"]), entry["record"])
            except PreconditionFailed:
                pass  # written before (a settle interrupted after its write)
            except StateError as exc:
                raise StateError(
                    f"{len(mine) - written} journal record(s) from an earlier operation are "
                    f"not yet in {self.path}: {exc.message}",
                    hint=f"they are kept in {self.pending_path}; fix the access and run "
                    "the command again",
                ) from None
            written += 1
        rest = [e for e in entries if e not in mine]
        if rest:
            text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in rest)
            atomic_write(self.pending_path, text.encode(), mode=0o600)
        else:
            self.pending_path.unlink(missing_ok=True)
        log.warning("wrote %d pending journal record(s) to %s", written, self.path)
        return written

    # ------------------------------------------------------------------ lock

    @contextlib.contextmanager
    def lock(self, command: str, *, now: float | None = None) -> Iterator[Any]:
        """Hold the shared operation lock: created only if absent, renewed in the
        background every third of the lease, taken over only after it expired (the
        takeover is journalled), released at the version this process wrote."""
        self.settle()
        self._prefetch_snapshot()
        lease = Lease(self, LOCK_KEY, duration=self.lease, clock=self.clock, command=command)
        try:
            replaced = lease.acquire()
        except LeaseHeld as exc:
            holder = exc.holder
            hint = "wait for it to finish; the lease is renewed while its holder runs"
            if holder is not None:
                hint += (
                    f"; if the holder is gone it can be taken over after {iso(holder.expires)}"
                    f", or: mxflip unlock --force {holder.id} --reason TEXT"
                )
            raise LockedError(
                f"another mxflip operation is running: {exc.message}", hint=hint
            ) from None
        assert lease.info is not None
        if replaced is not None:
            self._journal_lock_event("takeover", lease.info.id, holder=replaced.to_json())
        renewer = Renewer(lease).start()
        self._wrote = False
        self._background = True
        try:
            yield lease.info
        finally:
            self._background = False
            try:
                self.flush()  # the lock is released only after the last record landed
            except StateError as exc:
                self.problems.append(f"a journal record could not be written: {exc.message}")
            finally:
                renewer.stop()
            if renewer.lost:
                self.problems.append(
                    f"{renewer.lost} while this operation ran: check 'mxflip history'"
                )
            snapshot: threading.Thread | None = None
            if not renewer.lost and self._wrote and not self.problems:
                # Taken under the lock, so no other operation's records are missing from
                # it; written while the lock is released (one round trip, not two).
                snapshot = threading.Thread(
                    target=self._write_snapshot, name="mxflip-snapshot", daemon=True
                )
                snapshot.start()
            try:
                lease.release()
            except StateError as exc:
                self.problems.append(
                    f"the lock {lease.info.id if lease.info else ''} could not be released "
                    f"({exc.message}); it expires by itself after the lease"
                )
            finally:
                if snapshot is not None:
                    snapshot.join(timeout=60.0)  # bounded by the retries' own 30 s

    def _journal_lock_event(self, event: str, lock_id: str, **detail: Any) -> None:
        user, host = whoami()
        ts = self.clock.now()
        self.append(
            {
                "type": "lock",
                "op": lock_id,
                "event": event,
                "ts": ts,
                "time": iso(ts),
                "user": user,
                "host": host,
                "pid": os.getpid(),
                **detail,
            }
        )

    def holder(self) -> str | None:
        """Who holds the operation lock now (None: nobody, or its lease ran out)."""
        doc = self.get(LOCK_KEY)
        if doc is None:
            return None
        with contextlib.suppress(KeyError, TypeError, ValueError):
            info = LeaseInfo.from_json(doc.data)
            return None if info.expired(self.clock.now()) else info.describe()
        return "holder unknown (the lock object is not one mxflip wrote)"

    def force_unlock(self, lock_id: str, reason: str) -> dict[str, Any]:
        self.settle()
        doc = self.get(LOCK_KEY)
        if doc is None:
            raise UsageError(f"no operation lock is held in {self.path}")
        held = str(doc.data.get("id", ""))
        if held != lock_id:
            raise UsageError(
                f"the lock held in {self.path} is {held or 'unnamed'}, not {lock_id}",
                hint="copy the lock ID from the 'another mxflip operation is running' message",
            )
        self.delete(LOCK_KEY, version=doc.version)
        self._journal_lock_event("force-unlock", lock_id, reason=reason, holder=doc.data)
        return doc.data

    def close(self) -> None:
        with contextlib.suppress(StateError):
            self.flush()  # reported where it was raised (the lock's release)
        if self._record_pool is not None:
            self._record_pool.shutdown(wait=True, cancel_futures=True)
            self._record_pool = None
        self._save_cache()
        if self._client_future.done():  # never built: nothing to close
            with contextlib.suppress(Exception):
                self._client.close()


class _Missing(Exception):
    """404: no such key (a document or record that is not there)."""


_SNAKE = {
    "GetObject": "get_object",
    "PutObject": "put_object",
    "DeleteObject": "delete_object",
    "ListObjectsV2": "list_objects_v2",
    "HeadObject": "head_object",
}


def snapshot_body(upto: str, records: list[tuple[str, bytes]]) -> bytes:
    """``encode({"format": 1, "upto": upto, "records": [[key, record], ...]})`` from the
    records' journal lines, without serialising them again."""
    pairs = b",".join(b"[" + json.dumps(k).encode() + b"," + line + b"]" for k, line in records)
    return b'{"format":1,"records":[' + pairs + b'],"upto":' + json.dumps(upto).encode() + b"}"


def _snapshot_records(body: bytes, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """The (key, record) pairs of a snapshot; ValueError naming what is wrong."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != 1:
        raise ValueError("not a snapshot mxflip writes (format 1)")
    pairs = doc.get("records")
    if not isinstance(pairs, list):
        raise ValueError("no list of records")
    out: list[tuple[str, dict[str, Any]]] = []
    for pair in pairs:
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and pair[0].startswith(prefix)
            and isinstance(pair[1], dict)
            and "op" in pair[1]
            and "type" in pair[1]
        ):
            raise ValueError("a record entry is not a journal key and record")
        out.append((pair[0], pair[1]))
    return out


def _make_client(settings: StateConfig, home: Path | None = None) -> Any:
    try:
        # botocore directly: the same credential chain as boto3, without boto3's resource
        # layer and transfer customisations (a quarter second per command).
        from mxflip.state.s3client import make_client

        return make_client(settings, home=home)
    except ImportError:
        raise StateError(
            '[state] backend = "s3" needs boto3, which is not installed',
            hint="pip install 'mxflip[s3]'",
        ) from None


def _not_found(exc: Exception) -> bool:
    """A 404 for a key (not for the bucket, which is a configuration fault)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("NoSuchKey", "404", "NotFound") or (status == 404 and code != "NoSuchBucket")
