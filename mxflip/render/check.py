"""``mxflip check`` (and the ``--probe`` part of ``status``): readiness as a rich table
with one line per finding, or as the JSON document the command promises."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mxflip.findings import Finding
from mxflip.probe import AddressResult, DomainReadiness, Verdict
from mxflip.records import display_name
from mxflip.render.common import JSON_VERSION

_VERDICT_STYLE = {"ready": "green", "degraded": "yellow", "not-ready": "red"}


def _findings_json(findings: Iterable[Finding]) -> list[dict[str, str]]:
    return [{"severity": f.severity.value, "code": f.code, "message": f.message} for f in findings]


def _address_json(a: AddressResult) -> dict[str, Any]:
    tls = None
    if a.tls is not None:
        tls = {
            "version": a.tls.version,
            "cipher": a.tls.cipher,
            "verified": a.tls.verified,
            "verify_error": a.tls.verify_error,
            "days_left": a.tls_days_left,
            "fingerprint_sha256": a.tls.fingerprint,
        }
    return {
        "address": a.address,
        "verdict": a.verdict.value,
        "steps": [
            {"name": s.name, "code": s.code, "ms": s.ms, "ok": s.ok, "detail": s.detail}
            for s in a.steps
        ],
        "findings": _findings_json(a.findings),
        "extensions": sorted(a.extensions),
        "tls": tls,
    }


def readiness_json(r: DomainReadiness) -> dict[str, Any]:
    """One domain's readiness: the shape ``check --json`` promises per domain."""
    return {
        "domain": display_name(r.domain),
        "profile": r.profile,
        "verdict": r.verdict.value,
        "mta_sts_mode": r.mta_sts_mode,
        "findings": _findings_json(r.findings),
        "hosts": [
            {
                "host": display_name(h.host),
                "preference": h.preference,
                "verdict": h.verdict.value,
                "findings": _findings_json(h.findings),
                "addresses": [_address_json(a) for a in h.addresses],
            }
            for h in r.hosts
        ],
    }


def check_json(results: Sequence[DomainReadiness], profile: str, exit_code: int) -> dict[str, Any]:
    """The ``mxflip check --json`` document."""
    return {
        "version": JSON_VERSION,
        "command": "check",
        "profile": profile,
        "exit_code": exit_code,
        "verdict": Verdict.worst(r.verdict for r in results).value,
        "domains": [readiness_json(r) for r in results],
    }


def _verdict_text(verdict: Verdict) -> Text:
    return Text(verdict.value, style=_VERDICT_STYLE[verdict.value])


def _steps_text(a: AddressResult) -> str:
    """``banner 220 · ehlo 250 · tls TLSv1.3 · rcpt 250 · 812 ms`` — the codes that matter."""
    parts = []
    for s in a.steps:
        if s.name in ("banner", "ehlo", "rcpt", "quit") or s.name == "tls" or not s.ok:
            value = s.detail.split()[0] if s.name == "tls" and s.ok and s.detail else s.code
            parts.append(f"{s.name} {value if value is not None else '✗'}")
    total = sum(s.ms for s in a.steps)
    return " · ".join([*parts, f"{total} ms"])


def finding_lines(r: DomainReadiness) -> list[str]:
    """``example.test mx.example.test 192.0.2.1: fail tls-untrusted: …``, deepest last."""
    return [
        f"{r.display}{' ' + where if where else ''}: {f.severity.value} {f.code}: {f.message}"
        for where, f in r.located_findings()
    ]


def render_check(console: Console, results: Sequence[DomainReadiness], profile: str) -> None:
    table = Table(show_lines=True)
    for col in ("Domain", "Host", "Address", "Verdict", "Handshake"):
        table.add_column(col, no_wrap=col != "Handshake")
    for r in results:
        if not r.hosts:
            table.add_row(r.display, "(no hosts)", "", _verdict_text(r.verdict), "")
        for h in r.hosts:
            rows = h.addresses or (None,)
            for a in rows:
                table.add_row(
                    r.display,
                    display_name(h.host),
                    a.address if a else "(none)",
                    _verdict_text(a.verdict if a else h.verdict),
                    _steps_text(a) if a else "",
                )
    console.print(table)
    for r in results:
        for line in finding_lines(r):
            console.print(line, markup=False, soft_wrap=True)
    worst = Verdict.worst(r.verdict for r in results)
    n = len(results)
    console.print(
        f"{profile} set: {worst.value} ({n} domain{'s' if n != 1 else ''}: "
        + ", ".join(f"{sum(r.verdict is v for r in results)} {v.value}" for v in Verdict)
        + ")",
        markup=False,
        soft_wrap=True,
    )


def health_cell(probe: DomainReadiness | None) -> Text:
    """The live set's verdict and each host's, for the ``status --probe`` table."""
    if probe is None:
        return Text("not probed")
    text = _verdict_text(probe.verdict)
    for h in probe.hosts:
        text.append(f"\n{display_name(h.host)}: ")
        text.append_text(_verdict_text(h.verdict))
    return text
