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
    from mxflip.observe import Observer
    from mxflip.render import render_status, status_json, stdout_console, write_json

    config = state.load_config()
    chosen = config.select(domains)
    observer = Observer(config, dns_timeout=timeout)
    try:
        statuses = observer.status(chosen)
    finally:
        observer.close()
    from mxflip.probe import Verdict

    probes = None
    if with_probe:
        from mxflip.readiness import check_domains

        # The provider's records are the truth of what is live; DNS may lag behind.
        live = {s.domain.name: s.provider_rrset for s in statuses if s.provider_error is None}
        results = check_domains(config, chosen, "live", live_records=live)
        probes = {r.domain: r for r in results}
    if any(s.unreachable for s in statuses):
        code = ExitCode.FAILURE
    elif any(s.needs_attention for s in statuses):
        code = ExitCode.ATTENTION
    else:
        code = ExitCode.OK
    if probes:
        code = max(code, _verdict_exit(Verdict.worst(p.verdict for p in probes.values())))
    if as_json:
        write_json(status_json(statuses, int(code), probes))
    else:
        render_status(stdout_console(), statuses, probes)
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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mxflip")
