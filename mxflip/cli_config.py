"""The offline commands ``providers`` and ``validate``: what is installed and what the
configuration says, without contacting any provider or server.

Loaded by :class:`mxflip.cli.MxflipGroup` when one of them runs (see ``COMMANDS`` there).
"""

from __future__ import annotations

import click

from mxflip.cli import State, json_option


@click.command()
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


@click.command()
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
