"""Route53 change items for mxflip changes, and their packing into change batches.

Pure functions, no SDK: what a conditional change becomes on the wire, and how a zone's
changes are split only where Route53's request limits force it.

A change names the RRset it expects to replace: ``DELETE`` of the exact old set (Route53
refuses a DELETE whose TTL or values differ from the live set, or whose set is gone) and
``CREATE`` of the new one (refused when the name already has an MX set). Both travel in
the same batch, which Route53 applies all or nothing, so a stale view fails the whole
batch instead of overwriting someone else's edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mxflip import Change, ProviderError, RRset

#: Route53's limits on one ChangeResourceRecordSets request: ResourceRecord elements and
#: characters in all Value elements; an UPSERT counts double against both.
MAX_RECORDS = 1000
MAX_VALUE_CHARS = 32000


@dataclass(frozen=True)
class Item:
    """One element of a change batch: an action on one MX RRset."""

    action: str  # CREATE | DELETE | UPSERT
    name: str
    ttl: int
    values: tuple[str, ...]

    @property
    def weight(self) -> tuple[int, int]:
        """(ResourceRecord elements, Value characters) as Route53 counts them."""
        factor = 2 if self.action == "UPSERT" else 1
        return factor * len(self.values), factor * sum(len(v) for v in self.values)

    def to_api(self) -> dict[str, Any]:
        return {
            "Action": self.action,
            "ResourceRecordSet": {
                "Name": self.name,
                "Type": "MX",
                "TTL": self.ttl,
                "ResourceRecords": [{"Value": v} for v in self.values],
            },
        }


def wire_values(rrset: RRset) -> tuple[str, ...]:
    """The canonical Route53 values of an RRset: ``"PREF host."``, sorted."""
    return tuple(rrset.strings())


def items_for(change: Change, live_values: Sequence[str] | None = None) -> tuple[Item, ...]:
    """The batch items of one conditional change (DELETE of the expected set, CREATE of
    the new one). ``live_values`` are the values exactly as last read for this name, used
    for the DELETE when they mean the expected set (Route53 compares values textually)."""
    items: list[Item] = []
    if change.expected is not None:
        old = wire_values(change.expected)
        values = tuple(live_values) if live_values is not None else old
        items.append(Item("DELETE", change.name, change.expected.ttl, values))
    if change.new is not None:
        items.append(Item("CREATE", change.name, change.new.ttl, wire_values(change.new)))
    return tuple(items)


def split(
    groups: Sequence[Sequence[Item]],
    *,
    max_records: int = MAX_RECORDS,
    max_chars: int = MAX_VALUE_CHARS,
) -> list[list[Item]]:
    """Pack groups of items into as few batches as the limits allow, in order.

    A group (the DELETE and CREATE of one name) is never split across batches: a name
    must not be left without its MX set between two requests.
    """
    batches: list[list[Item]] = []
    current: list[Item] = []
    records = chars = 0
    for group in groups:
        g_records = sum(i.weight[0] for i in group)
        g_chars = sum(i.weight[1] for i in group)
        if g_records > max_records or g_chars > max_chars:
            raise ProviderError(
                f"the change of {group[0].name} alone exceeds Route53's limit of "
                f"{max_records} records / {max_chars} value characters per request"
            )
        if current and (records + g_records > max_records or chars + g_chars > max_chars):
            batches.append(current)
            current, records, chars = [], 0, 0
        current.extend(group)
        records += g_records
        chars += g_chars
    if current:
        batches.append(current)
    return batches
