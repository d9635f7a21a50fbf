"""The ``watch``, ``proposals`` and ``approve`` commands (made by :func:`register`; the
``mxflip`` group loads them from this module's attributes, :data:`mxflip.cli.COMMANDS`)."""

from __future__ import annotations

import sys
from typing import Any

import click

from mxflip.errors import ExitCode

WATCH_EXIT = """\b
Exit codes (--once, like status):
  0  every domain ok
  1  attention: a domain is suspect, failing, switched or recovering; drift; an open
     proposal; a readiness regression
  2  usage or configuration error
  3  a provider or every nameserver unreachable; an automatic action failed"""


def register(cli: click.Group) -> None:
    from mxflip.cli import dns_timeout_option, json_option

    @cli.command(epilog=WATCH_EXIT)
    @click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
    @click.option("--once", is_flag=True, help="Run one round and exit (cron, CronJob, CI).")
    @click.option(
        "--listen",
        metavar="HOST:PORT",
        help="Serve /metrics, /healthz and a status page (HOST defaults to 127.0.0.1).",
    )
    @json_option
    @dns_timeout_option
    @click.pass_obj
    def watch(state: Any, /, domains: tuple[str, ...], **options: Any) -> None:
        """Watch DOMAINs (default: all) continuously: DNS, readiness, canaries.

        Every [watch] interval (default 5m), per domain: the MX set at the provider and
        every nameserver (drift), readiness of the backup and live sets, a canary through
        one live host in turn and one straight to the backup hosts. A per-domain state
        (ok, suspect, failing, switched, recovering) survives restarts; on a failing
        primary path the watcher notifies, proposes (`mxflip approve`) or fails over, as
        [watch] on_primary_failing says. Alerts go to Apprise URLs ([watch] notify).
        SIGTERM/SIGINT stop after the current step; SIGHUP reloads the configuration.
        """
        run_watch(state, domains, **options)

    @cli.command(epilog="Exit codes: 0 none open, 1 proposals are open, 2 usage error.")
    @json_option
    @click.option("--all", "all_", is_flag=True, help="Also approved, expired and failed ones.")
    @click.pass_obj
    def proposals(state: Any, as_json: bool, all_: bool) -> None:
        """List the watcher's proposals (open ones by default), with the command to
        approve each."""
        from mxflip.render import write_json
        from mxflip.render.watch import proposals_json, render_proposals

        config = state.load_config()
        store = _store(state, config)
        now = state.runtime.now()
        st = store.load()
        shown = [p for p in st.proposals if all_ or p.open(now)]
        code = ExitCode.ATTENTION if any(p.open(now) for p in shown) else ExitCode.OK
        if as_json:
            write_json(proposals_json(shown, int(code)))
        else:
            render_proposals(state.runtime.stdout_console(), shown)
        sys.exit(int(code))

    @cli.command(
        epilog="Exit codes: as failover/failback/drain; 2 for an unknown or expired proposal."
    )
    @click.argument("proposal")
    @json_option
    @click.option(
        "--verify-timeout",
        default=120.0,
        type=click.FloatRange(1, 3600),
        show_default=True,
        help="Seconds to poll the nameservers for the new set.",
    )
    @click.pass_obj
    def approve(state: Any, proposal: str, as_json: bool, verify_timeout: float) -> None:
        """Execute exactly the plan of PROPOSAL (from `mxflip proposals`) through the
        engine: refused when the plan changed since it was proposed (its hash differs),
        when it expired, or when the safety checks block it."""
        approve_proposal(state, proposal, as_json=as_json, verify_timeout=verify_timeout)


def _store(state: Any, config: Any) -> Any:
    """The watch state where the watcher keeps it: the local file, or the shared
    document of ``[state] backend = "s3"`` (the backend lives as long as the command)."""
    from mxflip.watch.config import WatchConfig
    from mxflip.watch.store import open_store

    settings = config.watch or WatchConfig()
    backend = state.runtime.open_state(config) if config.state.backend != "local" else None
    return open_store(settings.state_file, state.runtime.journal_path(config.journal.path), backend)


def approve_proposal(state: Any, ident: str, *, as_json: bool, verify_timeout: float) -> None:
    from mxflip.cli_change import _change, _run_change
    from mxflip.watch.actions import find_proposal

    config = state.load_config()
    store = _store(state, config)
    now = state.runtime.now()
    p = find_proposal(store.load(), ident, now)
    domains = (p.target,) if p.kind == "drain" else (p.domain,)
    change = _change(
        p.kind,
        domains,
        yes=True,
        dry_run=False,
        reason=f"approved watch proposal {p.id}: {p.evidence}",
        as_json=as_json,
        plan_hash=p.plan_hash,
        force=False,
        verify_timeout=verify_timeout,
        now=p.now,
    )

    async def build(engine: Any, opts: Any) -> Any:
        if p.kind == "drain":
            return await engine.plan_drain(p.target, opts)
        return await engine.plan_switch(p.kind, engine.config.select([p.domain]), opts)

    code = 3
    try:
        _run_change(state, change, build)
    except SystemExit as exc:
        code = int(exc.code or 0)
        raise
    finally:
        op = None
        if code == 0:
            backend = state.runtime.open_state(config)
            try:
                view = backend.read()
            finally:
                backend.close()
            op = next(
                (
                    o.id
                    for o in reversed(view.operations)
                    if o.intent.get("plan_hash") == p.plan_hash
                ),
                None,
            )
        from mxflip.watch.store import WatchStateConflict

        # Bounded: a leader's round may save the shared state between our read and write.
        for attempt in range(5):
            try:
                with store.update() as st:
                    q = st.proposal(p.id)
                    if q is not None and q.status == "pending":
                        q.status = "approved" if code == 0 else "failed"
                        q.operation = op
                        q.error = None if code == 0 else f"exit {code}"
                break
            except WatchStateConflict:
                if attempt == 4:
                    raise


def run_watch(
    state: Any,
    domains: tuple[str, ...],
    *,
    once: bool,
    listen: str | None,
    as_json: bool,
    timeout: float,
) -> None:
    import signal

    from mxflip.render import write_json
    from mxflip.render.watch import render_watch, watch_json
    from mxflip.watch.config import check_env_urls
    from mxflip.watch.rounds import Watcher

    config = state.load_config()
    if config.watch is not None:
        check_env_urls(config.watch)
    address = None
    if listen:
        from mxflip.errors import UsageError
        from mxflip.hostport import parse_hostport

        try:
            # A bare port, or ":PORT", binds to loopback: the page is not for the world.
            spec = f"127.0.0.1{listen}" if listen.startswith(":") else listen
            address = parse_hostport(spec if ":" in spec else f"127.0.0.1:{spec}", 9387)
        except ValueError as exc:
            raise UsageError(f"--listen {listen!r}: {exc}") from None
    # A round's story on stderr for a service's journal (at least -v); a cron run shows
    # only warnings unless -v is given.
    state.runtime.show_logs(at_least=0 if once else 1)
    from mxflip.watch.metrics import WatchMetrics

    metrics = WatchMetrics(config)
    watcher = Watcher(
        config,
        domains,
        clock=state.runtime.clock,
        load_config=state.load_config,
        hooks=metrics.hooks(),
        dns_timeout=timeout,
    )
    metrics.attach(watcher)
    server = None
    # Put back what was there when the watcher ends (a caller running the command in its
    # own process, as the tests do, keeps its own handlers).
    previous = {
        signum: signal.getsignal(signum)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }
    try:
        if address is not None:
            from mxflip.watch.server import serve

            server = serve(address.host, address.port, metrics, watcher)
        # Stop requests only set a flag: the round ends after its current step, and an
        # operation in flight completes (or rolls back) through the engine, never half-way.
        signal.signal(signal.SIGTERM, lambda *_: watcher.request_stop())
        signal.signal(signal.SIGINT, lambda *_: watcher.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: watcher.request_reload())
        report = watcher.run(once=once)
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        if server is not None:
            server.shutdown()
        watcher.close()
    if report is None:
        sys.exit(0)
    if once:
        if as_json:
            write_json(watch_json(report))
        else:
            render_watch(state.runtime.stdout_console(), report)
        sys.exit(int(report.exit_code))
    sys.exit(0)


# The commands as attributes, for the ``mxflip`` group's lazy loading (mxflip.cli.COMMANDS).
_commands = click.Group()
register(_commands)
watch, proposals, approve = (_commands.commands[n] for n in ("watch", "proposals", "approve"))
