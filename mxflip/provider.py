"""The provider interface every DNS adapter implements, and discovery of installed adapters.

An adapter is a separate distribution that registers a subclass of :class:`Provider` in
the entry-point group ``mxflip.providers``::

    [project.entry-points."mxflip.providers"]
    rfc2136 = "mxflip_rfc2136:RFC2136Provider"

The core never imports an adapter or its SDK directly: adapters are loaded by name, only
when a configuration uses them.

The interface is deliberately small and synchronous. Everything that is the same for all
providers (grouping by zone, diffing, deciding what to change, retries of the whole
operation) lives in the core; an adapter only reads and conditionally writes MX RRsets.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

# Discovery lives in its own light module (``mxflip providers`` must start fast);
# re-exported here, where adapters and the core have always found it.
from mxflip.entrypoints import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
from mxflip.entrypoints import InstalledProvider as InstalledProvider
from mxflip.entrypoints import installed_providers as installed_providers
from mxflip.errors import ConfigError, NotSupportedError, StaleExpectationError
from mxflip.records import RRset


class ProviderSettings(BaseModel):
    """Base of each adapter's settings model (the ``[providers.NAME]`` table minus ``type``).

    Unknown keys are refused so that a typo never silently falls back to a default.
    Validators can read ``info.context["base_dir"]`` (the config file's folder) to resolve
    relative paths.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


@dataclass(frozen=True)
class Change:
    """One conditional change of one owner name's MX RRset.

    ``expected`` is the RRset the plan saw (``None``: the name had no MX RRset); ``new``
    is what it must become (``None``: delete the MX RRset). A provider must refuse the
    whole batch with :class:`~mxflip.errors.StaleExpectationError` when the live records
    differ from ``expected``.
    """

    name: str
    expected: RRset | None
    new: RRset | None

    def __post_init__(self) -> None:
        for rrset in (self.expected, self.new):
            if rrset is not None and rrset.name != self.name:
                raise ValueError(f"RRset {rrset.name} does not belong to change of {self.name}")
            if rrset is not None and not rrset.records:
                raise ValueError(f"an empty RRset is not a valid state for {self.name}; use None")

    @property
    def is_noop(self) -> bool:
        return self.expected == self.new


@dataclass(frozen=True)
class ChangeHandle:
    """What :meth:`Provider.apply` returns and :meth:`Provider.wait` takes.

    ``id`` is the provider's own change identifier where it has one (a Route53 change id);
    ``detail`` holds anything else the adapter needs to wait on it.
    """

    provider: str
    zone: str
    id: str | None = None
    changes: tuple[Change, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ZoneMX:
    """Every MX RRset of one zone, sorted by name, as :meth:`Provider.list_mx` returns it
    (one batch)."""

    zone: str
    rrsets: tuple[RRset, ...]


@dataclass(frozen=True)
class AccessCheck:
    """The outcome of one harmless check of what the credentials may do in a zone.

    ``what`` is a short label (``read``, ``change``, ``clock``); ``ok`` is True (allowed),
    False (refused: ``hint`` says how to fix it) or None (the API offers no harmless way
    to tell; ``detail`` says so).
    """

    zone: str
    what: str
    ok: bool | None
    detail: str
    hint: str | None = None


class Provider(abc.ABC):
    """A DNS provider adapter: reads and conditionally replaces MX RRsets in zones.

    Subclasses set :attr:`Settings` to their own :class:`ProviderSettings` model and
    implement :meth:`read` and :meth:`apply`; :meth:`wait` and :meth:`nameservers` have
    usable defaults. Errors are raised as :class:`~mxflip.errors.ProviderError` (or a
    subclass) with a hint a person can act on, never as SDK exceptions.
    """

    #: The adapter's settings model; the core validates the config table with it.
    Settings: ClassVar[type[ProviderSettings]] = ProviderSettings

    def __init__(self, name: str) -> None:
        #: The name of the ``[providers.NAME]`` table this instance was built from.
        self.name = name

    @classmethod
    def from_settings(cls, name: str, settings: ProviderSettings) -> Provider:
        """Build a provider from its validated settings.

        Credentials come from the ecosystem's usual places (the AWS credential chain, an
        environment variable, a key file); they are never part of the returned object's
        ``repr`` and never logged.
        """
        return cls(name)

    @classmethod
    def check_ttl(cls, settings: ProviderSettings, ttl: int) -> str | None:
        """Why this provider cannot publish an MX RRset with ``ttl`` under ``settings``
        (checked by ``mxflip validate``, before any change), or None when it can."""
        return None

    @abc.abstractmethod
    def read(self, zone: str, names: Sequence[str]) -> dict[str, RRset | None]:
        """Return the MX RRset of every name in ``names`` (absolute names inside ``zone``).

        A name with no MX RRset maps to ``None``. Implementations read the whole batch with
        as few calls as the API allows (one paginated listing per zone, not one per name).
        """

    @abc.abstractmethod
    def apply(self, zone: str, changes: Sequence[Change]) -> ChangeHandle:
        """Apply ``changes`` to ``zone`` atomically where the API allows, conditionally always.

        If any name's live MX RRset differs from its ``Change.expected`` (records or TTL
        where the API can tell), nothing is changed and
        :class:`~mxflip.errors.StaleExpectationError` is raised. A change whose ``expected``
        equals its ``new`` is a no-op. Returns a handle for :meth:`wait`.
        """

    def wait(self, handle: ChangeHandle, timeout: float) -> None:
        """Block until the provider reports the change served, or raise after ``timeout``.

        The default suits providers whose write is live when acknowledged.
        """
        return None

    def write_parts(self, zone: str, changes: Sequence[Change]) -> int:
        """How many separately atomic writes :meth:`apply` would make of ``changes``.

        The default, 1, means all or nothing. An adapter that must split a zone's changes
        (a provider's request limits, the DNS message size) says into how many parts, so
        the plan can tell that an interruption may leave some parts applied.
        """
        return 1

    def nameservers(self, zone: str) -> list[str]:
        """Where verification should ask about ``zone``, as ``host[:port]`` strings.

        The default asks the system resolver for the zone's NS records.
        """
        import dns.resolver

        from mxflip.errors import DNSQueryError

        try:
            answer = dns.resolver.resolve(zone, "NS", lifetime=5.0)
        except Exception as exc:  # dnspython raises many unrelated types here
            raise DNSQueryError(f"cannot look up the NS records of {zone}: {exc}") from exc
        return sorted(str(r.target).rstrip(".") for r in answer)

    # -------------------------------------------------- optional capabilities

    def list_zones(self) -> list[str]:
        """Every zone these credentials can read (absolute names, sorted); optional.

        Adapters that can enumerate zones (hosted zones, a token's zones, the files of a
        folder) override this. The default raises :class:`~mxflip.errors.NotSupportedError`.
        """
        raise NotSupportedError(
            f"provider {self.name!r} ({type(self).__name__}) cannot list its zones",
            hint="name the zones with --zone (and the domains with --domain)",
        )

    def list_mx(self, zone: str) -> ZoneMX:
        """Every MX RRset of ``zone``, read as one batch (a paginated listing, a zone
        transfer, a file); optional. The default raises
        :class:`~mxflip.errors.NotSupportedError`; an adapter that supports it in general
        may raise it for one zone too (a server that refuses the zone transfer)."""
        raise NotSupportedError(
            f"provider {self.name!r} ({type(self).__name__}) cannot list the MX records of a zone",
            hint="name the domains with --domain so that they are read one by one",
        )

    def check_access(self, zone: str) -> list[AccessCheck]:
        """Check, without changing anything, that the credentials may read ``zone`` and
        change its MX records; optional.

        The default reads the zone apex (proving read access) and says that the right to
        change cannot be checked without writing. Adapters override it with whatever
        harmless check their API offers (a change the server must refuse, a no-op UPDATE).
        """
        self.read(zone, [zone])
        return [
            AccessCheck(zone, "read", True, "the MX records can be read"),
            AccessCheck(
                zone,
                "change",
                None,
                f"{type(self).__name__} offers no harmless way to check the right to change "
                "records; the first drill will tell",
            ),
        ]

    def close(self) -> None:
        """Release sessions or sockets. The default does nothing."""
        return None

    def __repr__(self) -> str:
        # Never show settings: they may hold credentials.
        return f"<{type(self).__name__} {self.name!r}>"


def apply_changes(provider: Provider, zone: str, changes: Sequence[Change]) -> ChangeHandle:
    """Apply ``changes`` conditionally, treating "already done" as done.

    A provider refuses a change whose expectation is stale. When the records it finds are
    exactly the ones the changes asked for (a retried write whose first attempt landed, or
    a resumed operation), the changes are complete and nothing is refused.
    """
    try:
        return provider.apply(zone, changes)
    except StaleExpectationError:
        live = provider.read(zone, [c.name for c in changes])
        if all(live.get(c.name) == c.new for c in changes):
            return ChangeHandle(provider=provider.name, zone=zone, changes=())
        raise


def load_provider_class(type_name: str) -> type[Provider]:
    """The adapter class registered as ``type_name``; ConfigError when none is installed."""
    installed = installed_providers()
    if type_name not in installed:
        known = ", ".join(sorted(installed)) or "none"
        raise ConfigError(
            f"unknown provider type {type_name!r} (installed: {known})",
            hint=f"install the adapter, for example 'pip install mxflip-{type_name}'",
        )
    try:
        return installed[type_name].load()
    except ConfigError:
        raise
    except Exception as exc:  # an adapter that fails to import must not crash the CLI
        raise ConfigError(
            f"provider type {type_name!r} failed to load: {type(exc).__name__}: {exc}"
        ) from exc
