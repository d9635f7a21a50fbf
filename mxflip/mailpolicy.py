"""Mail policy of an MX set: MTA-STS (RFC 8461) coverage and DANE (RFC 7672) TLSA matches.

Senders that honour MTA-STS ``enforce`` refuse to deliver to an MX host no ``mx:`` line
matches, and senders that honour DANE refuse a host whose certificate matches no usable
TLSA record. A switch that makes such a host live drops mail silently; these checks say
so before the switch.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mxflip import certs
from mxflip.findings import Finding, fail, warn
from mxflip.hostport import HostPort
from mxflip.net import https
from mxflip.net.lookup import Lookup, TLSAAnswer, TLSARecord
from mxflip.net.smtp import TLSInfo
from mxflip.retry import AsyncSleep, async_retrying

_MAX_POLICY_BYTES = 64 * 1024
_MODES = ("enforce", "testing", "none")
#: RFC 8461 §3.2: max_age is at most 31557600 seconds (about one year).
_MAX_AGE = 31557600


class PolicyFetchError(Exception):
    """The MTA-STS policy could not be fetched or parsed; the message says why."""


@dataclass(frozen=True)
class MTASTSPolicy:
    mode: str
    mx: tuple[str, ...]
    max_age: int


@dataclass(frozen=True)
class MTASTS:
    """What a domain publishes: the TXT record's id, the policy (when fetched), where it
    came from, and the findings met on the way."""

    domain: str
    txt_id: str | None = None
    policy: MTASTSPolicy | None = None
    url: str | None = None
    findings: tuple[Finding, ...] = ()

    @property
    def mode(self) -> str | None:
        """``enforce``, ``testing``, ``none``, or None when there is no policy."""
        return self.policy.mode if self.policy else None


def parse_txt(records: Iterable[str]) -> str | None:
    """The ``id`` of the one ``v=STSv1`` TXT record, or None. Raises PolicyFetchError
    when there are several or the record is malformed (RFC 8461 §3.1)."""
    # RFC 8461 §3.1: a record whose first field is not exactly v=STSv1 is not an STS
    # record at all ("v=STSv10" included); it is discarded, not an error.
    sts = [r for r in records if r.split(";", 1)[0].strip() == "v=STSv1"]
    if not sts:
        return None
    if len(sts) > 1:
        raise PolicyFetchError("more than one v=STSv1 TXT record; senders ignore them all")
    fields = dict(part.strip().partition("=")[::2] for part in sts[0].split(";") if part.strip())
    ident = fields.get("id", "")
    if not ident or not ident.isalnum() or len(ident) > 32:
        raise PolicyFetchError(f"the TXT record has no valid id= (got {sts[0]!r})")
    return ident


def parse_policy(text: str) -> MTASTSPolicy:
    """Parse the policy file body (RFC 8461 §3.2). Raises PolicyFetchError."""
    values: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PolicyFetchError(f"policy line {line!r} is not 'key: value'")
        values.setdefault(key.strip().lower(), []).append(value.strip())
    if values.get("version") != ["STSv1"]:
        raise PolicyFetchError("the policy does not say 'version: STSv1'")
    mode = (values.get("mode") or [""])[0].lower()
    if mode not in _MODES:
        raise PolicyFetchError(f"the policy mode {mode!r} is not enforce, testing or none")
    max_age_text = (values.get("max_age") or [""])[0]
    if not max_age_text.isdigit() or len(max_age_text) > 10:
        raise PolicyFetchError("the policy has no numeric max_age")
    if int(max_age_text) > _MAX_AGE:
        raise PolicyFetchError(
            f"the policy's max_age {max_age_text} is above {_MAX_AGE} (RFC 8461 §3.2: "
            "at most one year); senders reject the policy"
        )
    mx = tuple(p.lower().rstrip(".") for p in values.get("mx", []))
    if mode != "none" and not mx:
        raise PolicyFetchError(f"the policy mode is {mode} but it lists no mx: patterns")
    return MTASTSPolicy(mode=mode, mx=mx, max_age=int(max_age_text))


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 §4.1: a literal name, or ``*.`` + a suffix matching exactly one more
    leftmost label (``*.example.com`` matches ``mx.example.com``, not ``a.mx.example.com``
    nor ``example.com``)."""
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == pattern[2:]
    return pattern == host


def coverage_findings(sts: MTASTS, hosts: Iterable[str]) -> list[Finding]:
    """A finding for each host no ``mx:`` pattern matches: a failure under ``enforce``
    (senders refuse it), a warning under ``testing``."""
    policy = sts.policy
    if policy is None or policy.mode == "none":
        return []
    out = []
    domain = sts.domain.rstrip(".")
    for host in sorted(hosts):
        name = host.rstrip(".")
        if any(mx_matches(p, name) for p in policy.mx):
            continue
        parent = name.partition(".")[2]
        message = (
            f"{name} is not matched by any mx: line of the MTA-STS policy "
            f"(mode {policy.mode}; it lists {', '.join(policy.mx)}): add 'mx: {name}'"
            + (f" or 'mx: *.{parent}'" if parent.count(".") >= 1 else "")
            + f" to {sts.url or 'the policy file'}, and change the id= in the "
            f"_mta-sts.{domain} TXT record so senders fetch it again"
        )
        if policy.mode == "enforce":
            out.append(fail("mta-sts-uncovered", message + "; senders will refuse this host"))
        else:
            out.append(warn("mta-sts-uncovered", message))
    return out


async def fetch_mta_sts(
    domain: str,
    lookup: Lookup,
    *,
    url_template: str,
    context: ssl.SSLContext,
    timeout: float,
    sleep: AsyncSleep | None = None,
    connect: Mapping[str, tuple[HostPort, ...]] | None = None,
) -> MTASTS:
    """Look up ``_mta-sts.DOMAIN`` and, when present, fetch and parse the policy; the
    policy host is resolved through ``lookup`` and ``connect`` like every other lookup.
    Problems become findings (warnings: a sender with a cached policy keeps using it)."""
    name = domain.rstrip(".")
    try:
        txt_id = parse_txt(await lookup.txt(f"_mta-sts.{name}."))
    except PolicyFetchError as exc:
        return MTASTS(domain, findings=(warn("mta-sts-txt", f"_mta-sts.{name}: {exc}"),))
    if txt_id is None:
        return MTASTS(domain)
    url = url_template.replace("{domain}", name)
    retrying = async_retrying(
        lambda exc: isinstance(exc, OSError | TimeoutError),
        attempts=2,
        max_wait=2.0,
        max_total=timeout * 3,
        sleep=sleep,
    )
    try:
        async for attempt in retrying:
            with attempt:
                body = await https.get(
                    url,
                    context=context,
                    timeout=timeout,
                    lookup=lookup,
                    connect=connect or {},
                    max_bytes=_MAX_POLICY_BYTES,
                )
        policy = parse_policy(body)
    except (PolicyFetchError, https.FetchError, OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        return MTASTS(
            domain,
            txt_id=txt_id,
            url=url,
            findings=(
                warn(
                    "mta-sts-unavailable",
                    f"_mta-sts.{name} announces a policy (id {txt_id}) but {url} "
                    f"could not be used: {reason}",
                ),
            ),
        )
    return MTASTS(domain, txt_id=txt_id, policy=policy, url=url)


# ---------------------------------------------------------------------------- DANE


def usable_tlsa(records: Sequence[TLSARecord]) -> list[TLSARecord]:
    """DANE-TA(2) and DANE-EE(3) records with known selector and matching type
    (RFC 7672 §3.1: PKIX usages 0 and 1 are not for SMTP)."""
    return [
        r for r in records if r.usage in (2, 3) and r.selector in (0, 1) and r.mtype in (0, 1, 2)
    ]


def tlsa_matches(record: TLSARecord, der: bytes) -> bool:
    """Does one certificate (DER) match one TLSA record?"""
    return certs.tlsa_data(der, record.selector, record.mtype) == record.data


def dane_findings(
    host: str,
    answer: TLSAAnswer | Sequence[TLSARecord],
    tls: TLSInfo | None,
    now: dt.datetime | None = None,
) -> list[Finding]:
    """Findings for one address of ``host`` against its TLSA records (none when the host
    publishes none). A missing or failed STARTTLS is judged by the caller (TLS is
    required). A bare sequence of records counts as authenticated.

    As OpenSSL's DANE code (Postfix's) judges, RFC 7672 §3.1: DANE-EE(3) matches the leaf
    only and ignores names and dates; DANE-TA(2) matches a certificate *above* the leaf,
    and the chain from the leaf up to it must verify and the leaf must name the host."""
    if isinstance(answer, TLSAAnswer):
        records, authenticated, why_not = answer.records, answer.authenticated, answer.why_not
    else:
        records, authenticated, why_not = tuple(answer), True, ""
    if not records:
        return []
    name = host.rstrip(".")
    if not authenticated:
        return [
            warn(
                "dane-unauthenticated",
                f"_25._tcp.{name} has TLSA records, but DANE could not be judged: {why_not}. "
                "DANE senders use TLSA records only from a DNSSEC-signed zone; point "
                "[probe] resolvers at a validating resolver to judge them",
            )
        ]
    usable = usable_tlsa(records)
    if not usable:
        return [
            warn(
                "dane-unusable",
                f"_25._tcp.{name} has TLSA records but none with usage 2 or 3; "
                "DANE senders fall back to unauthenticated TLS",
            )
        ]
    if tls is None or not tls.chain:
        return []
    chain = tls.chain
    moment = now or dt.datetime.now(dt.UTC)
    problems: list[str] = []
    for record in usable:
        if record.usage == 3:
            if tlsa_matches(record, chain[0]):
                return []
            continue
        for depth in range(1, len(chain)):  # a trust anchor is never the leaf itself
            if tlsa_matches(record, chain[depth]):
                why = certs.chain_problem(chain, depth, name, moment)
                if why is None:
                    return []
                problems.append(
                    f"TLSA {_short(record)} matches the certificate at depth {depth}, but {why}"
                )
                break
    if not problems and not tls.chain_complete and any(r.usage == 2 for r in usable):
        return [
            warn(
                "dane-unjudged",
                f"{name} has DANE-TA (usage 2) records, but only the leaf of its chain could "
                "be read here (Python before 3.13 without the private chain API), so DANE "
                "could not be judged",
            )
        ]
    detail = f" ({'; '.join(problems)})" if problems else ""
    return [
        fail(
            "dane-mismatch",
            f"the certificate presented by {name} matches none of its {len(usable)} usable "
            f"TLSA record{'s' * (len(usable) != 1)} at _25._tcp.{name}{detail}; DANE senders "
            "will not deliver: publish a TLSA record for this certificate",
        )
    ]


def _short(record: TLSARecord) -> str:
    text = str(record)
    return text if len(text) <= 30 else text[:27] + "…"
