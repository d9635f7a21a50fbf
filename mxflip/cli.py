"""The ``mxflip`` command line: parse, call the core, render, map errors to exit codes.

Heavy modules (rich, dnspython, pydantic, adapters) are imported inside the commands so that
``mxflip --help`` stays fast and never loads a provider SDK.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from mxflip import __version__
from mxflip.errors import ExitCode, MxflipError

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

    def load_config(self) -> Any:
        from mxflip.config import load_config

        return load_config(self.config_path)


class MxflipGroup(click.Group):
    """Turns mxflip errors into one line on stderr and their exit code (no traceback
    unless ``--debug``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MxflipError as exc:
            if _debug(ctx):
                raise
            _fail(ctx, f"error: {exc}", exc.exit_code)
        except KeyboardInterrupt:
            _fail(ctx, "interrupted", ExitCode.INTERRUPTED)
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
            )


def _debug(ctx: click.Context) -> bool:
    state = ctx.find_object(State)
    return bool(state and state.debug)


def _fail(ctx: click.Context, message: str, code: int) -> NoReturn:
    click.echo(f"mxflip: {message}", err=True)
    ctx.exit(int(code))


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
@click.version_option(__version__, prog_name="mxflip")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """MX failover controller: see which MX set is live, prove the backup, switch safely.

    Every command that reads DNS takes --json for one stable JSON document on stdout.
    """
    ctx.obj = State(config_path=config_path, debug=debug)


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Write one JSON document to stdout."
)


@cli.command()
@click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
@json_option
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 60),
    default=3.0,
    show_default=True,
    help="Seconds to wait for each nameserver or resolver.",
)
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
    from mxflip.canary import canary_status, default_clock
    from mxflip.observe import Observer
    from mxflip.probe import Verdict
    from mxflip.render import render_status, status_json, stdout_console, write_json

    config = state.load_config()
    chosen = config.select(domains)
    observer = Observer(config, dns_timeout=timeout)
    try:
        statuses = observer.status(chosen)
    finally:
        observer.close()
    probes = None
    if with_probe:
        from mxflip.readiness import check_domains

        # The provider's records are the truth of what is live; DNS may lag behind.
        live = {s.domain.name: s.provider_rrset for s in statuses if s.provider_error is None}
        results = check_domains(config, chosen, "live", live_records=live)
        probes = {r.domain: r for r in results}
    canary = canary_status(config, chosen, clock=default_clock()) if config.canary else None
    canary_alert = any(c.alert for cs in (canary or {}).values() for c in cs)
    if any(s.unreachable for s in statuses):
        code = ExitCode.FAILURE
    elif any(s.needs_attention for s in statuses) or canary_alert:
        code = ExitCode.ATTENTION
    else:
        code = ExitCode.OK
    if probes:
        code = max(code, _verdict_exit(Verdict.worst(p.verdict for p in probes.values())))
    if as_json:
        write_json(status_json(statuses, int(code), canary, probes=probes))
    else:
        render_status(stdout_console(), statuses, canary, probes=probes)
    sys.exit(int(code))


def _verdict_exit(verdict: Any) -> ExitCode:
    from mxflip.probe import Verdict

    return {
        Verdict.READY: ExitCode.OK,
        Verdict.DEGRADED: ExitCode.ATTENTION,
        Verdict.NOT_READY: ExitCode.FAILURE,
    }[verdict]


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
    from mxflip.probe import Verdict
    from mxflip.readiness import check_domains
    from mxflip.render import check_json, render_check, stdout_console, write_json

    config = state.load_config()
    chosen = config.select(domains)
    results = check_domains(config, chosen, profile)
    code = _verdict_exit(Verdict.worst(r.verdict for r in results))
    if as_json:
        write_json(check_json(results, profile, int(code)))
    else:
        render_check(stdout_console(), results, profile)
    sys.exit(int(code))


@cli.command()
@json_option
def providers(as_json: bool) -> None:
    """List the installed provider adapters with their versions."""
    from mxflip.provider import installed_providers
    from mxflip.render import providers_json, render_providers, stdout_console, write_json

    found = installed_providers().values()
    if as_json:
        write_json(providers_json(found))
    else:
        render_providers(stdout_console(), found)


@cli.command()
@json_option
@click.pass_obj
def validate(state: State, as_json: bool) -> None:
    """Check the configuration file without contacting any provider or server.

    Loads every provider adapter the file names and validates its settings (key files
    are read, tokens are not used). Exit 0 when valid, 2 with one line naming the file,
    the key and the problem when not.
    """
    from mxflip.render import config_json, render_config, stdout_console, write_json

    config = state.load_config()
    if as_json:
        write_json(config_json(config))
    else:
        render_config(stdout_console(), config)


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


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    from mxflip.duration import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


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
    from mxflip.canary import canary_domains, default_clock, send_canaries
    from mxflip.render import canary_send_json, render_canary_send, stdout_console, write_json

    config = state.load_config()
    chosen = canary_domains(config, domains)
    results = send_canaries(config, chosen, via, clock=default_clock())
    code = ExitCode.OK if all(r.ok for r in results) else ExitCode.FAILURE
    if as_json:
        write_json(canary_send_json(results, int(code)))
    else:
        render_canary_send(stdout_console(), results)
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
    from mxflip.canary import check_canaries, default_clock

    config = state.load_config()
    if domains:
        config.select(domains)
    report = check_canaries(
        config,
        domains=domains,
        delete=None if keep is None else not keep,
        clock=default_clock(),
    )
    _canary_report(config, report, "canary check", as_json, prometheus_file)


@canary.command("run")
@click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
@via_option
@click.option(
    "--wait",
    metavar="DURATION",
    callback=_duration,
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
    from mxflip.canary import canary_domains, default_clock, run_canaries

    config = state.load_config()
    chosen = canary_domains(config, domains)
    with _WaitDisplay(enabled=not as_json) as display:
        report = run_canaries(
            config, chosen, via, wait=wait, clock=default_clock(), progress=display.update
        )
    _canary_report(config, report, "canary run", as_json, prometheus_file)


class _WaitDisplay:
    """A progress bar on stderr while ``canary run`` waits (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _WaitDisplay:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn

            from mxflip.render import stderr_console

            self._progress = Progress(
                TextColumn("waiting for canaries"),
                BarColumn(),
                TextColumn(
                    "{task.fields[arrived]}/{task.fields[count]} arrived, "
                    "{task.completed:.0f}/{task.total:.0f} s"
                ),
                console=stderr_console(),
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
    config: Any, report: Any, command: str, as_json: bool, prometheus_file: str | None
) -> None:
    from pathlib import Path

    from mxflip.canary import CanaryStore, state_file, write_textfile
    from mxflip.render import (
        canary_check_json,
        canary_prometheus,
        render_canary_check,
        stdout_console,
        write_json,
    )

    code = report.exit_code
    if prometheus_file:
        paths = CanaryStore(state_file(config.canary)).load().paths
        write_textfile(Path(prometheus_file), canary_prometheus(paths))
    if as_json:
        write_json(canary_check_json(report, int(code), command))
    else:
        render_canary_check(stdout_console(), report)
    sys.exit(int(code))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mxflip")
