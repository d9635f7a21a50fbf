"""mxflip: an MX failover controller.

The public interface for provider adapters is re-exported here so that an adapter imports
only ``mxflip`` (see ``mxflip.provider``).
"""

from mxflip.errors import (
    ConfigError,
    MxflipError,
    ProviderAuthError,
    ProviderError,
    StaleExpectationError,
)
from mxflip.provider import Change, ChangeHandle, Provider, ProviderSettings
from mxflip.records import MX, RRset

__version__ = "0.1.0"

__all__ = [
    "MX",
    "Change",
    "ChangeHandle",
    "ConfigError",
    "MxflipError",
    "Provider",
    "ProviderAuthError",
    "ProviderError",
    "ProviderSettings",
    "RRset",
    "StaleExpectationError",
    "__version__",
]
