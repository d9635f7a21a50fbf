"""The one kind of finding in mxflip: something a person should know about a plan, a
handshake or a policy, with a stable ``code`` scripts can match on.

Plans use ``block`` (stops the operation unless overridden) and ``warn``; readiness uses
``fail``, ``warn`` and ``info``. One type serves both so that a readiness finding can
travel into a plan's reasons without translation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mxflip.sanitize import clean


class Severity(enum.StrEnum):
    #: A plan may not proceed (unless ``overridable`` and ``--force --reason``).
    BLOCK = "block"
    #: A readiness check failed: not ready.
    FAIL = "fail"
    WARN = "warn"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str
    #: For ``block``: ``--force --reason`` may override it (an empty target never).
    overridable: bool = True


def fail(code: str, message: str) -> Finding:
    # Readiness findings quote remote text (replies, certificates, MTA-STS policies):
    # shown safe.
    return Finding(Severity.FAIL, code, clean(message))


def warn(code: str, message: str) -> Finding:
    return Finding(Severity.WARN, code, clean(message))
