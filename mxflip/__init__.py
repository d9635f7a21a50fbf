"""mxflip: an MX failover controller.

The public interface for provider adapters is re-exported here so that an adapter imports
only ``mxflip``: ``from mxflip import Provider, ProviderSettings, Change, RRset, MX, …``.
The re-exports load lazily so that ``mxflip --help`` does not pay for pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "MX": "mxflip.records",
    "RRset": "mxflip.records",
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
}

__all__ = [
    "MX",
    "AccessCheck",
    "Change",
    "ChangeHandle",
    "ConfigError",
    "MxflipError",
    "NotSupportedError",
    "Provider",
    "ProviderAuthError",
    "ProviderError",
    "ProviderSettings",
    "RRset",
    "StaleExpectationError",
    "ZoneMX",
    "__version__",
]

if TYPE_CHECKING:
    from mxflip.errors import ConfigError as ConfigError
    from mxflip.errors import MxflipError as MxflipError
    from mxflip.errors import NotSupportedError as NotSupportedError
    from mxflip.errors import ProviderAuthError as ProviderAuthError
    from mxflip.errors import ProviderError as ProviderError
    from mxflip.errors import StaleExpectationError as StaleExpectationError
    from mxflip.provider import AccessCheck as AccessCheck
    from mxflip.provider import Change as Change
    from mxflip.provider import ChangeHandle as ChangeHandle
    from mxflip.provider import Provider as Provider
    from mxflip.provider import ProviderSettings as ProviderSettings
    from mxflip.provider import ZoneMX as ZoneMX
    from mxflip.records import MX as MX
    from mxflip.records import RRset as RRset


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mxflip' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
