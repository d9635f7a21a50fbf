"""The commented configuration ``mxflip init`` writes, and its one-line summary."""

from __future__ import annotations

import json
from collections.abc import Iterable

from mxflip.config import PLACEHOLDER_BACKUP
from mxflip.init import MARKER, InitResult, LiveSet


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text)


def _strings(texts: Iterable[str]) -> str:
    return "[" + ", ".join(_q(s) for s in texts) + "]"


def _bare(name: str) -> str:
    return name.rstrip(".")


def _set_comment(live: LiveSet) -> list[str]:
    count = len(live.domains)
    lines = [f"# Live now on {count} domain{'s' if count != 1 else ''}."]
    if any("{domain}" in r for r in live.records):
        lines.append("# {domain} is each domain's own name: their sets differ only by it.")
    if live.filter:
        lines.append(
            f"# These hosts are {live.filter}'s, an inbound mail filter: this set is the proxy,"
        )
        lines.append("# and the backup is your own server, reached directly.")
    return lines


def init_toml(result: InitResult) -> str:
    """The whole file: the source's own tables as they were, then the proposal."""
    zones = ", ".join(_bare(z) for z in result.zones)
    out = [result.kept_text.rstrip(), ""]
    out.append(f'{MARKER} from provider "{result.provider.name}" (zones: {zones}).')
    out.append("# Each domain below has MX records at the provider; its live set is its primary.")
    out.append("# Review it, fill in the backup, then run `mxflip validate` and `mxflip doctor`.")
    if result.read_by_name:
        out.append("# The provider could not list whole zones: only the named domains were read.")
    for name, why in result.skipped:
        out.append(f"# Not added: {_bare(name)} {why}.")
    out += ["", "[sets]"]
    for live in result.sets:
        out += _set_comment(live)
        out.append(f"{live.name} = {_strings(live.records)}")
    if result.backup is not None:
        out.append(f"# From {result.backup_source} ({{domain}} becomes each domain's name).")
        out.append(f"backup = {_strings(result.backup)}")
    else:
        out.append("# FILL IN: the backup MX set, usually your own server reached directly, for")
        out.append('# example ["10 mail.{domain}"] ({domain} becomes each domain\'s name).')
        out.append("# `mxflip validate` refuses this placeholder until it is replaced.")
        out.append(f"backup = {_strings([PLACEHOLDER_BACKUP])}")
    if result.kept_sets:
        out.append("# Kept from the file as they were.")
        for name, records in result.kept_sets:
            out.append(f"{name} = {_strings(records)}")
    for domain in result.domains:
        out += ["", f"[domains.{_q(_bare(domain.name))}]"]
        out.append(f"provider = {_q(result.provider.name)}")
        out.append(f"zone = {_q(_bare(domain.zone))}")
        out.append(f"primary = {_q(domain.set_name)}")
        out.append('backup = "backup"')
        out.append(f"ttl = {domain.rrset.ttl}  # the live TTL")
        if domain.rrset.ttl < 60:
            # failover_ttl may not be longer than ttl; the default is 60.
            out.append(f"failover_ttl = {domain.rrset.ttl}")
    return "\n".join(out) + "\n"


def init_summary(result: InitResult) -> str:
    """One line for people: what was found."""
    n = len(result.domains)
    sets = len(result.sets)
    text = (
        f"{n} domain{'s' if n != 1 else ''} in {len(result.zones)} "
        f"zone{'s' if len(result.zones) != 1 else ''}, {sets} live MX "
        f"set{'s' if sets != 1 else ''}"
    )
    filters = sorted({s.filter for s in result.sets if s.filter})
    if filters:
        text += f" (inbound filter: {', '.join(filters)})"
    if result.backup is None:
        text += "; fill in the backup set before `mxflip validate`"
    return text
