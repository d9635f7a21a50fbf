"""Private Cloudflare API client for the adapter: owns the official SDK (``cloudflare`` 5.x).

Everything the adapter needs from Cloudflare goes through :class:`CloudflareClient`: the
zone lookup, one paginated listing of a zone's MX records, and the DNS-records batch
endpoint. Throttling and transient failures are retried here (with :func:`mxflip.retry.retrying`);
every SDK exception leaves this module as an mxflip error with a hint, and never carries the
API token in its text.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from mxflip import (
    MX,
    MxflipError,
    ProviderAuthError,
    ProviderError,
    Sleep,
    StaleExpectationError,
    normalize_name,
    retrying,
    timed,
)

if TYPE_CHECKING:
    import cloudflare
    from cloudflare.types.dns import MXRecordParam
    from cloudflare.types.dns.record_batch_params import Delete
    from tenacity import RetryCallState

T = TypeVar("T")
_log = logging.getLogger(__name__)

#: What Cloudflare serves for a record whose TTL is 1 ("automatic").
AUTO_TTL_SECONDS = 300
#: Cloudflare's own upper bound for a record TTL.
MAX_TTL = 86400

# Cloudflare error codes (as the API answers them) meaning "this is not a usable token"…
_BAD_TOKEN_CODES = {
    1000,  # Invalid API Token
    6003,  # Invalid request headers (a malformed Authorization header)
    6111,  # Invalid format for Authorization header
    9103,  # Unknown X-Auth-Key or X-Auth-Email
    9106,  # Missing X-Auth-Key, X-Auth-Email or Authorization headers
    9109,  # Invalid access token
}
# … and "this token may not do that".
_FORBIDDEN_CODES = {10000}  # Authentication error (a permission is missing)
# A zone identifier the API cannot route to.
_UNKNOWN_ZONE_CODES = {1001, 7000, 7003}
_RECORD_MISSING = 81044  # Record does not exist.
_RECORD_EXISTS = {81057, 81058}  # The record already exists / an identical record exists.

_PERMISSION_HINT = (
    "give the API token the permissions Zone:Zone:Read and Zone:DNS:Edit for this zone "
    "(Cloudflare dashboard → My Profile → API Tokens)"
)
_BAD_TOKEN_HINT = (
    "check that the API token was copied whole and is neither expired nor revoked "
    "(Cloudflare dashboard → My Profile → API Tokens); it needs Zone:Zone:Read and "
    "Zone:DNS:Edit"
)


@dataclass(frozen=True)
class LiveRecord:
    """One MX record as Cloudflare holds it: its id, owner name and value, and its TTL
    as served (``ttl`` 1, "automatic", is read as :data:`AUTO_TTL_SECONDS`)."""

    id: str
    name: str
    mx: MX
    ttl: int


@dataclass(frozen=True)
class Zone:
    """A Cloudflare zone: its identifier, its name (absolute) and assigned nameservers."""

    id: str
    name: str
    name_servers: tuple[str, ...]


def effective_ttl(raw: object) -> int:
    """The TTL a resolver sees for Cloudflare's ``ttl`` field (1 means automatic: 300 s)."""
    ttl = int(raw) if isinstance(raw, int | float) else AUTO_TTL_SECONDS
    return AUTO_TTL_SECONDS if ttl == 1 else ttl


def _error_codes(exc: cloudflare.APIError) -> set[int]:
    codes = {e.code for e in exc.errors if e.code is not None}
    # Some errors nest the precise reason in an "error_chain" the SDK model does not name.
    body = exc.body if isinstance(exc.body, dict) else {}
    for err in body.get("errors") or []:
        if isinstance(err, dict):
            for inner in err.get("error_chain") or []:
                if isinstance(inner, dict) and isinstance(inner.get("code"), int):
                    codes.add(inner["code"])
    return codes


def _error_text(exc: cloudflare.APIError) -> str:
    """Cloudflare's own ``errors`` as ``code: message`` pairs, with the precise reasons of
    their ``error_chain`` in brackets (never anything from the request)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    parts = []
    for err in body.get("errors") or []:
        if not isinstance(err, dict):
            continue
        text = f"{err.get('code')}: {err.get('message')}"
        chain = [
            f"{c.get('code')}: {c.get('message')}"
            for c in err.get("error_chain") or []
            if isinstance(c, dict)
        ]
        parts.append(f"{text} ({'; '.join(chain)})" if chain else text)
    return "; ".join(parts) or "no error details"


def retry_after(exc: BaseException) -> float | None:
    """Seconds a 429/503 response asks us to wait (``Retry-After``: seconds or HTTP date)."""
    import cloudflare  # the SDK loads when a client is used

    if not isinstance(exc, cloudflare.APIStatusError):
        return None
    value = exc.response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class CloudflareClient:
    """Talks to the Cloudflare API with one token.

    ``sleep`` is where retry waits go (tests pass a recorder, so nothing sleeps).
    ``attempts`` and ``max_wait`` bound the retries; a ``Retry-After`` longer than
    ``max_wait`` is not waited for but reported.
    """

    def __init__(
        self,
        token: str,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        per_page: int = 1000,
        attempts: int = 4,
        max_wait: float = 30.0,
        sleep: Sleep | None = None,
    ) -> None:
        # max_retries=0: the SDK would otherwise retry 429/5xx itself (twice, sleeping on
        # the real clock), and its retries would multiply with ours (3 x 4 requests). One
        # layer, ours, keeps retries bounded and its waits injectable.
        import cloudflare  # the SDK loads when a client is used

        self._sdk = cloudflare.Cloudflare(
            api_token=token, base_url=base_url, timeout=timeout, max_retries=0
        )
        # The SDK also picks up CLOUDFLARE_API_KEY / CLOUDFLARE_EMAIL from the environment
        # and prefers them to the token; mxflip authenticates with the token only.
        self._sdk.api_key = None
        self._sdk.api_email = None
        self._sdk.user_service_key = None
        self.per_page = per_page
        self.attempts = attempts
        self.max_wait = max_wait
        self._sleep = sleep
        self._zones: dict[str, Zone] = {}

    def __repr__(self) -> str:
        return f"<CloudflareClient {self._sdk.base_url}>"

    def close(self) -> None:
        self._sdk.close()

    # ------------------------------------------------------------------ plumbing

    def _should_retry(self, exc: BaseException) -> bool:
        import cloudflare  # the SDK loads when a client is used

        if isinstance(exc, cloudflare.RateLimitError | cloudflare.InternalServerError):
            wait = retry_after(exc)
            return wait is None or wait <= self.max_wait
        return isinstance(exc, cloudflare.APIConnectionError)

    def _wait(self, jitter: Callable[[RetryCallState], float]) -> Callable[[RetryCallState], float]:
        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            asked = retry_after(exc) if exc is not None else None
            # The server knows when its rate-limit window reopens; without a hint, back off.
            return asked if asked is not None else jitter(state)

        return wait

    def _call(
        self, what: str, fn: Callable[[], T], *, zone: str | None = None, batch: bool = False
    ) -> T:
        import cloudflare  # the SDK loads when a client is used

        retry = retrying(
            self._should_retry,
            attempts=self.attempts,
            max_wait=self.max_wait,
            max_total=self.max_wait * self.attempts,
            sleep=self._sleep,
        )
        retry = retry.copy(wait=self._wait(retry.wait))
        try:
            with timed(_log, "cloudflare request", request=what, zone=zone) as fields:
                for attempt in retry:
                    with attempt:
                        fields["attempts"] = attempt.retry_state.attempt_number
                        return fn()
        except cloudflare.APIError as exc:
            raise translate(exc, what, zone, batch=batch) from None
        raise AssertionError("unreachable")  # pragma: no cover - retrying returns or raises

    # ------------------------------------------------------------------ operations

    def zone(self, name: str) -> Zone:
        """The zone called ``name`` (absolute), looked up once per client."""
        if name in self._zones:
            return self._zones[name]
        bare = name.rstrip(".")
        # Filtering by name lets a token limited to one zone find it (listing all zones
        # needs account-wide permission).
        page = self._call(
            f"look up zone {bare}", lambda: self._sdk.zones.list(name=bare, per_page=50)
        )
        for found in page.result:
            if normalize_name(found.name) == name:
                zone = Zone(found.id, name, tuple(found.name_servers or ()))
                self._zones[name] = zone
                return zone
        raise ProviderError(
            f"Cloudflare has no zone {bare} that this API token can see",
            hint="check the zone name, and that the token includes this zone with Zone:Zone:Read"
            " (or set zone_id in the provider's settings)",
        )

    def all_zones(self) -> list[Zone]:
        """Every zone the token can read (Zone:Zone:Read), page after page."""
        zones: list[Zone] = []
        for page_no in range(1, 100_001):  # bounded: a server that never stops paging
            page = self._call(
                "list zones",
                functools.partial(self._sdk.zones.list, page=page_no, per_page=50),
            )
            items = page.result or []
            for found in items:
                name = normalize_name(found.name)
                zones.append(Zone(found.id, name, tuple(found.name_servers or ())))
                self._zones.setdefault(name, zones[-1])
            info = page.result_info
            total_pages = getattr(info, "total_pages", None) if info is not None else None
            if not items or (isinstance(total_pages, int) and page_no >= total_pages):
                return zones
        raise ProviderError("listing the zones did not end after 100000 pages")

    def verify_token(self) -> str:
        """The token's status as Cloudflare reports it (``active``, ``disabled``,
        ``expired``); needs no permission."""
        answer = self._call("verify the API token", self._sdk.user.tokens.verify)
        return str(getattr(answer, "status", None) or "unknown")

    def zone_by_id(self, zone_id: str, name: str) -> Zone:
        """The zone with identifier ``zone_id`` (for nameservers when ``zone_id`` is set)."""
        found = self._call(
            f"read zone {zone_id}", lambda: self._sdk.zones.get(zone_id=zone_id), zone=name
        )
        if found is None or normalize_name(found.name) != name:
            actual = found.name if found is not None else "nothing"
            raise ProviderError(
                f"zone_id {zone_id} is zone {actual}, not {name.rstrip('.')}",
                hint="set zone_id to the identifier shown on the zone's Overview page",
            )
        return Zone(found.id, name, tuple(found.name_servers or ()))

    def list_mx(self, zone_id: str, zone: str) -> list[LiveRecord]:
        """Every MX record of the zone: one listing (``type=MX``), page after page.

        The pages are read as plain JSON: the SDK's typed models validate each record
        against its union of every record type, which cost about 1 s per 10,000 records
        (most of ``status`` on a large zone); mxflip reads five fields of an MX record."""
        records: list[LiveRecord] = []
        page_no = 1
        while True:
            answer = self._call(
                f"list MX records of zone {zone.rstrip('.')}",
                functools.partial(
                    self._sdk.dns.records.with_raw_response.list,
                    zone_id=zone_id,
                    type="MX",
                    page=page_no,
                    per_page=self.per_page,
                ),
                zone=zone,
            )
            try:
                page = answer.json()
            except ValueError:
                raise ProviderError(
                    f"listing zone {zone.rstrip('.')} returned an answer that is not JSON"
                ) from None
            body = page if isinstance(page, dict) else {}
            items = body.get("result") or []
            if not isinstance(items, list):
                raise ProviderError(f"listing zone {zone} returned no list of records")
            records.extend(_live(item, zone) for item in items)
            info = body.get("result_info")
            total_pages = info.get("total_pages") if isinstance(info, dict) else None
            if not items or len(items) < self.per_page:
                break
            if isinstance(total_pages, int) and page_no >= total_pages:
                break
            page_no += 1
            if page_no > 100_000:  # a server that never stops paging must not hang us
                raise ProviderError(f"listing zone {zone} did not end after 100000 pages")
        return records

    def batch(
        self, zone_id: str, zone: str, deletes: Sequence[str], posts: Sequence[LiveRecord]
    ) -> None:
        """One POST /zones/{id}/dns_records/batch: delete ``deletes`` (ids), then create
        ``posts`` (their ``id`` is ignored); all or nothing. A record to delete that is
        gone, or one to create that exists, means another writer got there first:
        :class:`StaleExpectationError`."""
        delete_params: list[Delete] = [{"id": rid} for rid in deletes]
        post_params: list[MXRecordParam] = [
            {
                "type": "MX",
                "name": r.name.rstrip("."),
                "content": r.mx.host.rstrip("."),
                "priority": r.mx.preference,
                "ttl": r.ttl,
                "proxied": False,  # MX records are never proxied
            }
            for r in posts
        ]
        self._call(
            f"change MX records of zone {zone.rstrip('.')}",
            lambda: self._sdk.dns.records.batch(
                zone_id=zone_id, deletes=delete_params, posts=post_params
            ),
            zone=zone,
            batch=True,
        )


def _live(item: Any, zone: str) -> LiveRecord:
    """One MX record of a listing page (a JSON object)."""
    if not isinstance(item, dict):
        raise ProviderError(f"zone {zone.rstrip('.')}: the listing holds a non-record {item!r}")
    try:
        name = normalize_name(str(item.get("name")))
        host = normalize_name(str(item.get("content") or ""))
        priority = item.get("priority")
        mx = MX(int(priority if priority is not None else 0), host)
    except (ValueError, TypeError) as exc:
        raise ProviderError(
            f"zone {zone.rstrip('.')} holds an MX record mxflip cannot read "
            f"({item.get('name', '?')} {item.get('content', '?')}): {exc}"
        ) from None
    if name != zone and not name.endswith("." + zone):
        raise ProviderError(
            f"Cloudflare returned record {name} for zone {zone}",
            hint="zone_id in the provider's settings belongs to another zone",
        )
    return LiveRecord(str(item.get("id")), name, mx, effective_ttl(item.get("ttl")))


def translate(
    exc: cloudflare.APIError, what: str, zone: str | None = None, *, batch: bool = False
) -> MxflipError:
    """An SDK exception as an mxflip error: one line, a hint, never the token.

    In a batch, "record does not exist" (a record to delete is gone) and "record already
    exists" (one to create is there) mean another writer changed the zone since we read
    it: the batch was refused whole, so that is a :class:`StaleExpectationError`.
    """
    import cloudflare  # the SDK loads when a client is used

    if isinstance(exc, cloudflare.APITimeoutError):
        return ProviderError(
            f"Cloudflare did not answer in time ({what})",
            hint="try again; raise 'timeout' in the provider's settings if this persists",
        )
    if isinstance(exc, cloudflare.APIConnectionError):
        return ProviderError(
            f"cannot reach the Cloudflare API ({what})",
            hint="check the network and the provider's base_url setting",
        )
    codes = _error_codes(exc)
    detail = _error_text(exc)
    status = exc.status_code if isinstance(exc, cloudflare.APIStatusError) else None
    if batch and (_RECORD_MISSING in codes or codes & _RECORD_EXISTS):
        where = zone.rstrip(".") if zone else "the zone"
        return StaleExpectationError(
            f"the MX records of zone {where} changed since the plan was made "
            f"(Cloudflare: {detail}); the batch was refused whole"
        )
    if status == 401 or codes & _BAD_TOKEN_CODES:
        return ProviderAuthError(
            f"Cloudflare does not accept the API token ({what}): {detail}", hint=_BAD_TOKEN_HINT
        )
    if status == 403 or codes & _FORBIDDEN_CODES:
        return ProviderAuthError(
            f"the API token may not do this ({what}): {detail}", hint=_PERMISSION_HINT
        )
    if status == 429:
        wait = retry_after(exc)
        later = f"in {wait:g} s" if wait is not None else "in a minute"
        return ProviderError(
            f"Cloudflare is rate-limiting this API token ({what}): {detail}",
            hint=f"try again {later}; other tools sharing the token count against the same limit",
        )
    if codes & _UNKNOWN_ZONE_CODES or (status == 404 and zone is not None):
        where = zone.rstrip(".") if zone else "the zone"
        return ProviderError(
            f"Cloudflare does not know the zone id used for {where} ({what}): {detail}",
            hint="check zone_id in the provider's settings, or remove it to look the zone up "
            "by name",
        )
    if status is not None and status >= 500:
        return ProviderError(
            f"Cloudflare failed with HTTP {status} ({what}): {detail}",
            hint="a Cloudflare-side problem; try again later (https://www.cloudflarestatus.com)",
        )
    return ProviderError(f"Cloudflare refused the request ({what}): {detail}")
