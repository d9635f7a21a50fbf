"""Durations as people write them in the configuration and on the command line."""

from __future__ import annotations

import math
import re

#: Ten years: longer than any wait, TTL or window mxflip has; also keeps arithmetic on
#: durations far from overflowing.
MAX_SECONDS = 10 * 365 * 86400.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``"90s"``, ``"15m"``, ``"1h30m"``, ``"4d"`` or a bare number of seconds.

    Raises ``ValueError`` with a readable reason.
    """
    if isinstance(text, bool):
        raise ValueError("expected a duration such as '15m', not a boolean")
    if isinstance(text, int | float):
        try:
            seconds = float(text)
        except OverflowError:
            raise ValueError(f"{text!r} is far too long for a duration") from None
    else:
        raw = text.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", raw):
            seconds = float(raw)
        else:
            pos, seconds = 0, 0.0
            for m in _PART.finditer(raw):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos != len(raw) or not raw:
                raise ValueError(
                    f"{text!r} is not a duration such as '90s', '15m', '1h30m' or '4d'"
                )
    if math.isnan(seconds):
        raise ValueError(f"{text!r} is not a duration (not a number)")
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{str(text)[:40]!r} is longer than ten years")
    return seconds


def format_duration(seconds: float) -> str:
    """``"2d 3h"``, ``"14m 5s"``, ``"1h"``, ``"3.2s"``: the two largest units, for people.

    The one way mxflip shows a duration (plans, countdowns, canary delays, status), in the
    units the configuration and ``--restore-ttl-after`` accept, so what is shown can be
    typed back."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 60:
        # Tenths below ten seconds, where they matter; never a trailing ".0".
        text = f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"
        return f"{text.removesuffix('.0')}s"
    parts = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return " ".join(parts[:2])
