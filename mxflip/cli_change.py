"""The changing commands (``failover``, ``failback``, ``prepare``, ``finalize``, ``drain``,
``restore``, ``rollback``, ``resume``) with their one flow, and ``drill``.

Loaded by :class:`mxflip.cli.MxflipGroup` when one of them runs (see ``COMMANDS`` there).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from mxflip.cli import EXIT_CODES_HELP, Duration, State, json_option
from mxflip.errors import ExitCode, MxflipError

if TYPE_CHECKING:
    from mxflip.config import Config, DomainConfig
    from mxflip.engine import Engine
    from mxflip.journal import Operation
    from mxflip.plan import Plan, PlanOptions
    from mxflip.rollout import RolloutResult
    from mxflip.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])
#: Builds the plan of one changing command from the engine and the parsed options.
#: Plans a change on the engine (a coroutine function: the engine observes on the loop).
Build = Callable[["Engine", "PlanOptions"], Coroutine[Any, Any, "Plan"]]


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
            # As status, doctor and watch have it: a blackholed nameserver costs this (per
            # check), not a fixed 2 s that only the engine's callers could change.
            click.option(
                "--timeout",
                type=click.FloatRange(0.1, 60),
                default=2.0,
                show_default=True,
                help="Seconds to wait for each nameserver while planning and verifying "
                "(over up to 3 tries).",
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
    timeout: float = 2.0  # `approve` (mxflip.watch.cli) has no --timeout: the default
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
        dns_timeout=change.timeout,
    )
    plan: Plan | None = None
    try:
        lock = journal.lock(" ".join(command)) if not change.dry_run else contextlib.nullcontext()
        with lock:
            planned: Plan | None = None
            if change.kind not in ("rollback", "resume"):
                unsettled, outcome = loop.run(engine.unsettled_and_plan(build(engine, opts)))
                settle = _settle_unsettled(unsettled, change, runtime)
                if settle is not None:
                    # The person chose to settle the earlier operation instead.
                    kind, op_id = settle
                    change.kind, change.argv = kind, (op_id,)
                    command = ["mxflip", kind, op_id]
                    build = _settle_builder(kind, op_id)
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    planned = outcome
            plan = planned if planned is not None else loop.run(build(engine, opts))
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
    op: Operation | None, change: ChangeRequest, runtime: Runtime
) -> tuple[str, str] | None:
    """An interrupted or failed operation (``op``, the engine's check) must be resumed or
    rolled back first. On a terminal the person is offered both; otherwise the command is
    refused, naming them. Returns (kind, operation id) when the person chose to settle
    it now."""
    from mxflip.engine import Unsettled, unsettled_text

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
    @click.command(name=kind, epilog=EXIT_CODES_HELP)
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


@click.command(epilog=EXIT_CODES_HELP)
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


@click.command(epilog=EXIT_CODES_HELP)
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


@click.command(epilog=EXIT_CODES_HELP)
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


@click.command(epilog=EXIT_CODES_HELP)
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


@click.command(epilog=EXIT_CODES_HELP)
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


@click.command(epilog=EXIT_CODES_HELP)
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


@click.command(
    epilog="Exit codes: 0 the drill passed, 2 usage or configuration error, 3 it failed."
)
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
