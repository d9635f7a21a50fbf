"""The ``canary`` commands: ``send``, ``check`` and ``run``.

Loaded by :class:`mxflip.cli.MxflipGroup` when one of them runs (see ``COMMANDS`` there).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from mxflip.cli import Duration, State, json_option
from mxflip.errors import ExitCode

if TYPE_CHECKING:
    from mxflip.runtime import Runtime


@click.group()
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
