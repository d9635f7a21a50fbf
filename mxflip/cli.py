"""The ``mxflip`` command line: parse, call the core, render, map errors to exit codes.

Heavy modules (rich, dnspython, pydantic, adapters) are imported inside the commands so that
``mxflip --help`` stays fast and never loads a provider SDK.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from mxflip import __version__
from mxflip.errors import ExitCode, MxflipError
from mxflip.loop import command_loop

if TYPE_CHECKING:
    from mxflip.config import Config, DomainConfig
    from mxflip.engine import Engine
    from mxflip.plan import Plan, PlanOptions
    from mxflip.rollout import RolloutResult
    from mxflip.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])
#: Builds the plan of one changing command from the engine and the parsed options.
#: Plans a change on the engine (a coroutine function: the engine observes on the loop).
Build = Callable[["Engine", "PlanOptions"], Coroutine[Any, Any, "Plan"]]

EXIT_CODES_HELP = """\b
Exit codes:
  0  OK
  1  attention: a domain is not on its primary profile, nameservers disagree, …
  2  usage or configuration error
  3  operational failure: provider or DNS unreachable, target not ready, …
  130  interrupted"""


@dataclass
class State:
    """Options of the ``mxflip`` group, shared with every command."""

    config_path: str | None
    debug: bool
    #: The clock, terminal and environment every command uses (built once, in ``cli``).
    runtime: Runtime

    def load_config(self) -> Config:
        from mxflip.config import load_config

        return load_config(self.config_path)


class MxflipGroup(click.Group):
    """Turns mxflip errors into one line on stderr and their exit code (no traceback
    unless ``--debug``)."""

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
        import json

        error = message.removeprefix("error: ")
        doc = {"version": 1, "command": as_json, "exit_code": int(code), "error": error}
        click.echo(json.dumps(doc, indent=2))
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


@cli.command()
@click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
@json_option
@dns_timeout_option
@click.option(
    "--probe",
    "with_probe",
    is_flag=True,
    help="Also probe the live MX hosts over SMTP (as `check --profile live`).",
)
@click.pass_obj
def status(
    state: State, domains: tuple[str, ...], as_json: bool, timeout: float, with_probe: bool
) -> None:
    """Show which MX set is live for each DOMAIN (default: all configured).

    Reads the MX RRset at the provider, asks every verification nameserver and resolver,
    and says which profile is live (primary, backup, mixed, unknown, absent), with TTLs
    and whether the nameservers agree with the provider. With --probe, the live set's
    SMTP health per domain too.

    Exit 0 when every domain is on primary and consistent, 1 when something needs
    attention (or the live set is degraded), 3 when a provider or every nameserver is
    unreachable (or the live set is not ready).
    """
    from mxflip import loop
    from mxflip.render import render_status, status_json, write_json
    from mxflip.status import gather_status

    config = state.load_config()
    report = loop.run(
        gather_status(
            config,
            config.select(domains),
            dns_timeout=timeout,
            probe=with_probe,
            runtime=state.runtime,
        )
    )
    if as_json:
        write_json(status_json(report))
    else:
        render_status(state.runtime.stdout_console(), report)
    sys.exit(int(report.exit_code))


@cli.command()
@click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
@click.option(
    "--profile",
    type=click.Choice(["backup", "primary", "live"]),
    default="backup",
    show_default=True,
    help="Which MX set to prove: a configured profile, or what DNS publishes now.",
)
@json_option
@click.pass_obj
def check(state: State, domains: tuple[str, ...], profile: str, as_json: bool) -> None:
    """Prove an MX set can take production mail, with live SMTP handshakes.

    For each DOMAIN (default: all configured), every address of every host of the
    profile gets a polite handshake: banner, EHLO, STARTTLS with a verified certificate,
    EHLO, MAIL FROM, RCPT TO the domain's probe recipient, RSET, QUIT (never DATA).
    MTA-STS mx: coverage and DANE TLSA records are checked too.

    Exit 0 when every domain is ready, 1 when one is degraded, 3 when one is not ready.
    """
    from mxflip import loop
    from mxflip.probe import Verdict
    from mxflip.readiness import check_domains
    from mxflip.render import check_json, render_check, write_json

    config = state.load_config()
    results = loop.run(check_domains(config, config.select(domains), profile))
    code = {
        Verdict.READY: ExitCode.OK,
        Verdict.DEGRADED: ExitCode.ATTENTION,
        Verdict.NOT_READY: ExitCode.FAILURE,
    }[Verdict.worst(r.verdict for r in results)]
    if as_json:
        write_json(check_json(results, profile, int(code)))
    else:
        render_check(state.runtime.stdout_console(), results, profile)
    sys.exit(int(code))


@cli.command()
@json_option
@click.pass_obj
def providers(state: State, as_json: bool) -> None:
    """List the installed provider adapters with their versions."""
    from mxflip.entrypoints import installed_providers
    from mxflip.render import providers_json, render_providers, write_json

    found = installed_providers().values()
    if as_json:
        write_json(providers_json(found))
    else:
        render_providers(state.runtime.people_stream(), found)


@cli.command()
@json_option
@click.pass_obj
def validate(state: State, as_json: bool) -> None:
    """Check the configuration file without contacting any provider or server.

    Loads every provider adapter the file names and validates its settings (key files
    are read, tokens are not used). Exit 0 when valid, 2 with one line naming the file,
    the key and the problem when not.
    """
    from mxflip.render import config_json, render_config, write_json

    config = state.load_config()
    warnings: list[str] = []
    if config.watch is not None:  # watch.config's models load only for a [watch] table
        from mxflip.watch.config import watch_warnings

        warnings = watch_warnings(config.watch)
    for warning in warnings:
        click.echo(f"mxflip: warning: {warning}", err=True)
    if as_json:
        write_json({**config_json(config), "warnings": warnings})
    else:
        render_config(state.runtime.people_stream(), config)


# ------------------------------------------------------------------ changing commands


class Duration(click.ParamType):  # type: ignore[type-arg]
    """``90``, ``90s``, ``15m``, ``1h30m``, ``1d``: seconds as a float."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from mxflip.duration import parse_duration

        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def changing_options(*, switch: bool = True) -> Callable[[F], F]:
    """Options every changing command shares (a switch adds the rollout options)."""

    def decorate(fn: F) -> F:
        opts = [
            click.option("-y", "--yes", is_flag=True, help="Apply without asking."),
            click.option("--dry-run", is_flag=True, help="Print the plan and exit 0."),
            click.option("--reason", metavar="TEXT", help="Why; recorded in the journal."),
            json_option,
            click.option(
                "--plan-hash",
                metavar="HASH",
                help="Apply only if the freshly computed plan has this hash (the reviewed plan).",
            ),
            click.option(
                "--force",
                is_flag=True,
                help="Override blocking safety findings that allow it (needs --reason).",
            ),
            click.option(
                "--verify-timeout",
                type=Duration(),
                default="120s",
                show_default=True,
                help="How long to poll the nameservers for the new set.",
            ),
        ]
        if switch:
            opts += [
                click.option(
                    "--now",
                    is_flag=True,
                    help="Skip TTL pre-lowering (emergencies); says until when old answers "
                    "may stay cached.",
                ),
                click.option(
                    "--no-auto-rollback",
                    is_flag=True,
                    help="Do not roll back when verification fails.",
                ),
                click.option(
                    "--skip-readiness",
                    is_flag=True,
                    help="Do not check the target hosts (emergencies; needs --reason).",
                ),
                click.option(
                    "--restore-ttl-after",
                    type=Duration(),
                    metavar="DURATION",
                    help="After a verified switch, wait this long, then raise the TTL back to ttl.",
                ),
            ]
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return decorate


@dataclass
class ChangeRequest:
    """The parsed options of one changing command."""

    kind: str
    yes: bool
    dry_run: bool
    reason: str | None
    as_json: bool
    plan_hash: str | None
    force: bool
    verify_timeout: float
    now: bool = False
    no_auto_rollback: bool = False
    skip_readiness: bool = False
    restore_ttl_after: float | None = None
    argv: tuple[str, ...] = ()


def _change(kind: str, argv: tuple[str, ...], **kw: Any) -> ChangeRequest:
    return ChangeRequest(kind=kind, argv=argv, **kw)


def _run_change(state: State, change: ChangeRequest, build: Build) -> NoReturn:
    """Lock, plan, show, confirm, execute, render: the one flow of every changing command."""
    from mxflip import loop
    from mxflip.engine import Engine, PlanRefused, refuse_blocked
    from mxflip.errors import UsageError
    from mxflip.plan import PlanOptions
    from mxflip.readiness import default_readiness
    from mxflip.render import (
        EventPrinter,
        operation_json,
        render_plan,
        render_result,
        write_json,
    )

    if change.force and not change.reason:
        raise UsageError("--force needs --reason TEXT (it is recorded in the journal)")
    if change.skip_readiness and not change.reason:
        raise UsageError("--skip-readiness needs --reason TEXT (it is recorded in the journal)")
    runtime = state.runtime
    config = state.load_config()
    journal = runtime.open_state(config)
    opts = PlanOptions(
        now=change.now,
        force=change.force,
        reason=change.reason,
        skip_readiness=change.skip_readiness,
        restore_ttl_after=change.restore_ttl_after,
        auto_rollback=not change.no_auto_rollback,
    )
    console = runtime.stderr_console() if change.as_json else runtime.stdout_console()
    command = ["mxflip", change.kind, *change.argv]
    clock = runtime.clock
    engine = Engine(
        config,
        journal,
        clock=clock,
        readiness=default_readiness(config),
        events=EventPrinter(as_json=change.as_json, console=runtime.stderr_console()),
        verify_timeout=change.verify_timeout,
    )
    plan: Plan | None = None
    try:
        lock = journal.lock(" ".join(command)) if not change.dry_run else contextlib.nullcontext()
        with lock:
            if change.kind not in ("rollback", "resume"):
                settle = _settle_unsettled(engine, change, runtime)
                if settle is not None:
                    # The person chose to settle the earlier operation instead.
                    kind, op_id = settle
                    change.kind, change.argv = kind, (op_id,)
                    command = ["mxflip", kind, op_id]
                    build = _settle_builder(kind, op_id)
            plan = loop.run(build(engine, opts))
            if not change.as_json:
                render_plan(console, plan, now=clock.now())
            if change.dry_run:
                _finish(change, plan, None, ExitCode.OK, dry_run=True)
            if change.plan_hash is not None and change.plan_hash != plan.hash:
                raise PlanRefused(
                    f"the plan changed since it was reviewed: its hash is now {plan.hash}, "
                    f"not {change.plan_hash}; nothing was changed",
                    hint="review the new plan (--dry-run) and pass its hash",
                )
            refuse_blocked(plan)
            if not plan.changes and plan.parent is None:
                _finish(change, plan, None, ExitCode.OK, message="Nothing to do.")
            if plan.changes:
                _confirm(change, runtime)
            # A rollback/resume with nothing to write still runs: it settles its parent.
            result = loop.run(engine.execute(plan, command=command))
    except MxflipError as exc:
        _report_state_problems(journal)
        if change.as_json and plan is not None:
            write_json(operation_json(change.kind, int(exc.exit_code), plan, None, error=str(exc)))
        raise
    finally:
        engine.close()
        journal.close()
    code = ExitCode.OK if result.outcome in ("done", "noop") else ExitCode.FAILURE
    # The shared state lost records or the lock mid-way: the operation finished, but the
    # command fails so nobody takes the shared journal for complete.
    problems = _report_state_problems(journal)
    if problems:
        code = ExitCode.FAILURE
    if change.as_json:
        doc = operation_json(change.kind, int(code), plan, result)
        if problems:
            doc["state_problems"] = problems
        write_json(doc)
    else:
        render_result(console, result)
    if result.outcome == "rolled-back":
        click.echo(
            f"mxflip: error: verification failed and the change was rolled back: {result.error}",
            err=True,
        )
    sys.exit(int(code))


def _report_state_problems(journal: Any) -> list[str]:
    """What the state backend could not write during the command, one line each."""
    problems = list(getattr(journal, "problems", []))
    for problem in problems:
        click.echo(f"mxflip: error: {problem}", err=True)
    return problems


def _finish(
    change: ChangeRequest,
    plan: Plan,
    result: RolloutResult | None,
    code: ExitCode,
    *,
    dry_run: bool = False,
    message: str | None = None,
) -> NoReturn:
    from mxflip.render import operation_json, write_json

    if change.as_json:
        write_json(operation_json(change.kind, int(code), plan, result, dry_run=dry_run))
    elif message:
        click.echo(message)
    sys.exit(int(code))


def _confirm(change: ChangeRequest, runtime: Runtime) -> None:
    from mxflip.errors import UsageError

    if change.yes:
        return
    if not runtime.can_prompt():
        raise UsageError(
            "refusing to change DNS without confirmation: stdin is not a terminal",
            hint="review the plan and pass --yes (and --plan-hash HASH to pin it)",
        )
    if not click.confirm("Apply this plan?", default=False, err=True):
        click.echo("Not confirmed; nothing was changed.", err=True)
        sys.exit(int(ExitCode.ATTENTION))


def _settle_unsettled(
    engine: Engine, change: ChangeRequest, runtime: Runtime
) -> tuple[str, str] | None:
    """An interrupted or failed operation must be resumed or rolled back first (the
    engine's check). On a terminal the person is offered both; otherwise the command is
    refused, naming them. Returns (kind, operation id) when the person chose to settle
    it now."""
    from mxflip.engine import Unsettled, unsettled_text

    op = engine.first_unsettled()
    if op is None:
        return None
    if change.dry_run:
        click.echo(f"mxflip: warning: {unsettled_text(op)}", err=True)
        return None
    if runtime.can_prompt() and not change.yes and not change.as_json:
        click.echo(f"mxflip: {unsettled_text(op)}.", err=True)
        choice = click.prompt(
            "Resume it, roll it back, or abort?",
            type=click.Choice(["resume", "rollback", "abort"]),
            default="abort",
            err=True,
        )
        if choice != "abort":
            return choice, op.id
    raise Unsettled(op)


def _settle_builder(kind: str, op_id: str) -> Build:
    if kind == "resume":
        return lambda engine, opts: engine.plan_resume(op_id, opts)
    return lambda engine, opts: engine.plan_rollback(op_id, opts)


def _select_switch(
    config: Config, domains: tuple[str, ...], all_: bool, kind: str
) -> list[DomainConfig]:
    from mxflip.errors import UsageError

    if domains and all_:
        raise UsageError("name domains or pass --all, not both")
    if not domains and not all_:
        raise UsageError(f"name the domains to {kind}, or pass --all for every configured one")
    return config.select(domains)


def _switch_command(kind: str, target: str) -> Any:
    @cli.command(name=kind, epilog=EXIT_CODES_HELP)
    @click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
    @click.option("--all", "all_", is_flag=True, help="Every configured domain.")
    @changing_options()
    @click.pass_obj
    def command(state: State, /, domains: tuple[str, ...], all_: bool, **kw: Any) -> None:
        async def build(engine: Engine, opts: PlanOptions) -> Plan:
            chosen = _select_switch(engine.config, domains, all_, kind)
            return await engine.plan_switch(kind, chosen, opts)

        _run_change(state, _change(kind, domains + (("--all",) if all_ else ()), **kw), build)

    command.help = (
        f"Switch DOMAINs (or --all) to their {target} MX set.\n\n"
        "Shows the plan (before → after, TTL phases, safety findings, expected completion,"
        " plan hash) and asks for confirmation (or --yes). By default the live TTL is first "
        "lowered to failover_ttl and the old TTL waited out; --now skips that. After the "
        "switch every verification nameserver is polled until it serves the new set; if "
        "that fails the change is rolled back (exit 3)."
    )
    return command


failover = _switch_command("failover", "backup")
failback = _switch_command("failback", "primary")


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
@changing_options(switch=False)
@click.pass_obj
def prepare(state: State, /, domains: tuple[str, ...], **kw: Any) -> None:
    """Lower the TTL of each DOMAIN's live set (default: all) to failover_ttl.

    Do this ahead of a planned switch (days before, as vendors advise): once the old TTL
    has expired from caches, `mxflip status` shows the domain as switch-ready and a
    failover needs no pre-lowering wait.
    """
    _run_change(
        state,
        _change("prepare", domains, **kw),
        lambda engine, opts: engine.plan_prepare(engine.config.select(domains), opts),
    )


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
@changing_options(switch=False)
@click.pass_obj
def finalize(state: State, /, domains: tuple[str, ...], **kw: Any) -> None:
    """Raise the TTL of each DOMAIN's live set (default: all) back to its normal ttl.

    Ends a switch that left the short failover_ttl in place (the alternative to
    --restore-ttl-after).
    """
    _run_change(
        state,
        _change("finalize", domains, **kw),
        lambda engine, opts: engine.plan_finalize(engine.config.select(domains), opts),
    )


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("host")
@changing_options()
@click.pass_obj
def drain(state: State, /, host: str, **kw: Any) -> None:
    """Remove HOST from every live MX set that contains it.

    For taking a misconfigured server out of rotation. Refuses to leave any domain with
    no MX, and re-checks the remaining hosts. `mxflip restore HOST` puts it back.
    """
    _run_change(
        state,
        _change("drain", (host,), **kw),
        lambda engine, opts: engine.plan_drain(host, opts),
    )


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("host")
@changing_options()
@click.pass_obj
def restore(state: State, /, host: str, **kw: Any) -> None:
    """Put HOST back into every live MX set whose profile lists it but which lacks it.

    The opposite of `mxflip drain HOST`; the host is re-checked before it is published.
    """
    _run_change(
        state,
        _change("restore", (host,), **kw),
        lambda engine, opts: engine.plan_drain(host, opts, restore=True),
    )


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("operation_id", required=False, metavar="[OPERATION_ID]")
@changing_options(switch=False)
@click.pass_obj
def rollback(state: State, /, operation_id: str | None, **kw: Any) -> None:
    """Restore the exact before-state (records and TTL) of the last or the named operation.

    Works from whichever state the operation left (pre-lowered, switched, interrupted
    half-way); a domain changed by someone else since is refused unless --force.
    """
    _run_change(
        state,
        _change("rollback", (operation_id,) if operation_id else (), **kw),
        lambda engine, opts: engine.plan_rollback(operation_id, opts),
    )


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("operation_id", required=False, metavar="[OPERATION_ID]")
@changing_options(switch=False)
@click.pass_obj
def resume(state: State, /, operation_id: str | None, **kw: Any) -> None:
    """Finish an interrupted or failed operation (default: the last one).

    Continues from the state the zones are in: what is done is not repeated, and a
    pre-lowering wait counts the time already waited.
    """
    _run_change(
        state,
        _change("resume", (operation_id,) if operation_id else (), **kw),
        lambda engine, opts: engine.plan_resume(operation_id, opts),
    )


@cli.command(epilog="Exit codes: 0 the drill passed, 2 usage or configuration error, 3 it failed.")
@click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
@click.option(
    "--planned",
    is_flag=True,
    help="Switch as a planned failover: lower the TTL first and wait out the old one "
    "(default: --now, as in an emergency).",
)
@click.option("--reason", metavar="TEXT", help="Recorded in the journal after 'drill: '.")
@json_option
@click.option(
    "--junit",
    "junit_file",
    metavar="FILE",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write a JUnit XML report (one testcase per step and domain) for CI.",
)
@click.option(
    "--verify-timeout",
    type=Duration(),
    default="120s",
    show_default=True,
    help="How long to poll the nameservers after each switch.",
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Drill a throw-away lab on loopback (zone file, DNS and SMTP servers) instead of "
    "the configuration: no account, no root, no network.",
)
@click.pass_obj
def drill(
    state: State,
    domains: tuple[str, ...],
    planned: bool,
    reason: str | None,
    as_json: bool,
    junit_file: str | None,
    verify_timeout: float,
    sandbox: bool,
) -> None:
    """Exercise the backup path end to end, then put everything back.

    For each DOMAIN (default: all configured), in order, each step timed: status,
    readiness of the backup set, failover (--now unless --planned), verify on every
    nameserver, SMTP probe of the now-live hosts, failback (a rollback of the drill's
    operation: records and TTL as before), verify, final status. A failed step stops the
    drill, restores the before-state and fails it. Never asks; journalled like any
    operation. Point it at a dedicated drill name (drill.example.com) so production mail
    never moves.
    """
    import contextlib

    from mxflip.drill import Drill
    from mxflip.errors import UsageError
    from mxflip.readiness import default_readiness
    from mxflip.render import drill_json, drill_junit, render_drill, write_json
    from mxflip.render.operations import CountdownPrinter
    from mxflip.state import StateBackend

    with contextlib.ExitStack() as stack:
        if sandbox:
            from mxflip.sandbox import Sandbox

            if domains:
                raise UsageError("--sandbox drills its own lab domain; name no domains")
            box = stack.enter_context(Sandbox())
            from mxflip.state.local import LocalBackend

            config = box.config
            journal: StateBackend = LocalBackend(box.journal_path)
        else:
            config = state.load_config()
            journal = state.runtime.open_state(config)
            stack.callback(journal.close)
        chosen = config.select(domains)
        report = Drill(
            config,
            chosen,
            journal,
            readiness=default_readiness(config),
            clock=state.runtime.clock,
            planned=planned,
            reason=reason,
            verify_timeout=verify_timeout,
            progress=_DrillProgress(as_json, quiet=state.runtime.quiet),
            events=CountdownPrinter(as_json=as_json, console=state.runtime.stderr_console()),
            command=[
                "mxflip",
                "drill",
                *domains,
                *(["--planned"] if planned else []),
                *(["--sandbox"] if sandbox else []),
            ],
        ).run()
    if junit_file:
        from pathlib import Path

        try:
            Path(junit_file).write_bytes(drill_junit(report))
        except OSError as exc:
            raise UsageError(
                f"cannot write the JUnit report {junit_file}: {exc.strerror or exc}"
            ) from None
    if as_json:
        write_json(drill_json(report))
    else:
        render_drill(state.runtime.stdout_console(), report)
    sys.exit(int(report.exit_code))


class _DrillProgress:
    """Which drill step is running, on stderr (a JSON line each with ``--json``)."""

    def __init__(self, as_json: bool, *, quiet: bool) -> None:
        self.as_json = as_json
        self.quiet = quiet

    def __call__(self, step: str, domains: Any) -> None:
        import json

        if self.as_json:
            doc = {"event": "drill-step", "step": step, "domains": list(domains)}
            click.echo(json.dumps(doc), err=True)
        elif not self.quiet:
            click.echo(f"… {step}: {', '.join(domains)}", err=True)


@cli.command(epilog=EXIT_CODES_HELP)
@json_option
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the last N operations.")
@click.pass_obj
def history(state: State, as_json: bool, limit: int | None) -> None:
    """List operations from the journal: who, when, why, what, outcome.

    Newest first. An operation without a result was interrupted; `mxflip resume` or
    `mxflip rollback` settles it.
    """
    from mxflip.render import history_json, render_history, write_json

    config = state.load_config()
    backend = state.runtime.open_state(config)
    try:
        view = backend.read()
    finally:
        backend.close()
    if as_json:
        write_json(history_json(view, limit))
    else:
        render_history(state.runtime.stdout_console(), view, limit)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("lock_id")
@click.option("--force", is_flag=True, help="Required: you are sure its holder is gone.")
@click.option("--reason", metavar="TEXT", required=True, help="Why; recorded in the journal.")
@json_option
@click.pass_obj
def unlock(state: State, lock_id: str, force: bool, reason: str, as_json: bool) -> None:
    """Remove the shared operation lock LOCK_ID whose holder is gone.

    For [state] backend = "s3" (like `terraform force-unlock`): the lock ID is in the
    "another mxflip operation is running" message. A lock whose holder crashed is also
    taken over by the next operation once its lease expired; this is for when you cannot
    wait. The removal is journalled with your reason. Never remove a lock whose operation
    is still running: two operations would then change DNS at once.
    """
    from mxflip.errors import UsageError
    from mxflip.journal import iso
    from mxflip.render import write_json
    from mxflip.render.common import JSON_VERSION

    if not force:
        raise UsageError(
            "unlock removes another operation's lock: pass --force to confirm its holder is gone"
        )
    if not reason.strip():
        raise UsageError("--reason needs some text (it is recorded in the journal)")
    config = state.load_config()
    backend = state.runtime.open_state(config)
    try:
        held = backend.force_unlock(lock_id, reason)
    finally:
        backend.close()
    holder = (
        f"{held.get('user')}@{held.get('host')}, pid {held.get('pid')}, '{held.get('command')}'"
    )
    if as_json:
        doc = {"command": "unlock", "exit_code": 0, "lock_id": lock_id, "holder": held}
        write_json({"version": JSON_VERSION, **doc})
    else:
        since = held.get("since_ts")
        click.echo(
            f"Removed lock {lock_id} ({holder}"
            + (f", since {iso(float(since))}" if isinstance(since, int | float) else "")
            + ")."
        )


@cli.group("state")
def state_group() -> None:
    """Where the journal, the operation lock, canary and watch state live.

    [state] backend = "local" (the default) keeps them in files in your state folder;
    "s3" keeps them in a bucket shared by your team (bucket, prefix, region,
    endpoint_url, lease), with conditional writes so nothing is lost or overwritten.
    """


@state_group.command("migrate")
@click.option(
    "--to",
    "target",
    type=click.Choice(["s3"]),
    required=True,
    help="The backend to copy into (configured in [state]).",
)
@json_option
@click.pass_obj
def state_migrate(state: State, target: str, as_json: bool) -> None:
    """Copy the local journal, canary state and watch documents into the shared backend.

    Idempotent: records already copied are left alone, and nothing already in the shared
    backend is ever overwritten (a document that exists there is reported, not replaced).
    The local files are kept.
    """
    from mxflip.render import write_json
    from mxflip.render.common import JSON_VERSION
    from mxflip.state.migrate import migrate_to_shared

    config = state.load_config()
    report = migrate_to_shared(config)
    if as_json:
        doc = {"command": "state migrate", "exit_code": 0, "to": target, **report.to_json()}
        write_json({"version": JSON_VERSION, **doc})
    else:
        for line in report.lines():
            click.echo(line)


@cli.group()
def canary() -> None:
    """Delivery canaries: prove that mail through the live MX path actually arrives.

    A canary is a uniquely tagged message sent to a domain's canary_address; `check`
    finds it in the destination mailbox (IMAP or Maildir, [canary] in the config) and
    reports its delivery delay: on time, late (after warn_after) or missing (after
    fail_after). `run` does both, for cron or CI.
    """


via_option = click.option(
    "--via",
    type=click.Choice(["live", "primary", "backup"]),
    default="live",
    show_default=True,
    help="Send through the MX set the provider serves now, or straight to one profile's "
    "hosts (backup: bypass the proxy).",
)
prometheus_option = click.option(
    "--prometheus",
    "prometheus_file",
    metavar="FILE",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the node_exporter textfile FILE (delay, last success, per domain and path).",
)


@canary.command("send")
@click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
@via_option
@json_option
@click.pass_obj
def canary_send(state: State, domains: tuple[str, ...], via: str, as_json: bool) -> None:
    """Send one tagged canary to each DOMAIN's canary_address (default: every domain
    that has one).

    Tries each MX host of the path once, in preference order, with STARTTLS when offered
    and the [probe] timeout. Exit 0 when every canary was accepted, 3 when one was not.
    """
    from mxflip import loop
    from mxflip.canary import canary_domains, send_canaries
    from mxflip.render import canary_send_json, render_canary_send, write_json

    config = state.load_config()
    chosen = canary_domains(config, domains)
    results = loop.run(send_canaries(config, chosen, via, clock=state.runtime.clock))
    code = ExitCode.OK if all(r.ok for r in results) else ExitCode.FAILURE
    if as_json:
        write_json(canary_send_json(results, int(code)))
    else:
        render_canary_send(state.runtime.stdout_console(), results)
    sys.exit(int(code))


@canary.command("check")
@click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
@click.option(
    "--keep/--delete",
    "keep",
    default=None,
    help="Leave found canaries in the mailbox, or remove them (default: [canary] "
    "delete_after_check, true).",
)
@json_option
@prometheus_option
@click.pass_obj
def canary_check(
    state: State,
    domains: tuple[str, ...],
    keep: bool | None,
    as_json: bool,
    prometheus_file: str | None,
) -> None:
    """Find the canaries sent earlier in the destination mailbox and report each one's
    delivery delay.

    Exit 0 when all arrived on time (or are younger than warn_after), 1 when one is late,
    3 when one is missing (not found after fail_after) or could not be sent.
    """
    from mxflip.canary import check_canaries

    config = state.load_config()
    if domains:
        config.select(domains)
    report = check_canaries(
        config,
        domains=domains,
        delete=None if keep is None else not keep,
        clock=state.runtime.clock,
    )
    _canary_report(state, config, report, "canary check", as_json, prometheus_file)


@canary.command("run")
@click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
@via_option
@click.option(
    "--wait",
    metavar="DURATION",
    type=Duration(),
    help="Longest time to wait for the canaries, e.g. 5m (default: [canary] fail_after). "
    "Canaries that arrive later are found by the next run.",
)
@json_option
@prometheus_option
@click.pass_obj
def canary_run(
    state: State,
    domains: tuple[str, ...],
    via: str,
    wait: float | None,
    as_json: bool,
    prometheus_file: str | None,
) -> None:
    """Send a canary, wait for it (bounded, with progress), check: for cron or CI.

    Exit 0 when every canary arrived on time, 1 when one is late, 3 when one is missing
    or could not be sent.
    """
    from mxflip import loop
    from mxflip.canary import canary_domains, run_canaries

    config = state.load_config()
    chosen = canary_domains(config, domains)
    with _WaitDisplay(state.runtime, enabled=not as_json) as display:
        report = loop.run(
            run_canaries(
                config, chosen, via, wait=wait, clock=state.runtime.clock, progress=display.update
            )
        )
    _canary_report(state, config, report, "canary run", as_json, prometheus_file)


class _WaitDisplay:
    """A progress bar on stderr while ``canary run`` waits (only on a terminal)."""

    def __init__(self, runtime: Runtime, enabled: bool) -> None:
        self.runtime = runtime
        self.enabled = enabled and runtime.stderr_is_terminal()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _WaitDisplay:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("waiting for canaries"),
                BarColumn(),
                TextColumn(
                    "{task.fields[arrived]}/{task.fields[count]} arrived, "
                    "{task.completed:.0f}/{task.total:.0f} s"
                ),
                console=self.runtime.stderr_console(),
                transient=True,
            )
            self._progress.start()
        return self

    def update(self, p: Any) -> None:
        if self._progress is None:
            return
        if self._task is None:
            self._task = self._progress.add_task("wait", total=p.wait, arrived=0, count=p.total)
        self._progress.update(self._task, completed=min(p.elapsed, p.wait), arrived=p.arrived)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _canary_report(
    state: State,
    config: Any,
    report: Any,
    command: str,
    as_json: bool,
    prometheus_file: str | None,
) -> None:
    from pathlib import Path

    from mxflip.canary import canary_store
    from mxflip.canary.metrics import write_canary_textfile
    from mxflip.render import (
        canary_check_json,
        render_canary_check,
        write_json,
    )

    code = report.exit_code
    if prometheus_file:
        paths = canary_store(config).load().paths
        write_canary_textfile(Path(prometheus_file), paths)
    if as_json:
        write_json(canary_check_json(report, int(code), command))
    else:
        render_canary_check(state.runtime.stdout_console(), report)
    sys.exit(int(code))


from mxflip.watch.cli import register as _register_watch  # noqa: E402 (needs `cli` above)

_register_watch(cli)


def main() -> None:
    """Console-script entry point."""
    # No PYDANTIC_DISABLE_PLUGINS here: the plugin scan is skipped when no pydantic plugin
    # is installed (mxflip.entrypoints.skip_pydantic_plugin_scan), and setting it in our
    # environment would disable a user's plugins and leak into every child process.
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    cli(prog_name="mxflip")


def _register_onboarding() -> None:
    from mxflip.cli_onboard import completion, doctor, init
    from mxflip.completion import install_completers

    cli.add_command(init)
    cli.add_command(doctor)
    cli.add_command(completion)
    install_completers(cli)


_register_onboarding()
