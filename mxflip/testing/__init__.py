"""Test helpers that adapters (in this repository or elsewhere) can reuse.

``ProviderContract`` (in ``mxflip.testing.contract``) is the suite every adapter passes;
``MemoryProvider`` is an in-memory adapter for core tests that need no DNS server; the
config loaders let an adapter's tests check its settings through the core's own loader.
Everything loads lazily: importing ``mxflip.testing`` costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mxflip._lazy import lazy_exports

_EXPORTS = {
    "MemoryProvider": "mxflip.testing.memory",
    "MemorySettings": "mxflip.testing.memory",
    "MemoryStore": "mxflip.testing.memory",
    "register_memory_provider": "mxflip.testing.memory",
    "load_config": "mxflip.config",
    "parse_config": "mxflip.config",
    "load_provider_class": "mxflip.provider",
}

__all__ = [
    "MemoryProvider",
    "MemorySettings",
    "MemoryStore",
    "load_config",
    "load_provider_class",
    "parse_config",
    "register_memory_provider",
]

if TYPE_CHECKING:
    from mxflip.config import load_config as load_config
    from mxflip.config import parse_config as parse_config
    from mxflip.provider import load_provider_class as load_provider_class
    from mxflip.testing.memory import MemoryProvider as MemoryProvider
    from mxflip.testing.memory import MemorySettings as MemorySettings
    from mxflip.testing.memory import MemoryStore as MemoryStore
    from mxflip.testing.memory import register_memory_provider as register_memory_provider


__getattr__ = lazy_exports(__name__, _EXPORTS)
