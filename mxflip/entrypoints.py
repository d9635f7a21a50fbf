"""Which provider adapters are installed: the ``mxflip.providers`` entry points.

Read straight from the installed distributions' metadata files (``entry_points.txt``,
``METADATA``) on ``sys.path``, the way ``importlib.metadata`` finds them (first
distribution of a name wins), without importing it: ``importlib.metadata`` pulls in the
email package and costs more than the rest of ``mxflip providers`` together. Nothing here
imports an adapter; :meth:`InstalledProvider.load` does, when a configuration names it.
"""

from __future__ import annotations

import builtins
import importlib
import os
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mxflip.provider import Provider

ENTRY_POINT_GROUP = "mxflip.providers"
#: Where pydantic looks for its plugins (``pydantic.plugin._loader``).
PYDANTIC_GROUP = "pydantic"


@dataclass(frozen=True)
class InstalledProvider:
    """An adapter found through the ``mxflip.providers`` entry points."""

    type: str
    target: str
    distribution: str | None
    version: str | None

    def load(self) -> builtins.type[Provider]:
        from mxflip.errors import ConfigError
        from mxflip.provider import Provider

        module_name, _, attribute = self.target.partition(":")
        obj: object = importlib.import_module(module_name.strip())
        for part in filter(None, attribute.strip().split(".")):
            obj = getattr(obj, part)
        if not (isinstance(obj, type) and issubclass(obj, Provider)):
            raise ConfigError(
                f"provider type {self.type!r} ({self.target}) is not an mxflip Provider"
            )
        return obj


def installed_providers() -> dict[str, InstalledProvider]:
    """Every adapter registered in the ``mxflip.providers`` entry-point group, by type
    (the first distribution on ``sys.path`` that registers a type wins)."""
    found: dict[str, InstalledProvider] = {}
    for folder, group in _entry_points(ENTRY_POINT_GROUP):
        if group:
            # Only the few adapters' METADATA is read, not every distribution's.
            name, version = _name_and_version(folder)
            for ep_name, target in group:
                found.setdefault(ep_name, InstalledProvider(ep_name, target, name, version))
    return found


def skip_pydantic_plugin_scan() -> None:
    """Tell pydantic that no pydantic plugin is installed, when none is.

    The first model pydantic builds imports ``importlib.metadata`` and reads every
    installed distribution's entry points to find plugins (the ``pydantic`` group): about
    a third of ``mxflip validate``'s start-up beyond click. When that group is empty, which
    the scan here answers without ``importlib.metadata``, pydantic's loader module is
    given its answer for "no plugins" (an empty ``get_plugins()``, what the real one
    returns then, as it does when ``PYDANTIC_DISABLE_PLUGINS`` disables them all), so
    validators are built exactly as they would be. With a plugin installed and enabled,
    or the loader already imported, nothing changes and pydantic finds it.
    """
    name = "pydantic.plugin._loader"
    if name in sys.modules:
        return
    disabled = os.environ.get("PYDANTIC_DISABLE_PLUGINS") in ("__all__", "1", "true")
    if not disabled and any(group for _, group in _entry_points(PYDANTIC_GROUP)):
        return
    loader = types.ModuleType(name, "No pydantic plugins are installed (mxflip.entrypoints).")
    loader.get_plugins = _no_plugins  # type: ignore[attr-defined]
    sys.modules[name] = loader


def _no_plugins() -> tuple[()]:
    return ()


def _entry_points(group_name: str) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """Each distribution's metadata folder with its entries of ``group_name`` (the first
    distribution of a name on ``sys.path`` only)."""
    for folder, text in _entry_point_files():
        yield folder, _group(text, group_name)


#: The last scan, keyed by ``sys.path`` and its folders' modification times: a command
#: asks twice (adapters, pydantic plugins) and pays once; a distribution installed or
#: removed since (a new or deleted ``*.dist-info`` folder) is seen at the next ask.
_last_scan: tuple[object, list[tuple[str, str]]] | None = None


def _entry_point_files() -> list[tuple[str, str]]:
    """``(metadata folder, entry_points.txt text)`` of each distribution, the first of a
    name on ``sys.path`` only."""
    global _last_scan
    key = tuple((entry, _mtime(entry or ".")) for entry in sys.path)
    if _last_scan is not None and _last_scan[0] == key:
        return _last_scan[1]
    files: list[tuple[str, str]] = []
    seen: set[str] = set()
    for folder in _metadata_folders():
        name = _normalize(os.path.basename(folder))
        if name in seen:
            continue
        seen.add(name)
        files.append((folder, _read(os.path.join(folder, "entry_points.txt"))))
    _last_scan = (key, files)
    return files


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return ""


_METADATA = (".dist-info", ".egg-info")


def _metadata_folders() -> list[str]:
    folders: list[str] = []
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as listing:
                names = sorted(e.name for e in listing if e.name.endswith(_METADATA))
        except OSError:
            continue  # a zip file or a missing folder
        folders.extend(os.path.join(entry or ".", name) for name in names)
    return folders


def _group(text: str, group_name: str) -> list[tuple[str, str]]:
    """``name = target`` lines of the ``[group_name]`` section of an entry_points.txt."""
    out: list[tuple[str, str]] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            inside = line == f"[{group_name}]"
        elif inside and "=" in line and not line.startswith(("#", ";")):
            name, _, target = line.partition("=")
            out.append((name.strip(), target.strip()))
    return out


def _name_and_version(folder: str) -> tuple[str | None, str | None]:
    """``Name`` and ``Version`` from the distribution's METADATA (PKG-INFO for eggs)."""
    fields: dict[str, str] = {}
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, filename), encoding="utf-8") as fh:
                for line in fh:
                    if not line.strip():
                        break  # the headers end at the first empty line
                    key, sep, value = line.partition(":")
                    if sep and key in ("Name", "Version"):
                        fields.setdefault(key, value.strip())
        except OSError:
            continue
        break
    return fields.get("Name"), fields.get("Version")


def _normalize(folder_name: str) -> str:
    """The PEP 503 normalized distribution name of a ``name-version.dist-info`` folder."""
    name = folder_name.rsplit(".", 1)[0].split("-", 1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()
