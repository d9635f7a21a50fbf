"""Just enough DER to read an X.509 certificate's validity and public key.

The standard library hands back a peer certificate only as DER bytes when verification is
off (the opportunistic-TLS path a real sending MTA takes), and DANE matches on the raw
SubjectPublicKeyInfo; this avoids a dependency on ``cryptography`` for two fields.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_SEQUENCE = 0x30
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_VERSION_TAG = 0xA0


class DERError(ValueError):
    """The bytes are not a certificate this reader understands."""


@dataclass(frozen=True)
class CertFacts:
    """The fields mxflip needs from one certificate."""

    not_before: dt.datetime
    not_after: dt.datetime
    spki: bytes  # the full SubjectPublicKeyInfo TLV, as DANE selector 1 hashes it


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the element at ``pos``."""
    if pos + 2 > len(data):
        raise DERError("truncated element")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise DERError("unsupported length encoding")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise DERError("element runs past the end")
    return tag, pos, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, value start, value end) of each element in a constructed value."""
    out = []
    pos = start
    while pos < end:
        tag, vstart, vend = _tlv(data, pos)
        out.append((tag, pos, vstart, vend))
        pos = vend
    return out


def _time(tag: int, raw: bytes) -> dt.datetime:
    text = raw.decode("ascii")
    if tag == _UTC_TIME:
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != _GENERALIZED_TIME:
        raise DERError("validity is not a time")
    if not text.endswith("Z") or len(text) != 15:
        raise DERError(f"unsupported time {text!r}")
    return dt.datetime.strptime(text[:-1], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)


def parse_certificate(der: bytes) -> CertFacts:
    """Read validity and SubjectPublicKeyInfo from a DER certificate."""
    tag, start, end = _tlv(der, 0)
    if tag != _SEQUENCE:
        raise DERError("not a certificate")
    parts = _children(der, start, end)
    if not parts or parts[0][0] != _SEQUENCE:
        raise DERError("no TBSCertificate")
    _, _, tbs_start, tbs_end = parts[0]
    fields = _children(der, tbs_start, tbs_end)
    if fields and fields[0][0] == _VERSION_TAG:
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    if len(fields) < 6:
        raise DERError("TBSCertificate is too short")
    _, _, vstart, vend = fields[3]
    times = _children(der, vstart, vend)
    if len(times) != 2:
        raise DERError("validity must hold two times")
    not_before = _time(times[0][0], der[times[0][2] : times[0][3]])
    not_after = _time(times[1][0], der[times[1][2] : times[1][3]])
    _, spki_start, _, spki_end = fields[5]
    return CertFacts(not_before, not_after, der[spki_start:spki_end])
