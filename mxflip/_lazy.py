"""Lazy re-exports (PEP 562) for the packages whose names many callers import:
``mxflip``, ``mxflip.render``, ``mxflip.testing``. A name's module loads on first use, so
``mxflip --help`` pays for neither pydantic nor rich."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` and returns its ``name``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
