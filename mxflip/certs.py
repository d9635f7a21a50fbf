"""Certificate facts through the ``cryptography`` library: the peer's chain as the TLS
handshake presented it, validity, public keys, DANE matching and DANE-TA chain checks.

The standard library verifies a chain only against CA files; DANE (RFC 7672) needs two
things it cannot do: match a TLSA record against any certificate of the *presented* chain,
and, for DANE-TA (usage 2), check the chain from the leaf up to the matched trust anchor
(signatures, validity) and the leaf's name — the checks OpenSSL's DANE code (what Postfix
uses) makes.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

#: ``_ssl.ENCODING_DER``: the format argument of the private Certificate.public_bytes().
_ENCODING_DER = 2


class CertError(ValueError):
    """The bytes are not a certificate ``cryptography`` can read."""


@dataclass(frozen=True)
class PeerChain:
    """The certificates the server presented, DER, leaf first. ``complete`` is False when
    only the leaf could be had (then issuers cannot be judged: DANE-TA says so)."""

    certs: tuple[bytes, ...]
    complete: bool


def peer_chain(obj: ssl.SSLObject | ssl.SSLSocket) -> PeerChain:
    """The unverified chain the peer sent, leaf first.

    Python 3.13 has a public ``get_unverified_chain()``. Python 3.11 and 3.12 have it only
    on the private ``_sslobj`` (the C object behind the public one); this is the one place
    mxflip uses it. Where neither exists or it fails, the result is the leaf alone with
    ``complete=False`` — never a silently shortened chain that looks whole."""
    leaf = obj.getpeercert(binary_form=True)
    if not leaf:
        return PeerChain((), False)
    if sys.version_info >= (3, 13):
        chain = obj.get_unverified_chain()  # type: ignore[union-attr,unused-ignore]
        return PeerChain(tuple(bytes(c) for c in chain or ()) or (leaf,), bool(chain))
    private = getattr(getattr(obj, "_sslobj", None), "get_unverified_chain", None)
    if private is None:
        return PeerChain((leaf,), False)
    try:
        certs = tuple(c.public_bytes(_ENCODING_DER) for c in private() or ())
    except (ssl.SSLError, AttributeError, TypeError, ValueError):
        return PeerChain((leaf,), False)
    if not certs or certs[0] != leaf:
        return PeerChain((leaf,), False)
    return PeerChain(certs, True)


#: Certificates kept parsed, by their DER bytes: MX hosts of one provider (and the
#: addresses of one host) present the same certificate, so a check of hundreds of
#: sessions reads each one once. Bounded; ``x509.Certificate`` objects are immutable.
_PARSED_CERTIFICATES = 256


@functools.lru_cache(maxsize=_PARSED_CERTIFICATES)
def load(der: bytes) -> x509.Certificate:
    """The certificate in ``der`` (parsed once per distinct certificate, see above)."""
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CertError(f"not a readable certificate: {exc}") from None


def not_after(der: bytes) -> dt.datetime | None:
    """The end of the certificate's validity (None when it cannot be read)."""
    try:
        return load(der).not_valid_after_utc
    except CertError:
        return None


def spki(cert: x509.Certificate) -> bytes:
    """The DER SubjectPublicKeyInfo (what TLSA selector 1 hashes)."""
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def tlsa_data(der: bytes, selector: int, mtype: int) -> bytes | None:
    """What a TLSA record with ``selector`` and matching type ``mtype`` holds for this
    certificate (None when it cannot be read)."""
    if selector == 0:
        data = der
    else:
        try:
            data = spki(load(der))
        except (CertError, ValueError):
            return None
    if mtype == 1:
        return hashlib.sha256(data).digest()
    if mtype == 2:
        return hashlib.sha512(data).digest()
    return data


def names(cert: x509.Certificate) -> list[str]:
    """The DNS names the certificate is for: its subjectAltName dNSNames, or (only when
    it has none) its subject common name, as OpenSSL's host check reads them."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        dns_names = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns_names = []
    if dns_names:
        return [n.lower().rstrip(".") for n in dns_names]
    return [
        str(a.value).lower().rstrip(".")
        for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]


def name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 matching as RFC 7672 §3.2.3 asks: exact, or ``*`` as the whole leftmost
    label matching exactly one label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == pattern[2:] and "." in rest
    return pattern == host


def chain_problem(chain: Sequence[bytes], anchor: int, host: str, now: dt.datetime) -> str | None:
    """Why the presented chain does not hold up to the trust anchor at ``anchor`` (its
    index, ≥ 1), or None: each certificate below it signed by the next and within its
    validity, and the leaf naming ``host`` (RFC 7672 §3.1.2, §3.2.3)."""
    try:
        certs = [load(der) for der in chain[: anchor + 1]]
    except CertError as exc:
        return str(exc)
    for depth in range(anchor):
        cert, issuer = certs[depth], certs[depth + 1]
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            return f"the certificate at depth {depth} is not signed by the one at depth {depth + 1}"
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return f"the certificate at depth {depth} is outside its validity period"
    leaf_names = names(certs[0])
    if not any(name_matches(n, host) for n in leaf_names):
        return (
            f"the certificate does not name {host} (it names {', '.join(leaf_names) or 'nothing'})"
        )
    return None
