"""SOA serial numbers: RFC 1982 serial arithmetic and the next serial after a change.

Secondaries only transfer a zone whose serial is *greater* in serial-number arithmetic, so
every write must move the serial forward. Zones whose serial looks like a date
(``YYYYMMDDnn``) keep that form: the next serial is today's ``YYYYMMDD00`` when that is
greater, else the old serial plus one.
"""

from __future__ import annotations

import datetime

SERIAL_BITS = 32
_MODULUS = 1 << SERIAL_BITS
_HALF = 1 << (SERIAL_BITS - 1)

#: Years accepted as the date part of a ``YYYYMMDDnn`` serial; anything else is a counter.
_DATE_YEARS = range(1980, 2200)


def serial_gt(a: int, b: int) -> bool:
    """True when serial ``a`` is greater than ``b`` in RFC 1982 arithmetic (SERIAL_BITS 32).

    Undefined comparisons (the two exactly 2**31 apart) are False, as the RFC allows.
    """
    return a != b and ((a < b and b - a > _HALF) or (a > b and a - b < _HALF))


def serial_add(serial: int, n: int) -> int:
    """``serial + n`` modulo 2**32; ``n`` must be at most 2**31 - 1 (RFC 1982 §3.1)."""
    if not 0 <= n < _HALF:
        raise ValueError(f"cannot add {n} to a serial (0 <= n < 2**31)")
    return (serial + n) % _MODULUS


def date_serial_day(serial: int) -> datetime.date | None:
    """The date of a ``YYYYMMDDnn`` serial, or None when ``serial`` is not of that form."""
    text = str(serial)
    if len(text) != 10:
        return None
    year, month, day = int(text[:4]), int(text[4:6]), int(text[6:8])
    if year not in _DATE_YEARS:
        return None
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None


def next_serial(old: int, today: datetime.date) -> int:
    """The serial to write after ``old``: always greater than ``old`` (RFC 1982).

    A ``YYYYMMDDnn`` serial becomes ``today``'s ``YYYYMMDD00`` when that is greater, else
    ``old + 1`` (the eleventh change of a day rolls into the next day's form, as hand-kept
    zones do). Any other serial is a counter and becomes ``old + 1``; zero is skipped
    because some tools treat a zero serial as "unset".
    """
    if not 0 <= old < _MODULUS:
        raise ValueError(f"SOA serial {old} is out of range 0-{_MODULUS - 1}")
    if date_serial_day(old) is not None:
        candidate = int(today.strftime("%Y%m%d")) * 100
        if candidate < _MODULUS and serial_gt(candidate, old):
            return candidate
    new = serial_add(old, 1)
    return new if new != 0 else 1
