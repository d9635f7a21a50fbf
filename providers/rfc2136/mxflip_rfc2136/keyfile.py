"""Read TSIG keys from a BIND key file (the format ``tsig-keygen`` and ``rndc-confgen`` write).

The file is read as BIND's configuration grammar reads it: a stream of tokens (quoted
strings, bare words, ``{``, ``}``, ``;``) in which ``#``, ``//`` and ``/* … */`` start
comments only *outside* quoted strings. A base64 secret may contain ``//``; a regular
expression that strips comments before parsing would cut such a secret in half.

The secret is never put into an exception message or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mxflip import register_secret

if TYPE_CHECKING:
    import dns.name

_log = logging.getLogger(__name__)

ALGORITHMS = ("hmac-md5", "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512")

#: BIND's algorithm names → the ``dns.tsig`` constants naming them as dnspython (and the
#: TSIG record on the wire) spell them. hmac-md5 is the odd one: RFC 8945 names it
#: ``HMAC-MD5.SIG-ALG.REG.INT``. Attribute names, not the constants: reading a key file
#: (``mxflip validate``) needs no dnspython, which costs ~10 ms of start-up to import.
_WIRE_NAMES = {
    "hmac-md5": "HMAC_MD5",
    "hmac-sha1": "HMAC_SHA1",
    "hmac-sha224": "HMAC_SHA224",
    "hmac-sha256": "HMAC_SHA256",
    "hmac-sha384": "HMAC_SHA384",
    "hmac-sha512": "HMAC_SHA512",
}


@dataclass(frozen=True)
class TsigKey:
    """A named TSIG key. ``secret`` is excluded from ``repr``."""

    name: str
    algorithm: str
    secret: str = field(repr=False)

    @property
    def wire_algorithm(self) -> dns.name.Name:
        """The algorithm's name as dnspython and the TSIG record spell it."""
        import dns.tsig

        name: dns.name.Name = getattr(dns.tsig, _WIRE_NAMES[self.algorithm])
        return name


class KeyFileError(ValueError):
    """The key file cannot be used; the message says why (never quoting the secret)."""


class _Token:
    # A plain class: the parser only reads the fields, and a dataclass would cost every
    # command that loads the adapter (`mxflip validate`) its generated methods at start-up.
    __slots__ = ("line", "quoted", "text")

    def __init__(self, text: str, quoted: bool, line: int) -> None:
        self.text = text
        self.quoted = quoted
        self.line = line


def _tokens(text: str, path: Path) -> Iterator[_Token]:
    """BIND's lexer, as far as key files need it: comments only outside strings."""
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise KeyFileError(f"key file {path}: a /* comment on line {line} never ends")
            line += text.count("\n", i, end)
            i = end + 2
        elif c == '"':
            start_line = line
            chars: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise KeyFileError(
                        f"key file {path}: a quoted string on line {start_line} never ends"
                    )
                c = text[i]
                if c == "\\" and i + 1 < n:  # BIND keeps the escaped character
                    chars.append(text[i + 1])
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                if c == "\n":
                    line += 1
                chars.append(c)
                i += 1
            yield _Token("".join(chars), True, start_line)
        elif c in "{};":
            yield _Token(c, False, line)
            i += 1
        else:
            start = i
            while (
                i < n
                and not text[i].isspace()
                and text[i] not in '{};"#'
                and not text.startswith("//", i)
                and not text.startswith("/*", i)
            ):
                i += 1
            yield _Token(text[start:i], False, line)


class _Parser:
    def __init__(self, text: str, path: Path) -> None:
        self.tokens = list(_tokens(text, path))
        self.pos = 0
        self.path = path

    def _fail(self, what: str) -> KeyFileError:
        tok = self.tokens[self.pos] if self.pos < len(self.tokens) else None
        where = f"line {tok.line}" if tok else "the end of the file"
        return KeyFileError(f"key file {self.path}: {what} at {where}")

    def _next(self) -> _Token:
        if self.pos >= len(self.tokens):
            raise self._fail("unexpected end of file")
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def _expect(self, symbol: str) -> None:
        tok = self._next()
        if tok.quoted or tok.text != symbol:
            self.pos -= 1
            raise self._fail(f"expected '{symbol}'")

    def _skip_statement(self) -> None:
        """Skip any other statement (``options { … };`` and the like), braces balanced."""
        depth = 0
        while True:
            tok = self._next()
            if tok.quoted:
                continue
            if tok.text == "{":
                depth += 1
            elif tok.text == "}":
                depth -= 1
            elif tok.text == ";" and depth <= 0:
                return

    def keys(self) -> list[TsigKey]:
        out = []
        while self.pos < len(self.tokens):
            tok = self.tokens[self.pos]
            if not tok.quoted and tok.text.lower() == "key":
                self.pos += 1
                out.append(self._key())
            else:
                self._skip_statement()
        return out

    def _key(self) -> TsigKey:
        name_tok = self._next()
        if not name_tok.quoted and name_tok.text in "{};":
            self.pos -= 1
            raise self._fail("a key needs a name")
        name = name_tok.text
        self._expect("{")
        values: dict[str, str] = {}
        while True:
            tok = self._next()
            if not tok.quoted and tok.text == "}":
                break
            if tok.quoted:
                self.pos -= 1
                raise self._fail(f"unexpected string in key {name!r}")
            clause = tok.text.lower()
            value = self._next()
            if not value.quoted and value.text in "{};":
                self.pos -= 1
                raise self._fail(f"'{clause}' in key {name!r} needs a value")
            self._expect(";")
            values[clause] = value.text
        self._expect(";")
        if "algorithm" not in values or "secret" not in values:
            raise KeyFileError(f"key {name!r} in {self.path} needs both 'algorithm' and 'secret'")
        alg = values["algorithm"].lower()
        if alg not in ALGORITHMS:
            raise KeyFileError(
                f"key {name!r} in {self.path} uses unsupported algorithm {alg!r} "
                f"(supported: {', '.join(ALGORITHMS)})"
            )
        secret = values["secret"]
        try:
            base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"the secret of key {name!r} in {self.path} is not base64") from None
        return TsigKey(name, alg, secret)


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
    keys = parse_keys(text, path)
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
    """Every ``key`` statement of a BIND configuration text (other statements skipped)."""
    return _Parser(text, path).keys()
