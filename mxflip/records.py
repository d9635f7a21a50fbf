"""Value types for MX records and RRsets, and the name rules mxflip enforces.

Names are kept absolute, lower-case and with a trailing dot (``mail.example.test.``) so
that comparisons never depend on how a user or a provider spelled them.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# Matched with fullmatch: ``$`` would also match before a trailing newline.
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_DIGITS_AND_DOTS = re.compile(r"[0-9.]+")
#: Characters that must never reach a wire protocol or a terminal from a name.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class NameError_(ValueError):
    """A host or domain name is not valid; the message says why."""


@functools.lru_cache(maxsize=16384)  # pure; journals and configs repeat the same names
def normalize_name(text: str) -> str:
    """Return ``text`` as an absolute, lower-case DNS name with a trailing dot.

    Raises ``ValueError`` with a readable reason for anything that is not a host name:
    empty labels, labels over 63 octets, names over 253 octets, characters other than
    letters, digits, hyphen and underscore, IP address literals, and the root ``.``.
    Internationalised names are accepted and converted to their A-label (``xn--``) form.
    """
    if _CONTROL.search(text):
        raise NameError_(f"{text!r} holds a control character (CR, LF, NUL, …)")
    raw = text.strip()
    if not raw or raw == ".":
        raise NameError_("empty name (the root '.' is not a host name)")
    name = raw[:-1] if raw.endswith(".") else raw
    # Only digits and dots (IPv4) or a colon (IPv6) can make an address literal; the
    # check is skipped for other names (it is most of the cost of reading a journal).
    if ":" in name or _DIGITS_AND_DOTS.fullmatch(name):
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            pass  # not an address literal: check it as a name below
        else:
            raise NameError_(f"{raw!r} is an IP address; MX targets and domains must be host names")
    try:
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError as exc:
        raise NameError_(f"{raw!r} is not a valid internationalised name") from exc
    name = name.lower()
    if len(name) > 253:
        raise NameError_(f"{raw!r} is longer than 253 characters")
    for label in name.split("."):
        if not label:
            raise NameError_(f"{raw!r} has an empty label")
        if not _LABEL.fullmatch(label):
            raise NameError_(
                f"{raw!r} has an invalid label {label!r} "
                "(letters, digits, '-' and '_' only, 1-63 long, no leading or trailing '-')"
            )
    return name + "."


def display_name(name: str) -> str:
    """A name without its trailing dot, for tables meant for people."""
    return name[:-1] if name.endswith(".") and name != "." else name


@dataclass(frozen=True, order=True)
class MX:
    """One MX record: a preference and an absolute target host name."""

    preference: int
    host: str

    def __post_init__(self) -> None:
        if not 0 <= self.preference <= 65535:
            raise ValueError(f"preference {self.preference} is out of range 0-65535")
        object.__setattr__(self, "host", normalize_name(self.host))

    @classmethod
    @functools.lru_cache(maxsize=16384)  # MX is immutable: one parse per text
    def parse(cls, text: str) -> MX:
        """Parse ``"10 mail.example.test"`` (presentation format, trailing dot optional)."""
        parts = text.split()
        if len(parts) != 2:
            raise ValueError(f"{text!r} is not 'PREFERENCE HOST' (for example '10 mx.example.com')")
        pref_text, host = parts
        if not pref_text.isdigit():
            raise ValueError(f"{text!r}: preference {pref_text!r} is not a whole number")
        return cls(int(pref_text), host)

    def __str__(self) -> str:
        return f"{self.preference} {self.host}"


@dataclass(frozen=True)
class RRset:
    """The MX RRset of one owner name: its records and TTL.

    Two RRsets are compared by records (``same_records``) when deciding which profile is
    live; the TTL matters for rollout timing and exact restores, so ``==`` compares both.
    """

    name: str
    ttl: int
    records: frozenset[MX] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", normalize_name(self.name))
        object.__setattr__(self, "records", frozenset(self.records))
        if not 0 <= self.ttl <= 2**31 - 1:
            raise ValueError(f"TTL {self.ttl} is out of range")

    @classmethod
    def of(cls, name: str, ttl: int, records: Iterable[MX | str]) -> RRset:
        """Build an RRset from ``MX`` values or ``"PREF HOST"`` strings."""
        return cls(name, ttl, frozenset(r if isinstance(r, MX) else MX.parse(r) for r in records))

    def same_records(self, other: RRset | None) -> bool:
        """True when ``other`` holds exactly the same records (TTL ignored)."""
        return other is not None and self.records == other.records

    def with_ttl(self, ttl: int) -> RRset:
        return RRset(self.name, ttl, self.records)

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset(mx.host for mx in self.records)

    def strings(self) -> list[str]:
        """Records as sorted ``"PREF HOST."`` strings (the JSON form)."""
        return [str(mx) for mx in sorted(self.records)]

    def __str__(self) -> str:
        return f"{self.name} {self.ttl} MX {', '.join(self.strings()) or '(empty)'}"
