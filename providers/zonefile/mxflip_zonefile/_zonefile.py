"""Private: parse an RFC 1035 zone file with dnspython and edit its MX RRsets and SOA serial.

Every problem with the file becomes a :class:`ZoneFileError` whose message names the file
(and the line, for syntax errors), so callers can turn it into a config or provider error.
"""

from __future__ import annotations

import datetime
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tokenizer
import dns.transaction
import dns.zone
import dns.zonefile

from mxflip import MX, RRset
from mxflip_zonefile import _scan
from mxflip_zonefile.serial import next_serial

# $INCLUDE and $GENERATE are refused: a rewrite would inline the included file or expand
# the template, silently changing how the user's files are laid out.
_DIRECTIVES = frozenset({"$ORIGIN", "$TTL"})


class ZoneFileError(Exception):
    """The zone file cannot be used; the message names the file and says why."""


def read_text(path: Path) -> str:
    """The zone file's text, or ZoneFileError naming the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ZoneFileError(f"zone file {path} does not exist") from None
    except IsADirectoryError:
        raise ZoneFileError(f"zone file {path} is a directory, not a file") from None
    except PermissionError:
        raise ZoneFileError(f"cannot read zone file {path}: permission denied") from None
    except OSError as exc:
        raise ZoneFileError(f"cannot read zone file {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ZoneFileError(f"zone file {path} line {line}: not UTF-8 text") from None


@dataclass(frozen=True)
class Span:
    """Where one record sits in the file: its owner (relative to the zone's origin), type,
    first and last line (1-based), and the ``$ORIGIN`` in force there."""

    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    first: int
    last: int
    origin: dns.name.Name


@dataclass(frozen=True)
class Layout:
    """Every record's place in the file, and the ``$ORIGIN`` in force at its end."""

    spans: tuple[Span, ...]
    end_origin: dns.name.Name


#: Parsed zones by (origin, exact text). Parsing dominates every command on a large
#: zone, and one command reads the same file several times (config validation, plan,
#: nameservers, the edit check, final states); keyed by the text itself, a cached zone is
#: only ever reused for the very same bytes. Readers must not modify what they get.
_PARSED: OrderedDict[tuple[str | None, str], tuple[dns.zone.Zone, Layout]] = OrderedDict()
_PARSED_KEEP = 4
_PARSED_LOCK = threading.Lock()


def parse(text: str, path: Path, origin: str | None) -> dns.zone.Zone:
    """Parse ``text`` (read from ``path``) as the zone ``origin``; a shared, cached zone
    that callers must not modify (:func:`parse_with_layout` gives one to edit).

    With ``origin`` None the file's first ``$ORIGIN`` names the zone. Names are kept
    relative to the origin, so a rewrite keeps the file's relative style.
    """
    if origin is None:  # the same zone as when it is named: one cache entry
        origin = _leading_origin(text)
    key = (origin, text)
    with _PARSED_LOCK:
        hit = _PARSED.get(key)
        if hit is not None:
            _PARSED.move_to_end(key)
            return hit[0]
    parsed = _parse_with_layout(text, path, origin)
    with _PARSED_LOCK:
        _PARSED[key] = parsed
        while len(_PARSED) > _PARSED_KEEP:
            _PARSED.popitem(last=False)
    return parsed[0]


def parse_with_layout(text: str, path: Path, origin: str | None) -> tuple[dns.zone.Zone, Layout]:
    """:func:`parse`, and where each record sits in ``text`` (for in-place edits). The
    zone is the caller's to modify: a cached one is taken out of the cache."""
    with _PARSED_LOCK:
        hit = _PARSED.pop((origin or _leading_origin(text), text), None)
    return hit if hit is not None else _parse_with_layout(text, path, origin)


def _parse_with_layout(text: str, path: Path, origin: str | None) -> tuple[dns.zone.Zone, Layout]:
    zone = dns.zone.Zone(origin, dns.rdataclass.IN, relativize=True)
    tok = _LineTokenizer(text, str(path))
    spans: list[Span] = []
    try:
        with zone.writer(True) as txn:
            recording = _RecordingTransaction(txn, tok, spans)
            reader = dns.zonefile.Reader(
                tok,
                dns.rdataclass.IN,
                recording,  # type: ignore[arg-type]
                allow_include=False,
                allow_directives=_DIRECTIVES,
            )
            recording.reader = reader
            reader.read()
        zone.check_origin()
        _refuse_repeated_singletons(spans, path)
        assert reader.current_origin is not None  # check_origin() needs an origin
        return zone, Layout(tuple(spans), reader.current_origin)
    except dns.exception.SyntaxError as exc:
        raise ZoneFileError(_syntax_message(str(exc), path)) from None
    except (dns.zone.UnknownOrigin, dns.zonefile.UnknownOrigin):
        raise ZoneFileError(
            f"zone file {path} does not say which zone it holds "
            "(add an $ORIGIN line, or set 'zone' in the provider settings)"
        ) from None
    except dns.zone.NoSOA:
        where = f"at {origin}" if origin else "at its $ORIGIN"
        raise ZoneFileError(
            f"zone file {path} has no SOA record {where} (is it the file of another zone?)"
        ) from None
    except dns.zone.NoNS:
        raise ZoneFileError(f"zone file {path} has no NS records at the zone's apex") from None
    except dns.exception.DNSException as exc:
        raise ZoneFileError(f"zone file {path} is not a valid zone: {exc}") from None


def _refuse_repeated_singletons(spans: Iterable[Span], path: Path) -> None:
    # dnspython keeps only the last SOA or CNAME of a name; name servers refuse the file.
    seen: set[tuple[dns.name.Name, dns.rdatatype.RdataType]] = set()
    for span in spans:
        key = (span.name, span.rdtype)
        if dns.rdatatype.is_singleton(span.rdtype) and key in seen:
            owner = "@" if span.name == dns.name.empty else span.name.to_text()
            raise ZoneFileError(
                f"zone file {path} line {span.first}: a second {span.rdtype.name} record "
                f"for {owner}; a name has at most one"
            )
        seen.add(key)


class _LineTokenizer(dns.tokenizer.Tokenizer):
    """A tokenizer whose ``where()`` is the line of the last token read.

    dnspython's own tokenizer counts the newline that ends a token before the token is
    parsed, so an error in the last field of a line is reported one line too far.
    """

    _token_line = 1
    _ungotten_line = 1
    #: The line where the record being read began (its first token after an end of line).
    record_start = 1
    _at_line_start = True

    def get(self, want_leading: bool = False, want_comment: bool = False) -> dns.tokenizer.Token:
        was_ungotten = self.ungotten_token is not None
        token = super().get(want_leading, want_comment)
        if was_ungotten:
            self._token_line = self._ungotten_line
        else:
            ended_by_newline = token.is_eol() or self.ungotten_char == "\n"
            self._token_line = self.line_number - (1 if ended_by_newline else 0)
        if token.is_eol_or_eof():
            self._at_line_start = True
        elif not token.is_comment() and self._at_line_start:
            self.record_start = self._token_line
            self._at_line_start = False
        return token

    @property
    def token_line(self) -> int:
        """The line of the last token read."""
        return self._token_line

    def unget(self, token: dns.tokenizer.Token) -> None:
        super().unget(token)
        self._ungotten_line = self._token_line

    def where(self) -> tuple[str, int]:
        return (self.filename, max(1, self._token_line))


class _RecordingTransaction:
    """Passes everything to dnspython's transaction, noting where each record came from."""

    def __init__(
        self, txn: dns.transaction.Transaction, tok: _LineTokenizer, spans: list[Span]
    ) -> None:
        self._txn = txn
        self._tok = tok
        self._spans = spans
        self.reader: dns.zonefile.Reader | None = None

    def add(self, name: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> None:
        assert self.reader is not None and self.reader.current_origin is not None
        self._spans.append(
            Span(
                name,
                rdata.rdtype,
                self._tok.record_start,
                self._tok.token_line,
                self.reader.current_origin,
            )
        )
        self._txn.add(name, ttl, rdata)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._txn, attr)


def _syntax_message(detail: str, path: Path) -> str:
    # dnspython says "FILE:LINE: detail"; people read "FILE line LINE: detail".
    prefix = f"{path}:"
    if detail.startswith(prefix):
        line, _, rest = detail[len(prefix) :].partition(":")
        if line.isdigit():
            rest = rest.strip()
            if "is not allowed" in rest:
                rest += (
                    " (mxflip may rewrite the whole file and cannot keep $INCLUDE or $GENERATE;"
                    " write the records out in a plain zone file)"
                )
            return f"zone file {path} line {line}: {rest}"
    return f"zone file {path}: {detail}"


def load(path: Path, origin: str | None) -> dns.zone.Zone:
    """Read and parse the zone file at ``path``."""
    return parse(read_text(path), path, origin)


#: Quick reads (:mod:`._scan`) by (origin, exact text), like ``_PARSED``: the settings
#: check and the reads of one command share one.
_SCANNED: OrderedDict[tuple[str, str], _scan.Scanned | None] = OrderedDict()


def quick_read(text: str, origin: str) -> _scan.Scanned | None:
    """The quick read of ``text`` as the zone ``origin``; None when the file is not plain
    (then only :func:`parse` may judge and read it)."""
    key = (origin, text)
    with _PARSED_LOCK:
        if key in _SCANNED:
            _SCANNED.move_to_end(key)
            return _SCANNED[key]
    found = _scan.scan(text, origin)
    with _PARSED_LOCK:
        _SCANNED[key] = found
        while len(_SCANNED) > _PARSED_KEEP:
            _SCANNED.popitem(last=False)
    return found


def check(path: Path, origin: str | None) -> None:
    """ZoneFileError when the zone file at ``path`` cannot be used as the zone ``origin``
    (None: its ``$ORIGIN``). A plain file is checked by the quick read; any other is
    parsed by dnspython, which also words every error."""
    text = read_text(path)
    origin = origin or _leading_origin(text)
    if origin is None or quick_read(text, origin) is None:
        parse(text, path, origin)


def origin_of(path: Path) -> str:
    """The zone a file with ``$ORIGIN`` holds (absolute, lower-case, trailing dot).

    Read from the lines before the first record, without parsing the whole zone; when
    those do not say it plainly, the full parse decides (and names what is wrong).
    """
    text = read_text(path)
    found = _leading_origin(text)
    if found is not None:
        return found
    return parse(text, path, None).origin.to_text().lower()  # type: ignore[union-attr]


def _leading_origin(text: str) -> str | None:
    """The absolute name of a ``$ORIGIN`` line before any record, if there is one."""
    for line in text.split("\n"):
        fields = line.split(";", 1)[0].split()
        if not fields:
            continue
        directive = fields[0].upper()
        if directive == "$TTL":
            continue
        if directive != "$ORIGIN" or len(fields) != 2 or "\\" in fields[1]:
            return None
        try:
            name = dns.name.from_text(fields[1], origin=None)
        except dns.exception.DNSException:
            return None
        return name.to_text().lower() if name.is_absolute() else None
    return None


def _relative(zone: dns.zone.Zone, name: str) -> dns.name.Name:
    absolute = dns.name.from_text(name)
    assert zone.origin is not None
    if not absolute.is_subdomain(zone.origin):
        raise ZoneFileError(f"{name} is not inside zone {zone.origin}")
    return absolute.relativize(zone.origin)


def read_mx(zone: dns.zone.Zone, name: str) -> RRset | None:
    """The MX RRset of ``name`` (absolute) in ``zone``, or None."""
    rdataset = zone.get_rdataset(_relative(zone, name), dns.rdatatype.MX)
    if rdataset is None or len(rdataset) == 0:
        return None
    assert zone.origin is not None
    records = []
    for rdata in rdataset:
        exchange = rdata.exchange.derelativize(zone.origin).to_text()
        try:
            records.append(MX(rdata.preference, exchange))
        except ValueError as exc:
            raise ZoneFileError(
                f"the MX record '{rdata}' of {name} cannot be used: {exc}"
            ) from None
    return RRset(name, rdataset.ttl, frozenset(records))


def all_mx(zone: dns.zone.Zone) -> list[RRset]:
    """Every MX RRset of ``zone``, sorted by owner name."""
    assert zone.origin is not None
    names = sorted(
        name.derelativize(zone.origin).to_text().lower()
        for name, node in zone.nodes.items()
        if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.MX) is not None
    )
    found = (read_mx(zone, name) for name in names)
    return [rrset for rrset in found if rrset is not None]


def write_mx(zone: dns.zone.Zone, name: str, rrset: RRset | None) -> None:
    """Make ``rrset`` the MX RRset of ``name`` (None deletes it); other types stay."""
    relative = _relative(zone, name)
    node = zone.get_node(relative)
    if rrset is None:
        if node is not None:
            zone.delete_rdataset(relative, dns.rdatatype.MX)
        return
    if node is not None and node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME):
        raise ZoneFileError(f"{name} has a CNAME record; an MX record cannot be added beside it")
    rdataset = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.MX)
    for mx in sorted(rrset.records):
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN, dns.rdatatype.MX, str(mx), origin=zone.origin, relativize=True
        )
        rdataset.add(rdata, rrset.ttl)
    zone.replace_rdataset(relative, rdataset)


def serial(zone: dns.zone.Zone) -> int:
    """The zone's SOA serial."""
    soa = zone.get_rdataset(dns.name.empty, dns.rdatatype.SOA)
    assert soa is not None  # parse() checks the origin has an SOA
    return int(soa[0].serial)


def bump_serial(zone: dns.zone.Zone, today: datetime.date) -> int:
    """Move the SOA serial forward (see :func:`~mxflip_zonefile.serial.next_serial`)."""
    soa = zone.get_rdataset(dns.name.empty, dns.rdatatype.SOA)
    assert soa is not None
    new = next_serial(int(soa[0].serial), today)
    replacement = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.SOA)
    replacement.add(soa[0].replace(serial=new), soa.ttl)
    zone.replace_rdataset(dns.name.empty, replacement)
    return new


def nameservers(zone: dns.zone.Zone) -> list[str]:
    """The NS names at the zone's apex, absolute without the trailing dot, sorted."""
    ns = zone.get_rdataset(dns.name.empty, dns.rdatatype.NS)
    assert zone.origin is not None
    return sorted(
        r.target.derelativize(zone.origin).to_text().rstrip(".").lower() for r in ns or ()
    )


def render(zone: dns.zone.Zone) -> str:
    """The zone as a zone file: ``$ORIGIN`` first, names relative to it, explicit TTLs."""
    return str(zone.to_text(sorted=True, relativize=True, want_origin=True, nl="\n"))


def names_outside(zone: dns.zone.Zone | str, names: Iterable[str]) -> list[str]:
    """The names of ``names`` that are not inside ``zone`` (a parsed zone or its name)."""
    if isinstance(zone, str):
        origin = dns.name.from_text(zone)
    else:
        assert zone.origin is not None
        origin = zone.origin
    return [n for n in names if not dns.name.from_text(n).is_subdomain(origin)]
