"""Shared pieces of the canary: its error, clock, header names and result names."""

from __future__ import annotations

from mxflip.clock import Clock, SystemClock
from mxflip.config import CanaryConfig, Config
from mxflip.errors import ConfigError, MxflipError

#: The header that marks a canary; its value is the token (also in the subject).
TOKEN_HEADER = "X-Mxflip-Canary"
SENT_HEADER = "X-Mxflip-Canary-Sent"
PATH_HEADER = "X-Mxflip-Canary-Path"
#: ``--via`` choices: the MX set the provider serves now, or one configured profile.
VIA_CHOICES = ("live", "primary", "backup")
#: A canary's result. ``pending``: not found yet, younger than ``warn_after``.
STATUSES = ("on_time", "late", "missing", "send_failed", "pending")
#: Results that mean the path is not delivering on time.
FAILING = ("late", "missing", "send_failed")


class CanaryError(MxflipError):
    """A canary could not be sent, looked for or recorded."""


#: The canary's wall time and sleeping: mxflip's one clock, injectable so tests never wait.
SYSTEM_CLOCK: Clock = SystemClock()


def status_by_age(delay: float, arrived: bool, warn_after: float, fail_after: float) -> str:
    """``on_time`` / ``late`` for an arrived canary; ``pending`` / ``late`` / ``missing``
    for one not found yet, by its age."""
    if arrived:
        return "on_time" if delay <= warn_after else "late"
    if delay < warn_after:
        return "pending"
    return "late" if delay < fail_after else "missing"


def require_canary(config: Config) -> CanaryConfig:
    """The ``[canary]`` table, or a usage error saying how to add one."""
    if config.canary is None:
        raise ConfigError(
            "no [canary] section",
            path=str(config.path) if config.path else None,
            hint='add [canary] with mailbox = "maildir" and maildir = "…", or mailbox = '
            '"imap" and imap_host = "…"',
        )
    return config.canary
