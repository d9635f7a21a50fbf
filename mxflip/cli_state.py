"""The shared-state commands ``unlock`` and ``state migrate``.

Loaded by :class:`mxflip.cli.MxflipGroup` when one of them runs (see ``COMMANDS`` there).
"""

from __future__ import annotations

import click

from mxflip.cli import EXIT_CODES_HELP, State, json_option


@click.command(epilog=EXIT_CODES_HELP)
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


@click.group("state")
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
