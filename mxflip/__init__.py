"""mxflip: an MX failover controller.

The public interface for provider adapters is re-exported here so that an adapter imports
only ``mxflip``: ``from mxflip import Provider, ProviderSettings, Change, RRset, MX, …``
(and its tests ``mxflip.testing``); ruff's banned-api rule refuses ``mxflip.<internal>``
imports under ``providers/``. The re-exports load lazily so that ``mxflip --help`` does
not pay for pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mxflip._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "MX": "mxflip.records",
    "RRset": "mxflip.records",
    "normalize_name": "mxflip.records",
    "HostPort": "mxflip.hostport",
    "parse_hostport": "mxflip.hostport",
    "Sleep": "mxflip.retry",
    "retrying": "mxflip.retry",
    "Clock": "mxflip.clock",
    "SystemClock": "mxflip.clock",
    "apply_changes": "mxflip.provider",
    "Change": "mxflip.provider",
    "ChangeHandle": "mxflip.provider",
    "AccessCheck": "mxflip.provider",
    "ZoneMX": "mxflip.provider",
    "NotSupportedError": "mxflip.errors",
    "Provider": "mxflip.provider",
    "ProviderSettings": "mxflip.provider",
    "ConfigError": "mxflip.errors",
    "MxflipError": "mxflip.errors",
    "ProviderAuthError": "mxflip.errors",
    "ProviderError": "mxflip.errors",
    "StaleExpectationError": "mxflip.errors",
    "LockBusy": "mxflip.files",
    "atomic_write": "mxflip.files",
    "check_writable": "mxflip.files",
    "locked": "mxflip.files",
    "register_secret": "mxflip.sanitize",
    "timed": "mxflip.logs",
    "DNSClient": "mxflip.net.dns",
    "DNSReply": "mxflip.net.dns",
    "MessageFactory": "mxflip.net.dns",
    "make_question": "mxflip.net.dns",
}

__all__ = [
    "MX",
    "AccessCheck",
    "Change",
    "ChangeHandle",
    "Clock",
    "ConfigError",
    "DNSClient",
    "DNSReply",
    "HostPort",
    "LockBusy",
    "MessageFactory",
    "MxflipError",
    "NotSupportedError",
    "Provider",
    "ProviderAuthError",
    "ProviderError",
    "ProviderSettings",
    "RRset",
    "Sleep",
    "StaleExpectationError",
    "SystemClock",
    "ZoneMX",
    "__version__",
    "apply_changes",
    "atomic_write",
    "check_writable",
    "locked",
    "make_question",
    "normalize_name",
    "parse_hostport",
    "register_secret",
    "retrying",
    "timed",
]

if TYPE_CHECKING:
    from mxflip.clock import Clock as Clock
    from mxflip.clock import SystemClock as SystemClock
    from mxflip.errors import ConfigError as ConfigError
    from mxflip.errors import MxflipError as MxflipError
    from mxflip.errors import NotSupportedError as NotSupportedError
    from mxflip.errors import ProviderAuthError as ProviderAuthError
    from mxflip.errors import ProviderError as ProviderError
    from mxflip.errors import StaleExpectationError as StaleExpectationError
    from mxflip.files import LockBusy as LockBusy
    from mxflip.files import atomic_write as atomic_write
    from mxflip.files import check_writable as check_writable
    from mxflip.files import locked as locked
    from mxflip.hostport import HostPort as HostPort
    from mxflip.hostport import parse_hostport as parse_hostport
    from mxflip.logs import timed as timed
    from mxflip.net.dns import DNSClient as DNSClient
    from mxflip.net.dns import DNSReply as DNSReply
    from mxflip.net.dns import MessageFactory as MessageFactory
    from mxflip.net.dns import make_question as make_question
    from mxflip.provider import AccessCheck as AccessCheck
    from mxflip.provider import Change as Change
    from mxflip.provider import ChangeHandle as ChangeHandle
    from mxflip.provider import Provider as Provider
    from mxflip.provider import ProviderSettings as ProviderSettings
    from mxflip.provider import ZoneMX as ZoneMX
    from mxflip.provider import apply_changes as apply_changes
    from mxflip.records import MX as MX
    from mxflip.records import RRset as RRset
    from mxflip.records import normalize_name as normalize_name
    from mxflip.retry import Sleep as Sleep
    from mxflip.retry import retrying as retrying
    from mxflip.sanitize import register_secret as register_secret


__getattr__ = lazy_exports(__name__, _EXPORTS)
