"""Test helpers that adapters (in this repository or elsewhere) can reuse.

``ProviderContract`` (in ``mxflip.testing.contract``) is the suite every adapter passes;
``MemoryProvider`` is an in-memory adapter for core tests that need no DNS server; the
config loaders let an adapter's tests check its settings through the core's own loader.
Everything loads lazily: importing ``mxflip.testing`` costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "load_config": "mxflip.config",
    "parse_config": "mxflip.config",
    "load_provider_class": "mxflip.provider",
}

__all__ = ["load_config", "load_provider_class", "parse_config"]

if TYPE_CHECKING:
    from mxflip.config import load_config as load_config
    from mxflip.config import parse_config as parse_config
    from mxflip.provider import load_provider_class as load_provider_class


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mxflip.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
