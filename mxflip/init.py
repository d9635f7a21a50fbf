"""``mxflip init``: read the live MX RRsets from one provider and propose a configuration.

The person writes only the ``[providers.NAME]`` table; :func:`discover` asks that provider
for its zones and every MX RRset in them (the optional ``list_zones`` / ``list_mx``
capability; adapters without it read the domains named with ``--domain`` one by one), and
groups identical live sets. :mod:`mxflip.render.init` turns the result into the commented
TOML; :func:`write_config` writes it (keeping a ``.bak`` of a file it rewrites).
"""

from __future__ import annotations

import logging
import re
import shutil
import tomllib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mxflip.config import PLACEHOLDER_BACKUP, ProviderConfig, _parse_providers, find_config
from mxflip.errors import ConfigError, NotSupportedError, UsageError
from mxflip.provider import Provider, load_provider_class
from mxflip.records import MX, RRset, normalize_name

_log = logging.getLogger(__name__)

#: Inbound mail filters recognised by their MX host names: a set that points there is
#: the proxy in front of the domain's own server.
INBOUND_FILTERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Mimecast", ("mimecast.com.", "mimecast-offshore.com.", "mimecast.co.za.")),
    ("Proofpoint", ("pphosted.com.", "ppe-hosted.com.", "proofpoint.com.")),
    ("Barracuda", ("barracudanetworks.com.", "barracuda.com.")),
    ("Microsoft 365 EOP", ("mail.protection.outlook.com.", "mail.eo.outlook.com.")),
    ("Google", ("google.com.", "googlemail.com.")),
)

#: The line that starts what init writes; a later init replaces everything after it.
MARKER = "# ==== written by mxflip init"


@dataclass(frozen=True)
class LiveSet:
    """Identical live MX sets, shared by ``domains``; becomes one ``[sets]`` entry.

    ``records`` are the config's strings (``"10 mail.{domain}"`` when the domains' sets
    are the same but for their own name), sorted by preference."""

    name: str
    records: tuple[str, ...]
    domains: tuple[str, ...]
    #: The inbound filter the hosts belong to (``Mimecast`` …), if one is recognised.
    filter: str | None


@dataclass(frozen=True)
class FoundDomain:
    """A name with an MX RRset, in its zone."""

    name: str
    zone: str
    rrset: RRset
    set_name: str


@dataclass(frozen=True)
class InitResult:
    """What init found: the kept text of the source file and the proposed domains."""

    provider: ProviderConfig
    source: Path
    kept_text: str
    zones: tuple[str, ...]
    sets: tuple[LiveSet, ...]
    domains: tuple[FoundDomain, ...]
    #: The ``--backup`` records (or the source's own backup set), None for the placeholder.
    backup: tuple[str, ...] | None
    #: (name, why) of names that are not proposed (no MX, null MX, wildcard).
    skipped: tuple[tuple[str, str], ...]
    #: Whether ``list_mx`` could not be used and named domains were read one by one.
    read_by_name: bool
    #: Where ``backup`` came from: ``--backup``, or the source's ``[defaults] backup``.
    backup_source: str = "--backup"
    #: The source's own ``[sets]`` entries (other names than init's), written back as
    #: they were so that whatever names them still finds them.
    kept_sets: tuple[tuple[str, tuple[str, ...]], ...] = ()


def filter_of(records: frozenset[MX]) -> str | None:
    """The well-known inbound filter every host of ``records`` belongs to, if any."""
    for label, suffixes in INBOUND_FILTERS:
        if records and all(
            any(mx.host == s or mx.host.endswith("." + s) for s in suffixes) for mx in records
        ):
            return label
    return None


def parse_backup(records: Sequence[str]) -> tuple[str, ...]:
    """Check ``--backup`` records (``{domain}`` allowed); UsageError on a bad one."""
    for text in records:
        try:
            MX.parse(text.replace("{domain}", "example.com"))
        except ValueError as exc:
            raise UsageError(f"--backup {text!r}: {exc}") from None
    return tuple(records)


def read_source(
    config_path: str | None,
) -> tuple[Path, str, dict[str, Any], dict[str, ProviderConfig]]:
    """The config file, its text, its TOML and its validated provider tables (domains
    not needed)."""
    path = find_config(config_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "configuration file not found",
            path=str(path),
            hint="write the [providers.NAME] table first, for example "
            '[providers.cf] with type = "cloudflare"',
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=str(path)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax error: {exc}", path=str(path)) from None
    table = raw.get("providers")
    if not isinstance(table, dict) or not table:
        raise ConfigError(
            "no [providers.NAME] table",
            path=str(path),
            key="providers",
            hint="init reads the live records through a provider: write its table first",
        )
    providers = _parse_providers(table, str(path), path.resolve().parent)
    return path, text, raw, providers


_GENERATED_SET = re.compile(r"^(primary(_[0-9]+)?|backup)$")


def own_sets(raw: dict[str, Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The source's ``[sets]`` entries that init does not write itself."""
    sets = raw.get("sets")
    if not isinstance(sets, dict):
        return ()
    return tuple(
        (name, tuple(value))
        for name, value in sets.items()
        if not _GENERATED_SET.match(name)
        and isinstance(value, list)
        and all(isinstance(v, str) for v in value)
    )


def existing_backup(raw: dict[str, Any]) -> tuple[tuple[str, ...], str] | None:
    """The backup set the source already has: ``[defaults] backup`` (records, or the name
    of a ``[sets]`` entry), else a ``[sets] backup`` entry; and where it comes from. None
    when there is none, when it is init's placeholder, or when it is not usable records."""
    defaults = raw.get("defaults")
    found_sets = raw.get("sets")
    sets: dict[str, Any] = found_sets if isinstance(found_sets, dict) else {}
    value = defaults.get("backup") if isinstance(defaults, dict) else None
    where = "[defaults] backup"
    if isinstance(value, str):
        where = f"[sets] {value}, which [defaults] backup names"
        value = sets.get(value)
    elif value is None:
        where = "[sets] backup"
        value = sets.get("backup")
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        return None
    if value == [PLACEHOLDER_BACKUP]:
        return None
    try:
        return parse_backup(value), where
    except UsageError:
        return None


def kept_text(text: str) -> str:
    """The source text without what init writes: a previous init's part (from
    :data:`MARKER` on) and any ``[sets]`` and ``[domains…]`` tables."""
    text = text.split(MARKER, 1)[0]
    out: list[str] = []
    dropping = False
    header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_-]+|\"[^\"]*\")")
    for line in text.splitlines():
        found = header.match(line)
        if found:
            dropping = found.group(1).strip('"') in ("sets", "domains")
        if not dropping:
            out.append(line)
    return "\n".join(out).rstrip() + "\n"


def _zone_for(domain: str, zones: Sequence[str]) -> str | None:
    inside = [z for z in zones if domain == z or domain.endswith("." + z)]
    return max(inside, key=len) if inside else None


def discover(
    config_path: str | None,
    provider_name: str,
    zones: Sequence[str] = (),
    domains: Sequence[str] = (),
    backup: Sequence[str] = (),
    *,
    provider: Provider | None = None,
) -> InitResult:
    """Read the live MX RRsets of ``provider_name`` and group them into a proposal."""
    path, text, raw, providers = read_source(config_path)
    if provider_name not in providers:
        known = ", ".join(sorted(providers))
        raise UsageError(f"--provider {provider_name!r} is not configured in {path} ({known})")
    pconf = providers[provider_name]
    backup_records = parse_backup(backup) if backup else None
    backup_source = "--backup"
    if not backup and (found_backup := existing_backup(raw)) is not None:
        backup_records, backup_source = found_backup
    try:
        wanted_zones = [normalize_name(z) for z in zones]
        wanted = [normalize_name(d) for d in domains]
    except ValueError as exc:
        raise UsageError(f"not a domain name: {exc}") from None
    own = provider is None
    if provider is None:
        provider = load_provider_class(pconf.type).from_settings(provider_name, pconf.settings)
    try:
        by_zone, zone_list = _assign_zones(provider, wanted_zones, wanted)
        found: list[RRset] = []
        zone_of: dict[str, str] = {}
        read_by_name = False
        skipped: list[tuple[str, str]] = []
        read_zones: list[str] = []
        for zone in zone_list:
            names = by_zone.get(zone, [])
            if wanted and not names:
                continue
            read_zones.append(zone)
            rrsets, by_name = _read_zone(provider, zone, names)
            read_by_name = read_by_name or by_name
            skipped += [
                (n, "has no MX records") for n in names if n not in {r.name for r in rrsets}
            ]
            for rrset in rrsets:
                reason = _unusable(rrset)
                if reason:
                    skipped.append((rrset.name, reason))
                    continue
                found.append(rrset)
                zone_of[rrset.name] = zone
    finally:
        if own:
            provider.close()
    if not found:
        where = ", ".join(z.rstrip(".") for z in read_zones) or "no zones"
        raise UsageError(
            f"provider {provider_name!r} has no usable MX records in {where}; nothing written"
        )
    sets, set_of = _group(found)
    return InitResult(
        provider=pconf,
        source=path,
        kept_text=kept_text(text),
        zones=tuple(read_zones),
        sets=sets,
        domains=tuple(
            FoundDomain(r.name, zone_of[r.name], r, set_of[r.name])
            for r in sorted(found, key=lambda r: r.name)
        ),
        backup=backup_records,
        backup_source=backup_source,
        kept_sets=own_sets(raw),
        skipped=tuple(sorted(skipped)),
        read_by_name=read_by_name,
    )


def _assign_zones(
    provider: Provider, zones: list[str], domains: Sequence[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """The zones to read (sorted) and the named domains of each. Zones are ``--zone``, or
    what the provider lists; a named domain belongs to the deepest zone holding it. When
    the provider cannot list zones and none is named, a domain is its own zone's apex."""
    listed = bool(zones)
    if not zones:
        try:
            zones = provider.list_zones()
            listed = True
        except NotSupportedError:
            if not domains:
                raise
    by_zone: dict[str, list[str]] = defaultdict(list)
    for name in domains:
        zone = _zone_for(name, zones)
        if zone is None:
            if listed:
                raise UsageError(
                    f"--domain {name.rstrip('.')} is in none of the zones "
                    f"{', '.join(z.rstrip('.') for z in zones) or '(none)'}"
                )
            zone = name
            zones = [*zones, zone]
        by_zone[zone].append(name)
    return by_zone, sorted(set(zones))


def _read_zone(provider: Provider, zone: str, names: list[str]) -> tuple[list[RRset], bool]:
    """Every MX RRset of ``zone`` (only ``names`` when given), and whether it had to be
    read name by name because the provider cannot list the zone."""
    try:
        rrsets = list(provider.list_mx(zone).rrsets)
    except NotSupportedError as exc:
        if not names:
            raise
        _log.info("%s; reading the named domains one by one", exc.message)
        live = provider.read(zone, names)
        return [r for r in live.values() if r is not None], True
    return ([r for r in rrsets if r.name in names] if names else rrsets), False


def _unusable(rrset: RRset) -> str | None:
    if rrset.name.startswith("*."):
        return "is a wildcard; mxflip manages named domains"
    if any(mx.host == "." for mx in rrset.records):
        return "has a null MX (RFC 7505): it accepts no mail"
    return None


def _config_strings(rrset: RRset, *, template: bool) -> tuple[str, ...]:
    """The records as config strings; with ``template``, the domain's own name in a host
    becomes ``{domain}`` (``mail.shop.test`` of shop.test → ``mail.{domain}``)."""
    domain = rrset.name.rstrip(".")
    out = []
    for mx in rrset.records:
        host = mx.host.rstrip(".")
        if template and host.endswith("." + domain):
            host = host[: -len(domain)] + "{domain}"
        out.append((mx.preference, host))
    # Sorted after templating, so that sets of different domains compare equal.
    return tuple(f"{pref} {host}" for pref, host in sorted(out))


def _group(found: Sequence[RRset]) -> tuple[tuple[LiveSet, ...], dict[str, str]]:
    """Identical record sets (whatever their TTLs) become one named set: the most used is
    ``primary``, the others ``primary_2``, ``primary_3`` … Sets that differ only by each
    domain's own name (``mail.shop.test``, ``mail.shop.example``) share one ``{domain}``
    set when no identical set holds them already."""
    exact: dict[tuple[str, ...], list[RRset]] = defaultdict(list)
    for rrset in found:
        exact[_config_strings(rrset, template=False)].append(rrset)
    grouped: dict[tuple[str, ...], list[RRset]] = defaultdict(list)
    for key, members in exact.items():
        if len(members) == 1:
            key = _config_strings(members[0], template=True)
        grouped[key] += members
    for key in [k for k, v in grouped.items() if len(v) == 1]:
        # A {domain} set used by one domain reads better spelled out.
        (only,) = grouped.pop(key)
        grouped[_config_strings(only, template=False)].append(only)
    ordered = sorted(grouped.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    sets = []
    set_of: dict[str, str] = {}
    for i, (records, members) in enumerate(ordered, start=1):
        name = "primary" if i == 1 else f"primary_{i}"
        names = tuple(sorted(r.name for r in members))
        sets.append(LiveSet(name, records, names, filter_of(members[0].records)))
        for n in names:
            set_of[n] = name
    return tuple(sets), set_of


def ensure_toml(text: str, source: Path) -> None:
    """Refuse to write a file that would not parse (the source spells ``sets`` or
    ``domains`` in a way init cannot replace, such as an inline table)."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"cannot merge the new tables into {source}: {exc}; nothing written",
            hint="write [sets] and [domains.NAME] as tables there, or use -o FILE",
        ) from None


def write_config(path: Path, text: str, *, overwrite: bool, keep_backup: bool) -> Path | None:
    """Write ``text`` to ``path`` atomically; returns the ``.bak`` copy when one was kept.

    Refuses to replace an existing file unless ``overwrite``.
    """
    from mxflip.files import atomic_write

    if path.exists() and not overwrite:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    bak = None
    try:
        if keep_backup and path.exists():
            bak = path.with_name(path.name + ".bak")
            shutil.copy2(path, bak)
        atomic_write(path, text.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return bak


__all__ = [
    "INBOUND_FILTERS",
    "MARKER",
    "PLACEHOLDER_BACKUP",
    "FoundDomain",
    "InitResult",
    "LiveSet",
    "discover",
    "filter_of",
    "kept_text",
    "write_config",
]
