"""``mxflip providers``: the installed adapters, as a table or a JSON document.

Plain text, no rich: the command must start about as fast as click alone. The table is
drawn with the same characters rich uses for the other commands' tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from mxflip.entrypoints import InstalledProvider
from mxflip.render.common import JSON_VERSION


def providers_json(installed: Iterable[InstalledProvider]) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "command": "providers",
        "providers": [
            {
                "type": p.type,
                "distribution": p.distribution,
                "version": p.version,
                "target": p.target,
            }
            for p in sorted(installed, key=lambda p: p.type)
        ],
    }


def render_providers(out: TextIO, installed: Iterable[InstalledProvider]) -> None:
    rows = sorted(installed, key=lambda p: p.type)
    if not rows:
        out.write("No provider adapters are installed (pip install mxflip-rfc2136, …).\n")
        return
    header = ("Type", "Distribution", "Version", "Entry point")
    cells = [(p.type, p.distribution or "?", p.version or "?", p.target) for p in rows]
    out.write(box_table(header, cells))


def box_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table with a heavy head, as rich draws one (single-line cells only)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def rule(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right + "\n"

    def line(edge: str, cells: Sequence[str]) -> str:
        return edge + edge.join(f" {c:<{w}} " for c, w in zip(cells, widths, strict=True)) + edge

    lines = [rule("┏", "━", "┳", "┓"), line("┃", header) + "\n", rule("┡", "━", "╇", "┩")]
    lines += [line("│", r) + "\n" for r in rows]
    lines.append(rule("└", "─", "┴", "┘"))
    return "".join(lines)
