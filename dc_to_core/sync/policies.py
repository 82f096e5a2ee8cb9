"""A field's policies applied to its source column before coercion: a constant (``value``),
a picklist map (values the map does not know are refused, with the row quarantined), and a
``default`` where the source is null. ``on_null: keep`` acts at upload (``sync.loading``):
a null goes as an empty cell, which Salesforce reads as "leave the field as it is"."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .spec import FieldMap

UNMAPPED = "UNMAPPED_VALUE"


def source_values(f: FieldMap, source: pa.Table) -> tuple[pa.Array, pa.Array | None]:
    """(values to coerce, rows the map does not know or None) of field ``f``."""
    n = source.num_rows
    if f.source is None:  # a constant on every row
        return pa.array([f.value] * n, pa.string()), None
    col = source.column(f.source).combine_chunks()
    unmapped = None
    if f.mapping:
        text = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
        if f.empty_as_null:
            text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        keys = pa.array([k for k, _ in f.mapping], pa.string())
        at = pc.index_in(text, value_set=keys)
        unmapped = pc.and_(pc.is_valid(text), pc.is_null(at))
        col = pc.take(pa.array([v for _, v in f.mapping], pa.string()), at)
    if f.default is not None:
        empty = pc.is_null(col)
        if pa.types.is_string(col.type) and f.empty_as_null:
            empty = pc.or_(empty, pc.fill_null(pc.equal(col, ""), True))
        if unmapped is not None:
            empty = pc.and_(empty, pc.invert(unmapped))
        text = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
        col = pc.if_else(empty, pa.scalar(f.default, pa.string()), text)
    return col, unmapped


def unmapped_message(f: FieldMap, target: str, raw: object) -> str:
    known = ", ".join(repr(k) for k, _ in f.mapping[:8]) + (", …" if len(f.mapping) > 8
                                                            else "")
    return (f"{f.source} value {str(raw)[:60]!r} has no entry in the map of "
            f"{target}.{f.target} (it maps {known}); add it to the field's 'map' in the sync "
            "file, or fix the value in Data Cloud")
