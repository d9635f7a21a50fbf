"""The ``mxflip`` command line: parse, call the core, render, map errors to exit codes.

Heavy modules (rich, dnspython, pydantic, adapters) are imported inside the commands so that
``mxflip --help`` stays fast and never loads a provider SDK.
"""

from __future__ import annotations

import importlib
import sys
from gettext import gettext as _
from typing import TYPE_CHECKING, Any, NoReturn

import click

from mxflip import __version__, collector
from mxflip.errors import ExitCode, MxflipError
from mxflip.loop import command_loop

if TYPE_CHECKING:
    from mxflip.config import Config
    from mxflip.runtime import Runtime

EXIT_CODES_HELP = """\b
Exit codes:
  0  OK
  1  attention: a domain is not on its primary profile, nameservers disagree, …
  2  usage or configuration error
  3  operational failure: provider or DNS unreachable, target not ready, …
  130  interrupted"""


#: Every command of the group: name → (module, attribute, short help). A command's module
#: is imported when the command runs or shows its help; the short help (the first
#: paragraph of the command's help) is what ``mxflip --help`` lists without importing
#: it (tests/test_startup_imports.py checks that the two agree).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "approve": (
        "mxflip.watch.cli",
        "approve",
        "Execute exactly the plan of PROPOSAL (from `mxflip proposals`) through the engine:"
        " refused when the plan changed since it was proposed (its hash differs), when it "
        "expired, or when the safety checks block it.",
    ),
    "canary": (
        "mxflip.cli_canary",
        "canary",
        "Delivery canaries: prove that mail through the live MX path actually arrives.",
    ),
    "check": (
        "mxflip.cli_read",
        "check",
        "Prove an MX set can take production mail, with live SMTP handshakes.",
    ),
    "completion": (
        "mxflip.cli_onboard",
        "completion",
        "Print the shell completion script for SHELL (commands, options, configured domain "
        "names, operation ids from the journal).",
    ),
    "doctor": (
        "mxflip.cli_onboard",
        "doctor",
        "Check everything a drill or an incident will need, and say what to fix.",
    ),
    "drain": (
        "mxflip.cli_change",
        "drain",
        "Remove HOST from every live MX set that contains it.",
    ),
    "drill": (
        "mxflip.cli_change",
        "drill",
        "Exercise the backup path end to end, then put everything back.",
    ),
    "failback": (
        "mxflip.cli_change",
        "failback",
        "Switch DOMAINs (or --all) to their primary MX set.",
    ),
    "failover": (
        "mxflip.cli_change",
        "failover",
        "Switch DOMAINs (or --all) to their backup MX set.",
    ),
    "finalize": (
        "mxflip.cli_change",
        "finalize",
        "Raise the TTL of each DOMAIN's live set (default: all) back to its normal ttl.",
    ),
    "history": (
        "mxflip.cli_read",
        "history",
        "List operations from the journal: who, when, why, what, outcome.",
    ),
    "init": (
        "mxflip.cli_onboard",
        "init",
        "Write a configuration from the MX records live at one provider.",
    ),
    "prepare": (
        "mxflip.cli_change",
        "prepare",
        "Lower the TTL of each DOMAIN's live set (default: all) to failover_ttl.",
    ),
    "proposals": (
        "mxflip.watch.cli",
        "proposals",
        "List the watcher's proposals (open ones by default), with the command to approve each.",
    ),
    "providers": (
        "mxflip.cli_config",
        "providers",
        "List the installed provider adapters with their versions.",
    ),
    "restore": (
        "mxflip.cli_change",
        "restore",
        "Put HOST back into every live MX set whose profile lists it but which lacks it.",
    ),
    "resume": (
        "mxflip.cli_change",
        "resume",
        "Finish an interrupted or failed operation (default: the last one).",
    ),
    "rollback": (
        "mxflip.cli_change",
        "rollback",
        "Restore the exact before-state (records and TTL) of the last or the named operation.",
    ),
    "state": (
        "mxflip.cli_state",
        "state_group",
        "Where the journal, the operation lock, canary and watch state live.",
    ),
    "status": (
        "mxflip.cli_read",
        "status",
        "Show which MX set is live for each DOMAIN (default: all configured).",
    ),
    "unlock": (
        "mxflip.cli_state",
        "unlock",
        "Remove the shared operation lock LOCK_ID whose holder is gone.",
    ),
    "validate": (
        "mxflip.cli_config",
        "validate",
        "Check the configuration file without contacting any provider or server.",
    ),
    "watch": (
        "mxflip.watch.cli",
        "watch",
        "Watch DOMAINs (default: all) continuously: DNS, readiness, canaries.",
    ),
}


class State:
    """Options of the ``mxflip`` group, shared with every command."""

    # A plain class, not a dataclass: nothing compares or copies it, and every command
    # would pay for generating the dataclass methods at start-up.
    __slots__ = ("config_path", "debug", "runtime")

    def __init__(self, config_path: str | None, debug: bool, runtime: Runtime) -> None:
        self.config_path = config_path
        self.debug = debug
        #: The clock, terminal and environment every command uses (built once, in ``cli``).
        self.runtime = runtime

    def load_config(self) -> Config:
        from mxflip.config import load_config

        return load_config(self.config_path)


class MxflipGroup(click.Group):
    """Turns mxflip errors into one line on stderr and their exit code (no traceback
    unless ``--debug``), and loads each command's module only when the command is needed.

    The lazy loading is click's documented ``LazyGroup`` pattern: :data:`COMMANDS` names
    every command's module, and ``get_command`` imports only the one that runs (or whose
    help is shown), so that ``mxflip validate`` does not build the other commands, their
    options and their modules. The group's own ``--help`` lists every command with the
    short help kept in the table, still without importing them.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in COMMANDS:
            from mxflip.completion import install_completers

            module, attribute, _short_help = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            install_completers(command)  # domain names, operation ids, provider names
            self.add_command(command, cmd_name)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in COMMANDS and not ctx.resilient_parsing:
            # An unknown name: click suggests the close ones among the commands it has
            # built ("Did you mean 'status'?"), so build them all for the error message.
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, with the short help of a command not loaded yet from :data:`COMMANDS`."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            # A command not loaded yet is shown through a stand-in holding its short help,
            # shortened to the width by click's own rule.
            command = self.commands.get(name) or click.Command(name, help=COMMANDS[name][2])
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section(_("Commands")):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        args = [*ctx._protected_args, *ctx.args]
        # ``--json`` promises one document on stdout even when the command fails early
        # (a config error, the lock): the error is written as that document.
        as_json = (args[0] if args else "") if "--json" in args else None
        ctx.meta["mxflip.json_written"] = _json_written()
        ctx.meta["mxflip.help_only"] = _asks_for_help(self, ctx, args)
        try:
            return super().invoke(ctx)
        except MxflipError as exc:
            if _debug(ctx):
                raise
            _fail(ctx, f"error: {exc}", exc.exit_code, as_json)
        except KeyboardInterrupt:
            _fail(ctx, "interrupted", ExitCode.INTERRUPTED, as_json)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if _debug(ctx):
                raise
            _fail(
                ctx,
                f"internal error: {type(exc).__name__}: {exc} "
                "(run with --debug for the traceback, and please report it)",
                ExitCode.FAILURE,
                as_json,
            )


def _asks_for_help(group: click.Group, ctx: click.Context, args: list[str]) -> bool:
    """Whether the command's arguments ask for its ``--help`` (``mxflip status --help``).

    click shows that help while parsing them, which it does after running the group's
    callback; knowing it first lets the callback skip the set-up (runtime, logging, event
    loop) that help never uses, so a command's help starts as fast as ``mxflip --help``.
    The arguments are only read here (click's parser, no conversions or callbacks): when
    ``--help`` is an option's value, or the arguments are wrong, the answer is no and
    everything runs as usual.
    """
    if not any(arg in ctx.help_option_names for arg in args[1:]):
        return False
    try:
        _, command, rest = group.resolve_command(ctx, list(args))
        if command is None or isinstance(command, click.Group):
            return False  # a nested group parses its own command's help later
        options, _, _ = command.make_parser(ctx).parse_args(list(rest))
    except click.ClickException:
        return False
    help_option = command.get_help_option(ctx)
    return help_option is not None and help_option.name in options


def _debug(ctx: click.Context) -> bool:
    state = ctx.find_object(State)
    return bool(state.debug if state else ctx.meta.get("mxflip.debug"))


def _fail(ctx: click.Context, message: str, code: int, as_json: str | None = None) -> NoReturn:
    from mxflip.sanitize import clean

    message = clean(message)
    click.echo(f"mxflip: {message}", err=True)
    if as_json is not None and _json_written() == ctx.meta.get("mxflip.json_written", 0):
        from mxflip.render.common import write_json

        error = message.removeprefix("error: ")
        write_json({"version": 1, "command": as_json, "exit_code": int(code), "error": error})
    ctx.exit(int(code))


def _json_written() -> int:
    """How many JSON documents this process has written (0 before the renderer loads)."""
    common = sys.modules.get("mxflip.render.common")
    return int(common.written[0]) if common is not None else 0


def _on_sigterm(signum: int, frame: Any) -> None:
    # What CI sends when a job is cancelled: handled like Ctrl-C, so that an operation
    # records that it was interrupted and a drill puts back what it changed. While the
    # command's event loop runs, its SIGINT handler cancels the running coroutine (which
    # journals and unwinds, then surfaces as KeyboardInterrupt); outside it, Ctrl-C's
    # default raises KeyboardInterrupt where the program is.
    import signal

    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt


@click.group(cls=MxflipGroup, epilog=EXIT_CODES_HELP)
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="FILE",
    envvar="MXFLIP_CONFIG",
    show_envvar=True,
    help="Configuration file (default: ./mxflip.toml).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),  # Runtime.color
    default="auto",
    show_default=True,
    help="Colour: auto (on a terminal, unless NO_COLOR is set), always or never.",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="For scripts: print no tables or progress, only errors and --json documents; "
    "exit codes as usual.",
)
@click.option(
    "-v",
    "--verbose",
    "verbosity",
    count=True,
    help="Log what mxflip does on stderr: -v provider calls, phases and decisions; "
    "-vv also every DNS query, SMTP step and timing. Secrets are never logged.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines for people, or one JSON object per line (ts, level, logger, msg, "
    "fields) for machines.",
)
@click.version_option(__version__, prog_name="mxflip")
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: str | None,
    debug: bool,
    color: str,
    quiet: bool,
    verbosity: int,
    log_format: str,
) -> None:
    """MX failover controller: see which MX set is live, prove the backup, switch safely.

    Every command that reads DNS takes --json for one stable JSON document on stdout.
    """
    ctx.meta["mxflip.debug"] = debug
    if ctx.meta.get("mxflip.help_only"):
        return  # the command only prints its help (see _asks_for_help)
    from mxflip.runtime import Runtime

    ctx.color = {"always": True, "never": False}.get(color)
    # A caller (a test, an embedding program) may pass its own Runtime as click's ``obj``.
    runtime = ctx.obj if isinstance(ctx.obj, Runtime) else Runtime()
    ctx.obj = State(config_path=config_path, debug=debug, runtime=runtime)
    runtime.verbosity, runtime.log_format = verbosity, log_format
    runtime.color, runtime.quiet = color, quiet
    if ctx.invoked_subcommand in _WITHOUT_LOGS_OR_LOOP and verbosity == 0:
        return
    runtime.show_logs()
    runtime.logger.debug(
        "command started", extra={"command": ctx.invoked_subcommand, "version": __version__}
    )
    # One event loop for the whole command, closed when it ends (mxflip/loop.py).
    ctx.with_resource(command_loop())


#: Commands that neither log nor run a coroutine: the group skips setting up logging and
#: the event loop for them (with ``-v`` they get both, as every command does), so that
#: ``mxflip providers`` starts about as fast as ``mxflip --help``.
_WITHOUT_LOGS_OR_LOOP = frozenset({"providers"})


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Write one JSON document to stdout."
)

# One --timeout for every command that asks nameservers (status, watch, doctor).
dns_timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(0.1, 60),
    default=3.0,
    show_default=True,
    help="Seconds to wait for each nameserver or resolver (over up to 3 tries).",
)


class Duration(click.ParamType):  # type: ignore[type-arg]
    """``90``, ``90s``, ``15m``, ``1h30m``, ``1d``: seconds as a float."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from mxflip.duration import parse_duration

        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def main() -> None:
    """Console-script entry point."""
    # No PYDANTIC_DISABLE_PLUGINS here: the plugin scan is skipped when no pydantic plugin
    # is installed (mxflip.entrypoints.skip_pydantic_plugin_scan), and setting it in our
    # environment would disable a user's plugins and leak into every child process.
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    collector.set_young_generation()  # start-up and the command's loop: mxflip.collector
    try:
        cli(prog_name="mxflip")  # click ends the process: SystemExit passes through here
    finally:
        # What follows is the interpreter's shutdown, whose collection walks every object
        # start-up made. Nothing waits on it: commands close their files, sockets and event
        # loop themselves (with blocks, mxflip.loop), never through the collector.
        collector.keep_what_exists()
