"""The one exception tree and the documented exit codes.

Core code raises these; only the CLI turns them into a line on stderr and an exit code.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Stable process exit codes (documented in the README; scripts depend on them)."""

    OK = 0
    #: A domain is not on its primary profile, nameservers disagree, a probe is degraded.
    ATTENTION = 1
    #: Usage or configuration error (click uses 2 for its own usage errors too).
    USAGE = 2
    #: Operational failure: target not ready, provider or DNS unreachable, verification failed.
    FAILURE = 3
    #: Interrupted by Ctrl-C / SIGINT.
    INTERRUPTED = 130


class MxflipError(Exception):
    """Base of every error mxflip reports to a person.

    ``hint`` is an optional second sentence telling the person what to do about it.
    """

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        from mxflip.sanitize import clean

        # Messages often carry remote text (a provider's error body, an SMTP reply):
        # no configured secret and no terminal control sequence survives into one.
        message = clean(message)
        super().__init__(message)
        self.message = message
        self.hint = clean(hint) if hint is not None else None

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(MxflipError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = ExitCode.USAGE

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ": ".join(p for p in (path, key) if p)
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.path = path
        self.key = key


class UsageError(MxflipError):
    """The command line asks for something that cannot be done (unknown domain, …)."""

    exit_code = ExitCode.USAGE


class ProviderError(MxflipError):
    """A DNS provider could not be read or written."""


class ProviderAuthError(ProviderError):
    """The provider refused our credentials or their permissions are insufficient."""


class NotSupportedError(ProviderError):
    """The provider adapter lacks an optional capability (listing zones, …)."""

    exit_code = ExitCode.USAGE


class StaleExpectationError(ProviderError):
    """A conditional change was refused: the live records differ from what the plan expected.

    Nothing was changed.
    """

    def __init__(self, message: str | None = None, *, hint: str | None = None) -> None:
        super().__init__(
            message or "the records changed since the plan was made; nothing was changed",
            hint=hint or "run the command again to plan against the current records",
        )


class DNSQueryError(MxflipError):
    """A DNS query to a nameserver or resolver failed."""
