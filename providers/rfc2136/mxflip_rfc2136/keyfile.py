"""Read TSIG keys from a BIND key file (the format ``tsig-keygen`` and ``rndc-confgen`` write).

The secret is never put into an exception message or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from mxflip import register_secret

_log = logging.getLogger("mxflip.rfc2136")

# Quoted strings are matched first and kept: a base64 secret may contain "//".
_COMMENTS = re.compile(r'"[^"]*"|/\*.*?\*/|//[^\n]*|#[^\n]*', re.DOTALL)
_KEY = re.compile(r'key\s+"?([A-Za-z0-9._-]+)"?\s*\{(.*?)\}\s*;', re.DOTALL)
_ALGORITHM = re.compile(r"algorithm\s+\"?([A-Za-z0-9-]+)\"?\s*;")
_SECRET = re.compile(r'secret\s+"([^"]*)"\s*;')

ALGORITHMS = ("hmac-md5", "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512")


@dataclass(frozen=True)
class TsigKey:
    """A named TSIG key. ``secret`` is excluded from ``repr``."""

    name: str
    algorithm: str
    secret: str = field(repr=False)


class KeyFileError(ValueError):
    """The key file cannot be used; the message says why (never quoting the secret)."""


def read_key_file(path: Path, name: str | None = None) -> TsigKey:
    """Return the key called ``name`` from ``path`` (or its only key when ``name`` is None)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"key file {path} is not text") from None
    _warn_if_loose(path)
    keys = parse_keys(_strip_comments(text), path)
    for key in keys:
        register_secret(key.secret)  # never shown, even if a server echoes it back
    if not keys:
        raise KeyFileError(
            f'key file {path} holds no key {{ algorithm …; secret "…"; }}; block '
            "(generate one with: tsig-keygen -a hmac-sha256 NAME)"
        )
    if name is None:
        if len(keys) > 1:
            names = ", ".join(k.name for k in keys)
            raise KeyFileError(f"key file {path} holds several keys ({names}); set tsig_key_name")
        return keys[0]
    wanted = name.rstrip(".").lower()
    for key in keys:
        if key.name.rstrip(".").lower() == wanted:
            return key
    names = ", ".join(k.name for k in keys)
    raise KeyFileError(f"key file {path} has no key named {name!r} (it has: {names})")


def _strip_comments(text: str) -> str:
    return _COMMENTS.sub(lambda m: m.group() if m.group().startswith('"') else "", text)


def _warn_if_loose(path: Path) -> None:
    """A key file other users may read gives them the right to change the zone."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & stat.S_IROTH:
        _log.warning(
            "mxflip: warning: TSIG key file %s is readable by every user (mode %04o); "
            "run 'chmod o-rwx %s'",
            path,
            mode,
            path,
        )


def parse_keys(text: str, path: Path) -> list[TsigKey]:
    keys = []
    for match in _KEY.finditer(text):
        key_name, body = match.group(1), match.group(2)
        algorithm = _ALGORITHM.search(body)
        secret = _SECRET.search(body)
        if algorithm is None or secret is None:
            raise KeyFileError(f"key {key_name!r} in {path} needs both 'algorithm' and 'secret'")
        alg = algorithm.group(1).lower()
        if alg not in ALGORITHMS:
            raise KeyFileError(
                f"key {key_name!r} in {path} uses unsupported algorithm {alg!r} "
                f"(supported: {', '.join(ALGORITHMS)})"
            )
        try:
            base64.b64decode(secret.group(1), validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"the secret of key {key_name!r} in {path} is not base64") from None
        keys.append(TsigKey(key_name, alg, secret.group(1)))
    return keys
