"""What a command runs in: the clock, the terminal, the environment, the state folder.

Built once at the CLI boundary (``mxflip.cli``) and passed in, as HTTPie passes its
``Environment``: the engine, rollout, drill and canary code take it (or the part they
need, such as its clock) instead of reading module globals, and tests inject one with a
fake clock and no terminal instead of patching module functions.

Kept light: ``mxflip --help`` builds no Runtime, every other command does, so nothing
heavy (rich, dnspython) is imported here at module level.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mxflip.clock import Clock, SystemClock

if TYPE_CHECKING:
    import logging

    from rich.console import Console

    from mxflip.config import Config
    from mxflip.state import StateBackend


def _environ() -> Mapping[str, str]:
    return os.environ


@dataclass
class Runtime:
    """The surroundings of one command.

    ``stdin``/``stdout``/``stderr`` None mean the process's streams at the time they are
    used (click's test runner swaps them per invocation). ``interactive`` None means
    "stdin is a terminal", asked when a prompt is about to be shown.
    """

    clock: Clock = field(default_factory=SystemClock)
    interactive: bool | None = None
    environ: Mapping[str, str] = field(default_factory=_environ)
    stdin: TextIO | None = None
    stdout: TextIO | None = None
    stderr: TextIO | None = None
    #: ``-v`` count and ``--log-format`` of the command (set by the CLI group).
    verbosity: int = 0
    log_format: str = "text"
    #: ``--color`` (``auto``: colour a terminal unless ``NO_COLOR`` is set; ``always``;
    #: ``never``) and ``--quiet`` (no tables or progress for
    #: people; errors and ``--json`` documents still appear), set by the CLI group and
    #: read by every console and plain-text stream made below.
    color: str = "auto"
    quiet: bool = False

    # ------------------------------------------------------------------ logs

    @property
    def logger(self) -> logging.Logger:
        """mxflip's logger (``logging`` is imported here: a command that never logs,
        ``providers``, starts without it)."""
        import logging

        return logging.getLogger("mxflip")

    def show_logs(self, *, at_least: int = 0) -> None:
        """Show log records on :attr:`err` as ``-v``/``--log-format`` asked (or at least at
        ``at_least``: a long-running service's story); see :mod:`mxflip.logs`."""
        from mxflip.logs import configure

        configure(max(self.verbosity, at_least), self.log_format, lambda: self.err)

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        return self.clock.now()

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)

    # ------------------------------------------------------------------ terminal

    @property
    def out(self) -> TextIO:
        return self.stdout or sys.stdout

    @property
    def err(self) -> TextIO:
        return self.stderr or sys.stderr

    def can_prompt(self) -> bool:
        """True when a person can answer prompts (stdin is a terminal, or a test says
        so)."""
        if self.interactive is not None:
            return self.interactive
        return (self.stdin or sys.stdin).isatty()

    def stderr_is_terminal(self) -> bool:
        """True when progress bars and other transient displays make sense on stderr."""
        isatty = getattr(self.err, "isatty", None)
        return bool(isatty and isatty())

    def stdout_console(self) -> Console:
        """The rich console for results (see :func:`mxflip.render.common.stdout_console`)."""
        from mxflip.render.common import stdout_console

        return stdout_console(self.out, color=self.color, quiet=self.quiet)

    def stderr_console(self) -> Console:
        """The rich console for progress and diagnostics."""
        from mxflip.render.common import stderr_console

        return stderr_console(self.err, color=self.color, quiet=self.quiet)

    def people_stream(self) -> TextIO:
        """Where plain text for people goes: :attr:`out`, or nowhere with ``--quiet``."""
        from mxflip.render.common import people_stream

        return people_stream(self.out, quiet=self.quiet)

    # ------------------------------------------------------------------ state paths

    def state_dir(self) -> Path:
        """The user state folder (see :func:`mxflip.files.state_dir`)."""
        from mxflip.files import state_dir

        return state_dir(self.environ)

    def journal_path(self, configured: Path | None = None) -> Path:
        """Where the operations journal is (see :func:`mxflip.journal.default_journal_path`)."""
        from mxflip.journal import default_journal_path

        return default_journal_path(configured, environ=self.environ)

    def open_state(self, config: Config) -> StateBackend:
        """The configured state backend (see :func:`mxflip.state.open_state`), its local
        files where :meth:`journal_path` says, its lock and lease on :attr:`clock`."""
        from mxflip.state import open_state

        # The backend's retry waits go through this runtime's sleep (real for a command,
        # instant for a test's fake clock), like every other wait of the command.
        return open_state(
            config,
            journal_path=self.journal_path(config.journal.path),
            clock=self.clock,
            sleep=self.sleep,
        )
