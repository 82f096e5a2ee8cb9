"""Hierarchies of a self-reference (``Account.ParentId``): no record may become its own
ancestor. Checked when a transaction writes, walking each chain as the transaction leaves it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .schema import CoreField, CoreObject
from .storage import quote_ident
from .validation import UNCHANGED, RowBlock, sf_error


def self_references(obj: CoreObject) -> list[CoreField]:
    """The reference fields of ``obj`` that point at ``obj`` itself."""
    return [f for f in obj.fields.values() if f.type == "reference" and f.to == obj.name]


def loop_error(obj: CoreObject, ref: CoreField) -> str:
    """Salesforce's refusal of a parent that is the record itself or one of its descendants,
    e.g. ``Parent Account: You can't select an account that is a descendant of this
    account``."""
    noun = obj.name.removesuffix("__c").replace("_", " ").lower()
    article = "an" if noun[:1] in "aeiou" else "a"
    label = ref.label.removesuffix(" ID")
    return sf_error("FIELD_INTEGRITY_EXCEPTION", f"{label}: You can't select {article} {noun} "
                    f"that is a descendant of this {noun}", [ref.name])


def loop_errors(conn: sqlite3.Connection, obj: CoreObject, block: RowBlock,
                parent_ids: dict[str, dict[int, str | None]], existing: dict[int, str],
                positions: Iterable[int]) -> dict[int, str]:
    """{position: error} of the rows, in order, whose new parent would close a loop: the
    record itself, or a record below it once the earlier rows of ``positions`` are applied.
    A new record has no descendants, so only rows updating a record are checked."""
    errors: dict[int, str] = {}
    for ref in self_references(obj):
        pending: dict[str, str | None] = {}  # record -> the parent an earlier row gave it
        for p in positions:
            record = existing.get(p)
            parent = _new_parent(ref, block, parent_ids, p)
            if record is None or parent is UNCHANGED:
                continue
            if parent is not None and _reaches(conn, obj, ref, str(parent), record, pending):
                errors[p] = loop_error(obj, ref)
            else:
                pending[record] = parent  # type: ignore[assignment]
    return errors


def _new_parent(ref: CoreField, block: RowBlock, parent_ids: dict[str, dict[int, str | None]],
                p: int) -> object:
    """The parent Id row ``p`` sets (None clears it), or UNCHANGED."""
    if ref.name in parent_ids:
        return parent_ids[ref.name].get(p, UNCHANGED)
    if ref.name in block.values:
        return block.values[ref.name][p]
    return UNCHANGED


def _reaches(conn: sqlite3.Connection, obj: CoreObject, ref: CoreField, start: str,
             record: str, pending: dict[str, str | None]) -> bool:
    """Whether walking up from ``start`` reaches ``record`` (Ids compared on 15 characters)."""
    select = f"SELECT {quote_ident(ref.name)} FROM {quote_ident(obj.name)} WHERE "
    node: str | None = start
    seen: set[str] = set()
    while node and node[:15] not in seen:
        if node[:15] == record[:15]:
            return True
        seen.add(node[:15])
        if node in pending:
            node = pending[node]
        else:
            by = "Id = ?" if len(node) != 15 else "substr(Id, 1, 15) = ?"
            row = conn.execute(select + by, (node,)).fetchone()
            node = row[0] if row else None
    return False
