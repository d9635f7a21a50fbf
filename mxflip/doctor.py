"""``mxflip doctor``: check, online and without changing anything, everything a drill or an
incident will need, and say what to fix.

Doctor is a list of check functions (:data:`CHECKS`). Each takes the
:class:`DoctorContext` and returns :class:`CheckResult` values; a new concern (a shared
state backend, notification channels) is one more function in the list. Nothing here
prints: :mod:`mxflip.render.doctor` draws the checklist or the JSON document.

What each check proves, and its limits:

* ``config``: the file loads and validates (as ``mxflip validate``); the other checks need it.
* ``provider``: per (provider, zone), the adapter's harmless access check
  (:meth:`mxflip.provider.Provider.check_access`): reachable, allowed to read, allowed to
  change (a change the API must refuse, a no-op UPDATE; see each adapter), and for RFC 2136
  the TSIG clock skew (``tsig-clock``).
* ``nameserver``: every verification nameserver answers the domain's MX query
  authoritatively (AA set), as ``status`` and a switch's verification need.
* ``readiness``: the SMTP readiness of the primary and backup sets, summarised (the
  handshake ``mxflip check`` does, never DATA).
* ``canary``: the canary mailbox logs in and its folder is selected (IMAP), or the
  Maildir is readable.
* ``state``: the journal's folder accepts a new file and the operation lock can be taken;
  with ``[state] backend = "s3"``, the shared journal reads and the shared lock is taken.
* ``notify``: each ``[watch] notify`` channel (and ``notify_env``'s): Apprise accepts the
  URL and, where the scheme names a host, it resolves and accepts a connection (nothing is
  sent); with ``--test-notify`` a test message goes through each channel. The heartbeat URL
  is checked the same way (never requested: a request would count as a heartbeat). Lines
  name a channel by its scheme only: the rest of the URL holds secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mxflip.config import Config, load_config
from mxflip.errors import ExitCode, MxflipError
from mxflip.provider import AccessCheck, Provider

_log = logging.getLogger(__name__)

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"


@dataclass(frozen=True)
class CheckResult:
    """One line of the checklist: what was checked, how it went, and the fix.

    ``status`` is ``ok``, ``warn``, ``fail`` or ``skip`` (not applicable: no canary
    configured, no channels); ``check`` is a stable identifier scripts can match on.

    Not a :class:`mxflip.plan.Finding`: a finding is a reason to block or warn about an
    operation (severity, code, overridable); a check result is one line of a checklist,
    passed ones included, with a title and a fix for a person. Provider access checks
    (:class:`mxflip.provider.AccessCheck`) are turned into these, never the other way.
    """

    check: str
    status: str
    title: str
    detail: str
    fix: str | None = None


@dataclass
class DoctorContext:
    """What every check may use: the loaded configuration, providers (built once, or
    injected by tests), the options."""

    config_path: str | None
    config: Config | None = None
    test_notify: bool = False
    dns_timeout: float = 3.0
    providers: dict[str, Provider] = field(default_factory=dict)
    provider_errors: dict[str, MxflipError] = field(default_factory=dict)

    def provider(self, name: str) -> Provider:
        """The provider ``name``, built on first use; its build error is kept and re-raised."""
        from mxflip.observe import build_provider

        if name in self.provider_errors:
            raise self.provider_errors[name]
        if name not in self.providers:
            assert self.config is not None
            try:
                self.providers[name] = build_provider(self.config, name)
            except MxflipError as exc:
                self.provider_errors[name] = exc
                raise
        return self.providers[name]

    def close(self) -> None:
        for provider in self.providers.values():
            provider.close()


#: A check: a plain function, or a coroutine function when it waits on the network
#: concurrently (nameservers, readiness). Doctor runs the checks one after another on the
#: command's loop, so a synchronous check blocking it costs nothing.
Check = Callable[[DoctorContext], list[CheckResult] | Awaitable[list[CheckResult]]]


@dataclass(frozen=True)
class DoctorReport:
    results: tuple[CheckResult, ...]

    @property
    def exit_code(self) -> ExitCode:
        statuses = {r.status for r in self.results}
        if FAIL in statuses:
            return ExitCode.FAILURE
        if WARN in statuses:
            return ExitCode.ATTENTION
        return ExitCode.OK

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


# ------------------------------------------------------------------------ checks


def check_config(ctx: DoctorContext) -> list[CheckResult]:
    try:
        ctx.config = load_config(ctx.config_path)
    except MxflipError as exc:
        return [
            CheckResult(
                "config",
                FAIL,
                "configuration",
                exc.message,
                exc.hint or "fix the key named above (`mxflip validate` shows the same)",
            )
        ]
    config = ctx.config
    return [
        CheckResult(
            "config",
            OK,
            "configuration",
            f"{config.path}: {_count(len(config.domains), 'domain')}, "
            f"{_count(len(config.providers), 'provider')}",
        )
    ]


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _zones(config: Config) -> list[tuple[str, str]]:
    return sorted({(d.provider, d.zone) for d in config.domains.values()})


def _access_result(name: str, check: AccessCheck) -> CheckResult:
    status = {True: OK, None: WARN, False: FAIL}[check.ok]
    zone = check.zone.rstrip(".")
    if check.what == "clock":
        return CheckResult(
            "tsig-clock", status, f"TSIG clock (provider {name})", check.detail, check.hint
        )
    what = {"read": "read", "change": "change records", "token": "API token"}.get(
        check.what, check.what
    )
    return CheckResult(
        "provider", status, f"provider {name}: {what} in {zone}", check.detail, check.hint
    )


async def check_providers(ctx: DoctorContext) -> list[CheckResult]:
    assert ctx.config is not None
    results = []
    used = {d.provider for d in ctx.config.domains.values()}
    for name in sorted(set(ctx.config.providers) - used):
        results.append(CheckResult("provider", SKIP, f"provider {name}", "not used by any domain"))
    for name, zone in _zones(ctx.config):
        try:
            # The adapter's SDK blocks (HTTP, its own retries): in a thread, as the
            # engine's provider calls are, so Ctrl-C still lands between calls.
            checks = await asyncio.to_thread(_check_access, ctx, name, zone)
        except MxflipError as exc:
            results.append(
                CheckResult(
                    "provider",
                    FAIL,
                    f"provider {name}: reach {zone.rstrip('.')}",
                    exc.message,
                    exc.hint or f"check the settings of [providers.{name}]",
                )
            )
            continue
        results += [_access_result(name, c) for c in checks]
    return results


def _check_access(ctx: DoctorContext, name: str, zone: str) -> list[AccessCheck]:
    return list(ctx.provider(name).check_access(zone))


async def check_nameservers(ctx: DoctorContext) -> list[CheckResult]:
    from mxflip.dnsview import query_batch
    from mxflip.observe import Observer

    assert ctx.config is not None
    domains = list(ctx.config.domains.values())
    for name in {d.provider for d in domains if not d.nameservers}:
        # Built here, so that the context closes it; a build error is reported per domain.
        with contextlib.suppress(MxflipError):
            ctx.provider(name)
    observer = Observer(ctx.config, dns_timeout=ctx.dns_timeout, providers=ctx.providers)
    servers = [observer.verification_servers(d) for d in domains]
    answers = await query_batch(
        [(ns, d.name) for d, (ns, _) in zip(domains, servers, strict=True)],
        recursive=False,
        timeout=ctx.dns_timeout,
    )
    results = []
    for d, (_, error), found in zip(domains, servers, answers, strict=True):
        title = f"nameservers of {d.display}"
        if error is not None:
            results.append(
                CheckResult(
                    "nameserver",
                    FAIL,
                    title,
                    error,
                    f"set nameservers for {d.display} in the configuration",
                )
            )
            continue
        bad = [a for a in found if a.error]
        if bad:
            shown = "; ".join(
                f"{a.server}{f' ({a.address})' if a.address else ''}: {a.error}" for a in bad
            )
            results.append(
                CheckResult(
                    "nameserver",
                    FAIL,
                    title,
                    shown,
                    f"check that {', '.join(sorted({a.server for a in bad}))} runs and serves "
                    f"zone {d.zone.rstrip('.')} authoritatively, or correct nameservers for "
                    f"{d.display}",
                )
            )
        else:
            results.append(
                CheckResult(
                    "nameserver",
                    OK,
                    title,
                    f"{len(found)} answer{'s' if len(found) != 1 else ''} authoritatively",
                )
            )
    return results


async def check_readiness(ctx: DoctorContext) -> list[CheckResult]:
    from mxflip.probe import Verdict
    from mxflip.readiness import check_domains

    assert ctx.config is not None
    domains = list(ctx.config.domains.values())
    results = []
    for profile in ("primary", "backup"):
        verdicts = await check_domains(ctx.config, domains, profile)
        by: dict[Verdict, list[str]] = {}
        for r in verdicts:
            by.setdefault(r.verdict, []).append(r.display)
        parts = [
            f"{len(by[v])} {v.value}" + (f" ({', '.join(by[v][:3])})" if v != Verdict.READY else "")
            for v in (Verdict.READY, Verdict.DEGRADED, Verdict.NOT_READY)
            if v in by
        ]
        worst = Verdict.worst(r.verdict for r in verdicts)
        status = {Verdict.READY: OK, Verdict.DEGRADED: WARN, Verdict.NOT_READY: FAIL}[worst]
        fix = None if status == OK else f"run `mxflip check --profile {profile}` for the details"
        results.append(
            CheckResult(
                "readiness", status, f"SMTP readiness of the {profile} sets", ", ".join(parts), fix
            )
        )
    return results


def check_canary(ctx: DoctorContext) -> list[CheckResult]:
    from mxflip.canary.mailbox import open_mailbox

    assert ctx.config is not None
    canary = ctx.config.canary
    if canary is None:
        return [CheckResult("canary", SKIP, "canary mailbox", "no [canary] table configured")]
    where = (
        f"IMAP {canary.imap_host}:{canary.imap_port}, folder {canary.imap_folder}"
        if canary.mailbox == "imap"
        else f"Maildir {canary.maildir}"
    )
    try:
        mailbox = open_mailbox(ctx.config)
        try:
            # A read: log in, select the folder, search for canaries (nothing is changed).
            waiting = len(mailbox.find())
        finally:
            mailbox.close()
    except MxflipError as exc:
        return [CheckResult("canary", FAIL, f"canary mailbox ({where})", exc.message, exc.hint)]
    return [
        CheckResult(
            "canary",
            OK,
            f"canary mailbox ({where})",
            f"logged in and the folder is readable ({waiting} canaries in it)",
        )
    ]


def _writable(folder: Path) -> None:
    """Create ``folder`` if needed and a file in it (removed again); OSError if not."""
    from mxflip.files import check_writable

    folder.mkdir(parents=True, exist_ok=True)
    # The journal's lock and the canary state are created and renamed there.
    check_writable(folder)


def check_shared_state(ctx: DoctorContext) -> list[CheckResult]:
    """``[state] backend = "s3"``: the journal can be read and the shared lock taken (and
    released), which is what every changing command does first."""
    from mxflip.journal import LockedError
    from mxflip.state import open_state

    assert ctx.config is not None
    state = ctx.config.state
    title = f"shared state s3://{state.bucket}/{state.prefix}"
    try:
        backend = open_state(ctx.config)
        try:
            backend.read()
            with backend.lock("mxflip doctor"):
                pass
        finally:
            backend.close()
    except LockedError as exc:
        return [CheckResult("state", WARN, title, exc.message, exc.hint)]
    except MxflipError as exc:
        return [
            CheckResult(
                "state",
                FAIL,
                title,
                exc.message,
                exc.hint or "check the [state] table and the credentials' S3 permissions",
            )
        ]
    return [CheckResult("state", OK, title, "the journal reads, and the shared lock can be taken")]


def check_state(ctx: DoctorContext) -> list[CheckResult]:
    from mxflip.journal import Journal, LockedError, default_journal_path

    assert ctx.config is not None
    if ctx.config.state.backend != "local":
        return check_shared_state(ctx)
    path = default_journal_path(ctx.config.journal.path)
    folder = path.parent
    title = f"state directory {folder}"
    user = getpass.getuser()
    fix = (
        f"make {folder} writable by {user}, or point [journal] path "
        "(or $MXFLIP_JOURNAL) at a writable place"
    )
    results = []
    try:
        _writable(folder)
        with Journal(path).lock("mxflip doctor"):
            pass
    except LockedError as exc:
        results.append(CheckResult("state", WARN, title, exc.message, exc.hint))
    except (OSError, MxflipError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        results.append(CheckResult("state", FAIL, title, f"not writable: {reason}", fix))
    else:
        results.append(
            CheckResult("state", OK, title, "writable, and the operation lock can be taken")
        )
    if ctx.config.canary is not None:
        from mxflip.canary.state import state_file

        canary_folder = state_file(ctx.config).parent
        if canary_folder.resolve() != folder.resolve():
            ctitle = f"canary state directory {canary_folder}"
            try:
                _writable(canary_folder)
            except OSError as exc:
                results.append(
                    CheckResult(
                        "state",
                        FAIL,
                        ctitle,
                        f"not writable: {exc.strerror or exc}",
                        f"make {canary_folder} writable by {user}, or set [canary] state_file",
                    )
                )
            else:
                results.append(CheckResult("state", OK, ctitle, "writable"))
    return results


def notification_channels(config: Config) -> Sequence[Any]:
    """The configured notification channels (``[watch] notify`` and ``notify_env``'s)."""
    return tuple(config.watch.notify_urls()) if config.watch is not None else ()


def check_notify(ctx: DoctorContext) -> list[CheckResult]:
    assert ctx.config is not None
    channels = notification_channels(ctx.config)
    beat = ctx.config.watch.heartbeat() if ctx.config.watch is not None else None
    if not channels and not beat:
        return [
            CheckResult(
                "notify",
                SKIP,
                "notification channels",
                "no notification channels are configured ([watch] notify)"
                + ("; nothing to test" if ctx.test_notify else ""),
            )
        ]
    from dataclasses import replace

    from mxflip.watch.alerts import check_channel, send_test_notification
    from mxflip.watch.config import scheme

    watch = ctx.config.watch
    assert watch is not None
    timeout = min(watch.timeout, 10.0)
    results = []
    for index, url in enumerate(channels, 1):
        title = f"notification channel {index} ({scheme(url)})"
        error = check_channel(url, timeout)
        if error is None and ctx.test_notify:
            # One channel at a time, so that each result belongs to one line.
            deliveries = send_test_notification(
                replace(watch, notify=(url,), notify_env=None, timeout=timeout)
            )
            failed = [d for d in deliveries if not d.ok]
            if failed or not deliveries:
                why = failed[0].error if failed else None
                error = f"the test message failed: {why or 'not accepted'}"
        if error is not None:
            results.append(
                CheckResult(
                    "notify",
                    FAIL,
                    title,
                    error,
                    "check the URL in [watch] notify (or notify_env) and that the service "
                    "is up: alerts through this channel would be lost",
                )
            )
        else:
            results.append(
                CheckResult(
                    "notify",
                    OK,
                    title,
                    "a test message went through"
                    if ctx.test_notify
                    else "reachable (not tested: --test-notify sends a message)",
                )
            )
    if beat:
        title = f"heartbeat ({scheme(beat)})"
        error = check_channel(beat, timeout, apprise_url=False)
        results.append(
            CheckResult("notify", OK, title, "reachable (not requested)")
            if error is None
            else CheckResult(
                "notify",
                FAIL,
                title,
                error,
                "check [watch] heartbeat_url (or heartbeat_url_env) and the service",
            )
        )
    return results


#: Every check, in the order of the checklist. Each needs the configuration loaded by
#: ``check_config``; when that fails, the others are not run.
CHECKS: list[Check] = [
    check_config,
    check_providers,
    check_nameservers,
    check_readiness,
    check_canary,
    check_state,
    check_notify,
]


async def run_doctor(
    config_path: str | None,
    *,
    test_notify: bool = False,
    checks: Iterable[Check] | None = None,
    providers: Mapping[str, Provider] | None = None,
    dns_timeout: float = 3.0,
) -> DoctorReport:
    """Run ``checks`` (default :data:`CHECKS`) in order and collect their results."""
    ctx = DoctorContext(
        config_path,
        test_notify=test_notify,
        dns_timeout=dns_timeout,
        providers=dict(providers or {}),
    )
    results: list[CheckResult] = []
    try:
        for check in checks if checks is not None else CHECKS:
            if check is not check_config and ctx.config is None:
                if not results:
                    results += check_config(ctx)
                if ctx.config is None:
                    break
            # A turn of the loop before each check: Ctrl-C (or SIGTERM) during a
            # synchronous check cancels this task, and the cancellation lands here, so no
            # further check runs (nor sends a --test-notify message), as before.
            await asyncio.sleep(0)
            try:
                found = check(ctx)
                results += await found if inspect.isawaitable(found) else found
            except MxflipError as exc:
                name = check.__name__.removeprefix("check_")
                results.append(CheckResult(name, FAIL, name, exc.message, exc.hint))
            except Exception as exc:  # one broken check must not hide the others' results
                name = check.__name__.removeprefix("check_")
                _log.debug("check %s failed", name, exc_info=True)
                results.append(
                    CheckResult(
                        name,
                        FAIL,
                        name,
                        f"the check itself failed: {type(exc).__name__}: {exc}",
                        "please report this to the mxflip project",
                    )
                )
    finally:
        ctx.close()
    return DoctorReport(tuple(results))
