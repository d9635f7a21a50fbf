"""Everything ``mxflip status`` reports, gathered into one value with its exit code.

The observation (provider, nameservers, resolvers) comes from :mod:`mxflip.observe`; this
module adds what other parts know about the same domains — TTL/switch readiness and
unsettled operations from the journal, the last delivery-canary results — so the CLI
only renders one report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mxflip import loop
from mxflip.config import Config, DomainConfig
from mxflip.errors import ExitCode, MxflipError
from mxflip.observe import DomainStatus, Observer
from mxflip.runtime import Runtime

if TYPE_CHECKING:
    from mxflip.canary import CanaryStatus
    from mxflip.engine import SwitchReadiness
    from mxflip.journal import Operation
    from mxflip.probe import DomainReadiness


@dataclass(frozen=True)
class StatusReport:
    """The result of ``mxflip status``; ``exit_code`` follows the documented contract."""

    domains: Sequence[DomainStatus]
    #: Per domain name: lowered-TTL and switch-ready flags.
    switch: Mapping[str, SwitchReadiness] = field(default_factory=dict)
    #: Operations the journal shows as interrupted or failed and not yet settled.
    unsettled: Sequence[Operation] = ()
    journal_error: str | None = None
    #: Who holds the operation lock now (an operation is running), or None.
    running: str | None = None
    #: The operation that process is running (the newest, still without a result).
    running_op: str | None = None
    #: ``line N: why`` for journal lines that could not be trusted (skipped).
    journal_problems: Sequence[str] = ()
    #: The canary state could not be read (status still shows DNS).
    canary_error: str | None = None
    #: Per domain display name; None when no ``[canary]`` is configured.
    canary: Mapping[str, Sequence[CanaryStatus]] | None = None
    #: Per domain name: the live set's SMTP readiness; None unless ``--probe``.
    probes: Mapping[str, DomainReadiness] | None = None

    @property
    def canary_alert(self) -> bool:
        return any(c.alert for cs in (self.canary or {}).values() for c in cs)

    @property
    def exit_code(self) -> ExitCode:
        """3 when a provider or every nameserver is unreachable, or a probed live set is
        not ready; 1 when anything needs attention (not on primary, inconsistent, a lowered
        TTL left behind, an unsettled operation, a failing canary, a degraded live set);
        else 0."""
        verdicts = {p.verdict.value for p in (self.probes or {}).values()}
        if any(s.unreachable for s in self.domains) or "not-ready" in verdicts:
            return ExitCode.FAILURE
        if "degraded" in verdicts or (
            any(s.needs_attention for s in self.domains)
            or any(r.lowered_ttl for r in self.switch.values())
            or self.unsettled
            or self.canary_alert
            or self.canary_error
        ):
            return ExitCode.ATTENTION
        return ExitCode.OK


def gather_status(
    config: Config,
    domains: Sequence[DomainConfig],
    *,
    dns_timeout: float,
    probe: bool = False,
    runtime: Runtime | None = None,
) -> StatusReport:
    """Observe ``domains`` and add the journal's and the canary's view of them; with
    ``probe``, the SMTP readiness of each domain's live set too. ``runtime`` gives the
    clock and the environment (default: the process's)."""
    from mxflip.engine import switch_readiness_all
    from mxflip.journal import JournalView
    from mxflip.state import StateBackend

    runtime = runtime or Runtime()

    observer = Observer(config, dns_timeout=dns_timeout)
    try:
        statuses = loop.run(observer.status(domains))
    finally:
        observer.close()
    journal: StateBackend | None = None
    try:
        journal = runtime.open_state(config)
        view = journal.read()
        journal_error = None
    except MxflipError as exc:  # reported, not fatal: status must work in an outage
        view, journal_error = JournalView([]), str(exc)
    now = runtime.now()
    switch = switch_readiness_all(statuses, view, now)
    canary = None
    canary_error = None
    if config.canary is not None:
        from mxflip.canary import canary_status

        try:
            canary = canary_status(config, domains, clock=runtime.clock)
        except MxflipError as exc:  # a damaged state file must not hide the DNS view
            canary_error = str(exc)
    probes = None
    if probe:
        from mxflip.readiness import check_domains

        # The provider's records are the truth of what is live; DNS may lag behind.
        live = {s.domain.name: s.provider_rrset for s in statuses if s.provider_error is None}
        found = loop.run(check_domains(config, domains, "live", live_records=live))
        probes = {r.domain: r for r in found}
    running = None
    if journal is not None and journal_error is None:
        try:
            running = journal.holder()
        except MxflipError:  # the shared lock is unreadable now: the journal error says why
            running = None
        finally:
            journal.close()
    newest = view.operations[-1] if view.operations else None
    running_op = newest.id if running and newest is not None and newest.result is None else None
    return StatusReport(
        domains=statuses,
        probes=probes,
        switch=switch,
        unsettled=view.unsettled(),
        journal_error=journal_error,
        running=running,
        running_op=running_op,
        journal_problems=view.problems,
        canary_error=canary_error,
        canary=canary,
    )
