"""The onboarding commands: ``init``, ``doctor`` and ``completion``.

Loaded by the ``mxflip`` group (:data:`mxflip.cli.COMMANDS`); like every command they parse,
call the core (:mod:`mxflip.init`, :mod:`mxflip.doctor`) and pick a renderer.
"""

from __future__ import annotations

import sys

import click

from mxflip.cli import State, dns_timeout_option, json_option
from mxflip.completion import SHELLS


@click.command(
    epilog="Exit codes: 0 written (or printed), 2 usage or configuration error, "
    "3 the provider failed."
)
@click.option(
    "--provider",
    "provider_name",
    required=True,
    metavar="NAME",
    help="The [providers.NAME] table to read the live MX records through.",
)
@click.option(
    "--zone",
    "zones",
    multiple=True,
    metavar="ZONE",
    help="Only this zone (repeatable; default: every zone the provider lists). RFC 2136 "
    "needs it: it reads the zone by AXFR.",
)
@click.option(
    "--domain",
    "domains",
    multiple=True,
    metavar="DOMAIN",
    help="Only this domain (repeatable; default: every name with MX records).",
)
@click.option(
    "--backup",
    multiple=True,
    metavar="RECORD",
    help='The backup MX set for every domain, e.g. "10 mail.{domain}" (repeatable; '
    "default: a placeholder that `mxflip validate` refuses until you fill it in).",
)
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write to FILE instead of rewriting the configuration file (kept as .bak).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing -o FILE.")
@click.option("--dry-run", is_flag=True, help="Print the configuration instead of writing it.")
@click.pass_obj
def init(
    state: State,
    provider_name: str,
    zones: tuple[str, ...],
    domains: tuple[str, ...],
    backup: tuple[str, ...],
    output: str | None,
    force: bool,
    dry_run: bool,
) -> None:
    """Write a configuration from the MX records live at one provider.

    Write only the [providers.NAME] table (secrets as environment variable names), then
    run this: every domain with MX records becomes a [domains] table, identical live sets
    are grouped under [sets] as each domain's primary, ttl is the live TTL, and backup is
    --backup or a placeholder to fill in. Known inbound filters (Mimecast, Proofpoint,
    Barracuda, Microsoft 365 EOP, Google) are named in a comment. Nothing in DNS changes.
    """
    from pathlib import Path

    from mxflip.init import discover, ensure_toml, write_config
    from mxflip.render.init import init_summary, init_toml

    result = discover(state.config_path, provider_name, zones, domains, backup)
    text = init_toml(result)
    ensure_toml(text, result.source)
    if dry_run:
        state.runtime.out.write(text)
        return
    target = Path(output) if output else result.source
    bak = write_config(target, text, overwrite=force or output is None, keep_backup=output is None)
    kept = f" (the previous version is in {bak})" if bak else ""
    state.runtime.stderr_console().print(
        f"Wrote {target}{kept}: {init_summary(result)}.", markup=False
    )


@click.command(epilog="Exit codes: 0 all checks passed, 1 a warning, 3 a check failed.")
@json_option
@click.option(
    "--test-notify",
    is_flag=True,
    help="Also send a test message to every notification channel ([watch] notify).",
)
@dns_timeout_option
@click.pass_obj
def doctor(state: State, as_json: bool, test_notify: bool, timeout: float) -> None:
    """Check everything a drill or an incident will need, and say what to fix.

    Online, changing nothing: the configuration; each provider reachable, the credentials
    allowed to read and (by a harmless check: a change the API must refuse, a no-op
    UPDATE) to change the zones; every verification nameserver answering
    authoritatively; the TSIG clock skew (RFC 2136); SMTP readiness of the primary and
    backup sets; the canary mailbox login and folder; the state directory writable and
    lockable; notification channels. A checklist (✓ ⚠ ✗, each problem with its fix),
    or --json.
    """
    from mxflip import loop
    from mxflip.doctor import run_doctor
    from mxflip.render import write_json
    from mxflip.render.doctor import doctor_json, render_doctor

    report = loop.run(run_doctor(state.config_path, test_notify=test_notify, dns_timeout=timeout))
    if as_json:
        write_json(doctor_json(report))
    else:
        render_doctor(state.runtime.stdout_console(), report)
    sys.exit(int(report.exit_code))


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (commands, options, configured domain
    names, operation ids from the journal).

    \b
    bash:  eval "$(mxflip completion bash)"     (in ~/.bashrc)
    zsh:   eval "$(mxflip completion zsh)"      (in ~/.zshrc)
    fish:  mxflip completion fish > ~/.config/fish/completions/mxflip.fish
    """
    from mxflip.cli import cli
    from mxflip.completion import completion_script

    click.echo(completion_script(cli, shell))
