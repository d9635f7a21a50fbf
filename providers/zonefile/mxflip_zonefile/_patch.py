"""Private: edit a zone file's text in place, so comments and layout outside the change stay.

Only the MX lines of the changed names and the SOA serial change: old MX lines are
removed, the new ones go where the first old one was (or after the name's other records,
or at the end), and the serial is replaced where it stands. The edited text is accepted
only if it parses to exactly the zone the change should produce; anything this cannot
edit safely returns None, and the caller rewrites the whole file instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import dns.name
import dns.rdatatype
import dns.zone

from mxflip import RRset
from mxflip_zonefile._zonefile import Layout, Span, ZoneFileError, parse

_FIELD = re.compile(r"[^\s()]+")
_UNSPLITTABLE = re.compile(r"\\[\s();\\]")
_Key = tuple[dns.name.Name, dns.rdatatype.RdataType, dns.rdatatype.RdataType]


def edit_in_place(
    text: str,
    layout: Layout,
    edited: dns.zone.Zone,
    path: Path,
    changes: Sequence[tuple[str, RRset | None]],
    old_serial: int,
    new_serial: int,
) -> str | None:
    """``text`` with the MX RRsets of ``changes`` and the serial replaced, or None.

    ``layout`` says where ``text``'s records sit; ``edited`` is the zone the result must
    parse to (the parsed ``text`` with the same changes and serial applied).
    """
    if "\r" in text.replace("\r\n", ""):
        return None  # a lone CR ends a line for dnspython but not for us: line numbers drift
    eol = "\r" if "\r\n" in text else ""  # kept at the end of each line split on "\n"
    lines = text.split("\n")
    origin = edited.origin
    assert origin is not None
    if not _replace_serial(lines, layout, old_serial, new_serial):
        return None

    deleted: set[int] = set()  # 0-based line indexes
    inserts: dict[int, list[str]] = {}  # new lines to put before this 0-based index
    inserted_owner: dict[int, dns.name.Name] = {}  # the owner of the last of those lines
    end = len(lines) - 1 if lines[-1] == "" else len(lines)
    by_owner: dict[dns.name.Name, list[Span]] = {}
    for span in layout.spans:
        by_owner.setdefault(span.name, []).append(span)
    for name, rrset in changes:
        owner = dns.name.from_text(name).relativize(origin)
        same_owner = by_owner.get(owner, [])
        mx = [s for s in same_owner if s.rdtype == dns.rdatatype.MX]
        if mx:
            at, at_origin = mx[0].first - 1, mx[0].origin
        elif same_owner:
            last = max(same_owner, key=lambda s: s.last)
            at, at_origin = last.last, last.origin
        else:
            at, at_origin = end, layout.end_origin
        for span in mx:
            deleted.update(range(span.first - 1, span.last))
        if rrset is not None:
            inserts.setdefault(at, []).extend(_mx_lines(rrset, at_origin, eol))
            inserted_owner[at] = owner
    _keep_inherited_owners(lines, layout, deleted, inserted_owner, origin)

    out: list[str] = []
    for index, line in enumerate(lines):
        out.extend(inserts.get(index, ()))
        if index not in deleted:
            out.append(line)
    if end in inserts and end == len(lines):  # the file did not end with a newline
        out.extend([*inserts[end], ""])
    result = "\n".join(out)
    try:
        if _canonical(parse(result, path, origin.to_text())) != _canonical(edited):
            return None
    except ZoneFileError:
        return None
    return result


def _replace_serial(lines: list[str], layout: Layout, old: int, new: int) -> bool:
    """Replace the SOA's serial field in ``lines``; False when it cannot be found safely."""
    soa = [s for s in layout.spans if s.rdtype == dns.rdatatype.SOA and s.name == dns.name.empty]
    if len(soa) != 1:
        return False
    fields: list[tuple[int, re.Match[str]]] = []
    for index in range(soa[0].first - 1, soa[0].last):
        line = lines[index]
        if _UNSPLITTABLE.search(line):
            return False  # an escaped separator: the simple field split below would be wrong
        code = line.split(";", 1)[0]
        if '"' in code:
            return False
        fields.extend((index, m) for m in _FIELD.finditer(code))
    words = [m.group().upper() for _, m in fields]
    if "SOA" not in words:
        return False
    at = words.index("SOA") + 3  # SOA MNAME RNAME SERIAL
    if at >= len(fields) or not fields[at][1].group().isdigit():
        return False
    index, match = fields[at]
    if int(match.group()) != old:
        return False
    line = lines[index]
    lines[index] = line[: match.start()] + str(new) + line[match.end() :]
    return True


def _keep_inherited_owners(
    lines: list[str],
    layout: Layout,
    deleted: set[int],
    inserted: dict[int, dns.name.Name],
    origin: dns.name.Name,
) -> None:
    """A record line with a blank owner takes the owner of the line before it. Where the
    edit changes that line (deleted, or a new line put in between), write the owner out
    on the line that relied on it. ``inserted`` maps a line index to the owner of the
    last new line put before it."""
    pending = sorted(inserted.items())
    last_owner: dns.name.Name | None = None
    for span in sorted(layout.spans, key=lambda s: s.first):
        index = span.first - 1
        while pending and pending[0][0] <= index:
            last_owner = pending.pop(0)[1]
        if index in deleted:
            continue
        if not lines[index][:1].isspace():
            last_owner = span.name
        elif last_owner != span.name:
            owner = span.name.derelativize(origin).relativize(span.origin).to_text()
            lines[index] = owner + lines[index]
            last_owner = span.name


def _mx_lines(rrset: RRset, here: dns.name.Name, eol: str) -> list[str]:
    """The MX records of ``rrset`` as zone-file lines, names relative to ``here`` (the
    $ORIGIN in force where they go) when they are under it."""

    def show(name: str) -> str:
        return str(dns.name.from_text(name).relativize(here).to_text())

    owner = show(rrset.name)
    return [
        f"{owner} {rrset.ttl} IN MX {mx.preference} {show(mx.host)}{eol}"
        for mx in sorted(rrset.records)
    ]


def _canonical(
    zone: dns.zone.Zone,
) -> dict[_Key, tuple[int, frozenset[str]]]:
    """Every RRset of ``zone`` with its TTL and absolute rdata texts, for comparison."""
    return {
        (name, rds.rdtype, rds.covers): (
            rds.ttl,
            frozenset(r.to_text(origin=zone.origin, relativize=False) for r in rds),
        )
        for name, node in zone.nodes.items()
        for rds in node.rdatasets
    }
