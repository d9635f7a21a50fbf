"""Private Route53 client: owns boto3, the retries, and the translation of SDK errors.

Everything the SDK can raise leaves this module as an mxflip error with a hint a person
can act on. Messages never carry a credential: the settings hold none, and the secret key
and session token in use are registered with mxflip's redaction (``register_secret``)
before an error is made, so any text AWS sends back is cleaned like every mxflip error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSOError,
    TokenRetrievalError,
)

from mxflip import (
    MxflipError,
    ProviderAuthError,
    ProviderError,
    Sleep,
    StaleExpectationError,
    register_secret,
    retrying,
    timed,
)

_log = logging.getLogger(__name__)

#: Route53 answers these when it is busy or rate-limits the account (5 requests/s), or
#: while a previous change to the same zone is still being processed.
_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "PriorRequestNotComplete",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "RequestTimeout",
    }
)
_NETWORK_ERRORS = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
)
_REJECTED_CREDENTIALS = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidSignatureException",
        "ExpiredToken",
        "ExpiredTokenException",
        "MissingAuthenticationToken",
    }
)
_DENIED = frozenset({"AccessDenied", "AccessDeniedException"})
_IAM_ACTION = re.compile(r"perform:\s*(route53:[A-Za-z]+)")
_STALE = re.compile(
    r"Tried to (create|delete) resource record set .*?"
    r"(already exists|not found|do not match)",
    re.IGNORECASE | re.DOTALL,
)

CHAIN_HINT = (
    "boto3 looks in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, then the profile named by the "
    "'profile' setting or AWS_PROFILE in ~/.aws/credentials and ~/.aws/config (for SSO "
    "profiles run 'aws sso login'), then container and EC2 instance roles"
)
POLICY_HINT = "the minimal IAM policy is in the mxflip-route53 README"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: throttling, a busy zone, a 5xx, a network hiccup."""
    if isinstance(exc, ClientError):
        return _code(exc) in _TRANSIENT_CODES or _status(exc) >= 500
    return isinstance(exc, _NETWORK_ERRORS)


@dataclass(frozen=True)
class HostedZone:
    """A hosted zone as ListHostedZonesByName describes it (``id`` without a prefix)."""

    id: str
    name: str
    private: bool

    @property
    def label(self) -> str:
        return f"{self.id} ({'private' if self.private else 'public'})"


def _zone(raw: dict[str, Any]) -> HostedZone:
    return HostedZone(
        id=str(raw["Id"]).rsplit("/", 1)[-1],
        name=_absolute(str(raw["Name"])),
        private=bool(raw.get("Config", {}).get("PrivateZone", False)),
    )


def _absolute(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def wire_name(name: str) -> str:
    """A record name as Route53 returns it, comparable with mxflip's names."""
    return _absolute(name)


class Route53Client:
    """One boto3 Route53 client with bounded, jittered retries and mxflip errors."""

    #: Upper bound on pages of one listing: 5,000 pages of 300 records is far beyond any
    #: real zone, and keeps a misbehaving endpoint from looping forever.
    MAX_PAGES = 5000

    def __init__(
        self,
        *,
        profile: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        timeout: float = 15.0,
        attempts: int = 5,
        backoff_max: float = 10.0,
        sleep: Sleep | None = None,
    ) -> None:
        self.endpoint = endpoint_url or "the Route53 API (route53.amazonaws.com)"
        self._attempts = attempts
        self._backoff_max = backoff_max
        self._sleep = sleep
        try:
            self._session = boto3.session.Session(profile_name=profile, region_name=region)
        except ProfileNotFound:
            raise ProviderAuthError(
                f"AWS profile {profile!r} is not defined",
                hint="profiles are read from ~/.aws/config and ~/.aws/credentials "
                "(or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE); check the 'profile' setting",
            ) from None
        # Retries live in one layer only: mxflip.retry's tenacity loop in call(), whose
        # waits are jittered, bounded and injectable. botocore's own retries would sleep
        # on the real clock where no test can see them and multiply with ours (5 x 3
        # requests per call by default), so they are switched off: total_max_attempts
        # counts the first request too, so 1 is a single try. (botocore's max_attempts
        # would count retries only: 1 there still means two requests.)
        config = Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=timeout,
            read_timeout=timeout,
            user_agent_extra="mxflip",
        )
        try:
            self._client = self._session.client(
                "route53",
                # Route53 is global (signed for us-east-1); a region is needed only to
                # sign requests to an explicit endpoint_url.
                region_name=region or self._session.region_name or "us-east-1",
                endpoint_url=endpoint_url,
                config=config,
            )
        except (BotoCoreError, ValueError) as exc:
            self._raise("creating the client", exc, 1)

    @property
    def events(self) -> Any:
        """botocore's event system of the client (for instrumentation: call counters)."""
        return self._client.meta.events

    # ------------------------------------------------------------------ plumbing

    def _register_credentials(self) -> None:
        """Have mxflip redact the secret key and token in use from every message: the
        config loader registers only the environment's, a profile's or SSO's are known
        only to the session."""
        try:
            creds = self._session.get_credentials()
            found = [creds.secret_key, creds.token] if creds is not None else []
        except Exception:  # resolving credentials must never mask the error being reported
            return
        for secret in found:
            register_secret(secret)

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Call one Route53 operation (``ListHostedZonesByName``…) with retries."""
        method: Callable[..., dict[str, Any]] = getattr(self._client, _snake(operation))
        retry = retrying(
            is_transient,
            attempts=self._attempts,
            max_wait=self._backoff_max,
            max_total=self._backoff_max * self._attempts * 2,
            sleep=self._sleep,
        )
        try:
            with timed(_log, "route53 request", operation=operation) as fields:
                for attempt in retry:
                    with attempt:
                        fields["attempts"] = attempt.retry_state.attempt_number
                        return method(**params)
        except (BotoCoreError, ClientError) as exc:
            self._raise(operation, exc, int(retry.statistics.get("attempt_number", 1)))
        raise AssertionError("unreachable")  # pragma: no cover - retrying returns or raises

    def _raise(self, operation: str, exc: Exception, attempts: int) -> NoReturn:
        raise self._translate(operation, exc, attempts) from None

    def _translate(self, operation: str, exc: Exception, attempts: int) -> MxflipError:
        self._register_credentials()  # before any error is made: each one is cleaned
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return ProviderAuthError(
                f"no usable AWS credentials were found ({operation})", hint=CHAIN_HINT
            )
        if isinstance(exc, SSOError | TokenRetrievalError):
            return ProviderAuthError(
                f"the AWS SSO session is missing or expired ({operation})",
                hint="run 'aws sso login' for the profile in use, then try again",
            )
        if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
            return ProviderError(
                f"cannot reach {self.endpoint} ({operation}, {attempts} attempts)",
                hint="check the network, HTTPS_PROXY, and the endpoint_url setting if set",
            )
        if isinstance(exc, ReadTimeoutError | ConnectionClosedError):
            return ProviderError(
                f"{self.endpoint} did not answer {operation} ({attempts} attempts)",
                hint="Route53 or the network is slow; try again or raise the timeout setting",
            )
        if not isinstance(exc, ClientError):
            return ProviderError(f"Route53 {operation} failed: {exc}")
        code = _code(exc)
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if code in _DENIED:
            found = _IAM_ACTION.search(message)
            action = found.group(1) if found else f"route53:{operation}"
            return ProviderAuthError(
                f"AWS denied {operation}: the credentials in use lack {action}",
                hint=f"allow {action} in their IAM policy ({POLICY_HINT})",
            )
        if code in _REJECTED_CREDENTIALS:
            return ProviderAuthError(
                f"AWS rejected the credentials ({code}) on {operation}",
                hint="the access key is wrong, disabled or expired; renew it. " + CHAIN_HINT,
            )
        if code == "NoSuchHostedZone":
            return ProviderError(
                f"Route53 has no hosted zone with that id ({operation}): {message}",
                hint="check the hosted_zone_id setting and the AWS account in use",
            )
        if code == "InvalidChangeBatch" and _STALE.search(message):
            return StaleExpectationError(
                "the records changed since the plan was made; Route53 refused the whole "
                f"change batch and nothing in it was changed ({message})"
            )
        if is_transient(exc):
            return ProviderError(
                f"Route53 still answered {code or _status(exc)} to {operation} "
                f"after {attempts} attempts",
                hint="the account is rate-limited or Route53 is busy; try again later "
                "or raise max_attempts",
            )
        return ProviderError(f"Route53 refused {operation}: {code}: {message}")

    # ------------------------------------------------------------------ operations

    def first_zones(self) -> tuple[dict[str, list[HostedZone]], bool]:
        """The account's first page of hosted zones (up to 100, in name order), grouped by
        name, and whether that page was all of them. One call answers for every zone
        of most accounts."""
        page = self.call("ListHostedZonesByName", MaxItems="100")
        zones = [_zone(z) for z in page.get("HostedZones", [])]
        truncated = bool(page.get("IsTruncated"))
        return _complete_groups(zones, truncated), not truncated

    def all_zones(self) -> list[HostedZone]:
        """Every hosted zone of the account, page after page. ``ListHostedZonesByName``
        rather than ``ListHostedZones``: the minimal IAM policy already allows it."""
        params: dict[str, Any] = {"MaxItems": "100"}
        zones: list[HostedZone] = []
        for _ in range(self.MAX_PAGES):
            page = self.call("ListHostedZonesByName", **params)
            zones.extend(_zone(z) for z in page.get("HostedZones", []))
            if not page.get("IsTruncated"):
                return zones
            params = {
                "DNSName": page["NextDNSName"],
                "HostedZoneId": page["NextHostedZoneId"],
                "MaxItems": "100",
            }
        raise ProviderError("Route53 kept paging the hosted zones")

    def zones_named(self, name: str) -> tuple[list[HostedZone], dict[str, list[HostedZone]]]:
        """Every hosted zone called ``name`` (absolute), and the other names the first
        page answered completely (Route53 lists zones in name order from ``name``)."""
        params: dict[str, Any] = {"DNSName": name, "MaxItems": "100"}
        found: list[HostedZone] = []
        neighbours: dict[str, list[HostedZone]] = {}
        for page_number in range(self.MAX_PAGES):
            page = self.call("ListHostedZonesByName", **params)
            zones = [_zone(z) for z in page.get("HostedZones", [])]
            truncated = bool(page.get("IsTruncated"))
            found.extend(z for z in zones if z.name == name)
            if page_number == 0:
                neighbours = _complete_groups(zones, truncated)
            if not truncated or not zones or zones[-1].name != name:
                return found, neighbours
            params = {
                "DNSName": page["NextDNSName"],
                "HostedZoneId": page["NextHostedZoneId"],
                "MaxItems": "100",
            }
        raise ProviderError(f"Route53 kept paging the hosted zones named {name}")

    def record_sets(
        self, zone_id: str, start_name: str, start_type: str
    ) -> Iterator[dict[str, Any]]:
        """The zone's record sets in Route53's order from (``start_name``, ``start_type``),
        fetched page by page only as far as the caller iterates."""
        params: dict[str, Any] = {
            "HostedZoneId": zone_id,
            "StartRecordName": start_name,
            "StartRecordType": start_type,
            "MaxItems": "300",
        }
        for _ in range(self.MAX_PAGES):
            page = self.call("ListResourceRecordSets", **params)
            yield from page.get("ResourceRecordSets", [])
            if not page.get("IsTruncated"):
                return
            params = {
                "HostedZoneId": zone_id,
                "StartRecordName": page["NextRecordName"],
                "StartRecordType": page["NextRecordType"],
                "MaxItems": "300",
            }
            if page.get("NextRecordIdentifier"):
                params["StartRecordIdentifier"] = page["NextRecordIdentifier"]
        raise ProviderError(f"Route53 kept paging the records of hosted zone {zone_id}")

    def change(self, zone_id: str, changes: list[dict[str, Any]], comment: str) -> str:
        """Submit one change batch; return its change id."""
        answer = self.call(
            "ChangeResourceRecordSets",
            HostedZoneId=zone_id,
            ChangeBatch={"Comment": comment[:256], "Changes": changes},
        )
        return str(answer["ChangeInfo"]["Id"])

    def change_status(self, change_id: str) -> str:
        """``PENDING`` or ``INSYNC``."""
        return str(self.call("GetChange", Id=change_id)["ChangeInfo"]["Status"])

    def delegation(self, zone_id: str) -> list[str]:
        """The name servers Route53 assigned to a public hosted zone."""
        answer = self.call("GetHostedZone", Id=zone_id)
        return [str(ns) for ns in answer.get("DelegationSet", {}).get("NameServers", [])]


def _complete_groups(zones: list[HostedZone], truncated: bool) -> dict[str, list[HostedZone]]:
    """Zones of one listing page grouped by name, keeping only groups known to be whole:
    every group but the last, and the last too when nothing follows the page."""
    groups: dict[str, list[HostedZone]] = {}
    for zone in zones:
        groups.setdefault(zone.name, []).append(zone)
    if truncated and zones:
        groups.pop(zones[-1].name, None)
    return groups


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
