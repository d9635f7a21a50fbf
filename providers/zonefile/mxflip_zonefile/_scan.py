"""Private: a quick reader for plain zone files, so that checking a large zone and reading
its MX RRsets does not cost a full dnspython parse (0.8 s at 10,000 records: most of
``status``'s time on a zone file).

It understands only the plain subset most generated zones use: one record per line,
``$ORIGIN`` (absolute) and ``$TTL`` (seconds), owner names of letters, digits, ``-`` and
``_``, numeric TTLs, class ``IN``, and SOA, NS, MX, A, AAAA and CNAME records. On anything
else (quotes, parentheses, escapes, other types, TTL units, records outside the zone, a
CNAME beside other data, no ``$TTL`` …) it gives up and returns None: the caller then
parses with dnspython, which decides (and words any error). So it never accepts a file
dnspython refuses, and it reads the same MX RRsets and NS names (both checked against
dnspython by property tests on generated zone files).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.ipv4
import dns.ipv6

from mxflip import MX, RRset

_LABEL = r"[A-Za-z0-9_-]{1,63}"
#: A relative or absolute name: labels joined by single dots, an optional final dot.
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
#: The characters after which a line is no longer plain (quotes, grouping, escapes).
_NOT_PLAIN = re.compile(r'["()\\\r]')
_MAX_TTL = 2**31 - 1
_MAX_UINT32 = 2**32 - 1
_SUPPORTED = frozenset({"SOA", "NS", "MX", "A", "AAAA", "CNAME"})


class _GiveUp(Exception):
    """Not a plain zone file: dnspython must decide."""


@dataclass(frozen=True)
class Scanned:
    """What a plain zone file holds that mxflip reads: the MX RRsets and the apex NS."""

    origin: str
    #: MX RRsets by absolute lower-case owner name.
    mx: dict[str, RRset]
    #: The NS names at the apex, absolute without the trailing dot, lower-case, sorted.
    nameservers: list[str]

    def read_mx(self, name: str) -> RRset | None:
        """The MX RRset of ``name`` (absolute), or None."""
        found = self.mx.get(name.lower())
        return None if found is None else RRset(name, found.ttl, found.records)


def scan(text: str, origin: str) -> Scanned | None:
    """Read ``text`` as the zone ``origin`` (absolute), or None when it is not plain."""
    try:
        return _scan(text, origin.lower())
    except _GiveUp:
        return None


def _absolute(name: str, current: str) -> str:
    """``name`` (``@``, relative or absolute) as an absolute lower-case name."""
    if name == "@":
        return current
    if _NAME.fullmatch(name) is None:
        raise _GiveUp
    full = name if name.endswith(".") else f"{name}.{current}"
    # The wire length of a name is its text length plus one: keep far below 255.
    if len(full) > 240:
        raise _GiveUp
    return full.lower()


def _uint(text: str, limit: int) -> int:
    if not text.isdigit() or not text.isascii():
        raise _GiveUp
    value = int(text)
    if value > limit:
        raise _GiveUp
    return value


def _inside(name: str, origin: str) -> bool:
    return name == origin or name.endswith("." + origin) or origin == "."


def _scan(text: str, origin: str) -> Scanned:
    if not text.isascii() or not origin.endswith("."):
        raise _GiveUp
    current = origin
    default_ttl: int | None = None
    owner: str | None = None
    #: (owner, type) -> (ttl, rdata texts) as dnspython would build the rdataset.
    sets: dict[tuple[str, str], tuple[int, set[tuple[object, ...]]]] = {}
    types_at: dict[str, set[str]] = {}
    for line in text.split("\n"):
        if _NOT_PLAIN.search(line):
            raise _GiveUp
        body = line.split(";", 1)[0]
        fields = body.split()
        if not fields:
            continue
        first = fields[0]
        if first.startswith("$"):
            if line[0] in " \t" or len(fields) != 2:
                raise _GiveUp
            directive = first.upper()
            if directive == "$ORIGIN":
                if not fields[1].endswith("."):
                    raise _GiveUp
                current = _absolute(fields[1], current)
            elif directive == "$TTL":
                default_ttl = _uint(fields[1], _MAX_TTL)
            else:
                raise _GiveUp
            continue
        if line[0] in " \t":
            if owner is None:
                raise _GiveUp
        else:
            owner = _absolute(first, current)
            fields = fields[1:]
        if not _inside(owner, origin):
            raise _GiveUp  # dnspython skips such lines silently; let it
        ttl: int | None = None
        seen_class = False
        rest = iter(fields)
        rdtype = None
        for field in rest:
            if field.isdigit() and ttl is None:
                ttl = _uint(field, _MAX_TTL)
            elif field.upper() == "IN" and not seen_class:
                seen_class = True
            else:
                rdtype = field.upper()
                break
        if rdtype not in _SUPPORTED:
            raise _GiveUp
        if ttl is None:
            if default_ttl is None:
                raise _GiveUp  # dnspython's implicit TTL rules (SOA minimum, last TTL)
            ttl = default_ttl
        rdata = _rdata(rdtype, list(rest), current)
        key = (owner, rdtype)
        if key in sets:
            old_ttl, values = sets[key]
            if rdtype in ("SOA", "CNAME"):
                raise _GiveUp  # a second one: dnspython's error, or its own merge
            values.add(rdata)
            sets[key] = (min(old_ttl, ttl), values)
        else:
            sets[key] = (ttl, {rdata})
        types_at.setdefault(owner, set()).add(rdtype)
    for name, types in types_at.items():
        if "CNAME" in types and len(types) > 1:
            raise _GiveUp  # dnspython resolves CNAME-and-other-data itself
        if "SOA" in types and name != origin:
            raise _GiveUp
    if (origin, "SOA") not in sets or (origin, "NS") not in sets:
        raise _GiveUp  # dnspython names what is missing
    mx = {
        name: RRset(name, ttl, frozenset(_mx(values)))
        for (name, rdtype), (ttl, values) in sets.items()
        if rdtype == "MX"
    }
    nameservers = sorted(str(ns[0]).rstrip(".") for ns in sets[(origin, "NS")][1])
    return Scanned(origin, mx, nameservers)


def _rdata(rdtype: str, fields: list[str], current: str) -> tuple[object, ...]:
    """The record's data, checked as dnspython checks it (names made absolute)."""
    if rdtype == "MX":
        if len(fields) != 2:
            raise _GiveUp
        return (_uint(fields[0], 65535), _absolute(fields[1], current))
    if rdtype in ("NS", "CNAME"):
        if len(fields) != 1:
            raise _GiveUp
        return (_absolute(fields[0], current),)
    if rdtype == "SOA":
        if len(fields) != 7:
            raise _GiveUp
        names = (_absolute(fields[0], current), _absolute(fields[1], current))
        return (*names, _uint(fields[2], _MAX_UINT32), *(_uint(f, _MAX_TTL) for f in fields[3:]))
    if len(fields) != 1:
        raise _GiveUp
    try:  # dnspython's own address checks: cheap, and exactly its rules
        if rdtype == "A":
            return (dns.ipv4.inet_aton(fields[0]),)
        return (dns.ipv6.inet_aton(fields[0]),)
    except (dns.exception.DNSException, ValueError):
        raise _GiveUp from None


def _mx(values: Iterable[tuple[object, ...]]) -> list[MX]:
    try:
        return [MX(int(str(pref)), str(host)) for pref, host in values]
    except ValueError:
        raise _GiveUp from None
