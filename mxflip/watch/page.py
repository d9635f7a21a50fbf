"""The read-only status page: per domain the live set, nameserver agreement, backup
readiness, the canary delay over the last 24 h as an inline SVG chart, open proposals and
recent operations. One self-contained HTML document: no script, no external asset, so it
works offline and behind any proxy."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from mxflip.duration import format_duration
from mxflip.journal import Operation, iso
from mxflip.watch.rounds import DomainReport, RoundReport
from mxflip.watch.store import SERIES_SECONDS, WatchState

_COLORS = {
    "ok": "#1a7f37",
    "suspect": "#9a6700",
    "failing": "#cf222e",
    "switched": "#8250df",
    "recovering": "#0969da",
}
_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2328;background:#fff}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin:.2rem 0}
section.domain{border:1px solid #d0d7de;border-radius:6px;padding:1rem;margin:1rem 0}
.state{display:inline-block;color:#fff;border-radius:1rem;padding:.1rem .7rem;font-weight:600}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d0d7de;padding:.2rem .5rem;
text-align:left;font-size:.9rem}ul.alerts li{color:#cf222e}code{background:#f6f8fa;padding:0 .2rem}
.muted{color:#656d76}svg{background:#f6f8fa;border:1px solid #d0d7de}
"""
W, H, PAD = 720, 160, 36


def render_page(
    report: RoundReport | None,
    state: WatchState | None,
    operations: Sequence[Operation],
    now: float,
    interval: float,
) -> str:
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        "<title>mxflip watch</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>mxflip watch</h1>",
    ]
    if report is None:
        parts.append("<p id=no-round>No round has finished yet.</p>")
    else:
        parts.append(
            f"<p class=muted id=last-round>Last round {escape(iso(report.finished))} "
            f"({report.finished - report.started:.1f} s; every {escape(format_duration(interval))})"
            f"{'; <strong>overran its interval</strong>' if report.overrun else ''}</p>"
        )
        if report.role == "follower":
            parts.append(
                "<p id=role><strong>Follower</strong>: another watcher leads and acts ("
                f"{escape(report.leader or 'none yet')}); this one takes over when its "
                "lease expires.</p>"
            )
        for d in report.domains:
            parts.append(_domain(d, state, now))
        parts.append(_proposals(report))
        if report.watcher:
            parts.append("<h2>Watcher</h2><ul class=alerts>")
            parts += [f"<li>{escape(m)}</li>" for _, _, m in report.watcher]
            parts.append("</ul>")
    parts.append(_operations(operations))
    parts.append("</body></html>")
    return "".join(parts)


def _domain(d: DomainReport, state: WatchState | None, now: float) -> str:
    color = _COLORS.get(d.state, "#656d76")
    ns = "".join(
        f"<tr><td>{escape(s)}</td><td>{escape(a)}</td><td>{escape(e or '✓')}</td></tr>"
        for s, a, e in d.nameservers
    )
    records = "<br>".join(escape(r) for r in d.records or ()) or "(none)"
    alerts = "".join(f"<li>{escape(m)}</li>" for _, _, m in d.conditions)
    return (
        f"<section class=domain data-domain='{escape(d.domain)}'>"
        f"<h2>{escape(d.domain)} <span class=state data-state='{escape(d.state)}' "
        f"style='background:{color}'>{escape(d.state)}</span></h2>"
        f"<p>{escape(d.cause)}</p>"
        f"<table><tr><th>Live</th><td class=live>{escape(d.live)}</td></tr>"
        f"<tr><th>Records</th><td>{records} (TTL {d.ttl if d.ttl is not None else '?'})</td></tr>"
        f"<tr><th>Nameservers agree</th><td class=agree>{'yes' if d.consistent else 'no'}</td></tr>"
        "<tr><th>Backup readiness</th>"
        f"<td class=backup-ready>{escape(d.backup_ready or '-')}</td></tr>"
        + "".join(
            f"<tr><th></th><td class=backup-reason>{escape(r)}</td></tr>"
            for r in d.backup_reasons[:3]
        )
        + "<tr><th>Canary primary / backup</th>"
        f"<td>{escape(d.primary_path or '-')} / "
        f"{escape(d.backup_path or '-')}</td></tr></table>"
        f"<table><tr><th>Nameserver</th><th>Serves</th><th>Error</th></tr>{ns}</table>"
        + (f"<ul class=alerts>{alerts}</ul>" if alerts else "")
        + (f"<p>Command: <code>{escape(d.command)}</code></p>" if d.command else "")
        + _chart(d.domain, state, now)
        + "</section>"
    )


def _chart(domain: str, state: WatchState | None, now: float) -> str:
    """Canary delay per path over the last 24 h; a failing canary is a red mark on top."""
    points = [s for s in (state.series if state else []) if s[1] == domain]
    start = now - SERIES_SECONDS
    delays = [s[3] for s in points if s[3] is not None]
    top = max([60.0, *delays]) * 1.1

    def x(t: float) -> float:
        return PAD + (W - 2 * PAD) * max(0.0, t - start) / SERIES_SECONDS

    def y(v: float) -> float:
        return H - PAD + -(H - 2 * PAD) * min(v, top) / top

    body = [
        f"<svg class=chart role=img aria-label='canary delay, last 24 hours, {escape(domain)}' "
        f"width={W} height={H} viewBox='0 0 {W} {H}' xmlns='http://www.w3.org/2000/svg'>",
        f"<line x1={PAD} y1={H - PAD} x2={W - PAD} y2={H - PAD} stroke='#656d76'/>",
        f"<line x1={PAD} y1={PAD} x2={PAD} y2={H - PAD} stroke='#656d76'/>",
        f"<text x=4 y={PAD + 4} font-size=10>{escape(format_duration(top))}</text>",
        f"<text x={PAD} y={H - 8} font-size=10>-24 h</text>",
        f"<text x={W - PAD - 20} y={H - 8} font-size=10>now</text>",
    ]
    for path, color in (("primary", "#0969da"), ("backup", "#8250df")):
        mine = sorted(s for s in points if s[2] == path)
        ok = [(x(s[0]), y(s[3])) for s in mine if s[3] is not None]
        if len(ok) > 1:
            pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in ok)
            body.append(
                f"<polyline class='series {path}' fill=none stroke='{color}' points='{pts}'/>"
            )
        for a, b in ok:
            body.append(f"<circle class='point {path}' cx={a:.1f} cy={b:.1f} r=2 fill='{color}'/>")
        for s in mine:
            if s[3] is None:
                body.append(
                    f"<rect class='failed {path}' x={x(s[0]) - 2:.1f} y={PAD - 6} width=4 "
                    f"height=6 fill='#cf222e'><title>{escape(s[4])}</title></rect>"
                )
    body.append(
        f"<text x={W - 2 * PAD - 110} y=14 font-size=10 fill='#0969da'>primary</text>"
        f"<text x={W - 2 * PAD - 50} y=14 font-size=10 fill='#8250df'>backup</text></svg>"
    )
    return "".join(body)


def _proposals(report: RoundReport) -> str:
    if not report.proposals:
        return "<h2>Proposals</h2><p id=no-proposals class=muted>None open.</p>"
    rows = "".join(
        f"<tr class=proposal><td>{escape(p.id)}</td><td>{escape(p.kind)} {escape(p.target)}</td>"
        f"<td>{escape(p.plan_hash)}</td><td>{escape(iso(p.expires_at))}</td>"
        f"<td>{escape(p.evidence)}</td><td><code>mxflip approve {escape(p.id)}</code></td></tr>"
        for p in report.proposals
    )
    return (
        "<h2>Proposals</h2><table id=proposals><tr><th>Id</th><th>Action</th><th>Plan</th>"
        f"<th>Expires</th><th>Evidence</th><th>Approve</th></tr>{rows}</table>"
    )


def _operations(ops: Sequence[Operation]) -> str:
    if not ops:
        return "<h2>Recent operations</h2><p class=muted>None.</p>"
    rows = "".join(
        f"<tr class=operation><td>{escape(o.id)}</td><td>{escape(o.kind)}</td>"
        f"<td>{escape(str(o.intent.get('user')))}</td><td>{escape(o.outcome)}</td>"
        f"<td>{escape(str(o.intent.get('reason') or ''))}</td></tr>"
        for o in reversed(ops[-10:])
    )
    return (
        "<h2>Recent operations</h2><table id=operations><tr><th>Id</th><th>Kind</th>"
        f"<th>User</th><th>Outcome</th><th>Reason</th></tr>{rows}</table>"
    )
