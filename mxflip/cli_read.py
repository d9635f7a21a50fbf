"""The reading commands ``status``, ``check`` and ``history``: DNS, SMTP and the journal,
nothing changed.

Loaded by :class:`mxflip.cli.MxflipGroup` when one of them runs (see ``COMMANDS`` there).
"""

from __future__ import annotations

import sys

import click

from mxflip.cli import EXIT_CODES_HELP, State, dns_timeout_option, json_option
from mxflip.errors import ExitCode


@click.command()
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


@click.command()
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


@click.command(epilog=EXIT_CODES_HELP)
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
