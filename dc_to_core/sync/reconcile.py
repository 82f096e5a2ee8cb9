"""Reconciliation of Data Cloud against Core as plain functions on Arrow arrays: keys present
on both sides (``reconcile``), external ids held twice (``duplicates``), and the mapped fields
compared value by value with checksums (``compare_fields``). The Dagster layer's asset checks
run them for the partition just materialized.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..salesforce.datacloud_arrow import joined_text
from .keys import Keys, as_array, folded
from .outcome import SAMPLE_ROWS

MICRO = 1_000_000.0


@dataclass
class Reconciliation:
    dc_rows: int
    core_rows: int
    quarantined: int
    missing: list[str] = field(default_factory=list)     # in DC, not quarantined, not in Core
    unexpected: list[str] = field(default_factory=list)  # in Core, not in the DC range

    @property
    def passed(self) -> bool:
        return not self.missing and not self.unexpected


def reconcile(dc_keys: Keys, core_keys: Keys, quarantined_keys: Keys,
              quarantined_rows: int, fold: bool = False) -> Reconciliation:
    """Missing: a Data Cloud key neither quarantined nor in Core; unexpected: a Core key
    Data Cloud's range does not have (each listed once, sorted; null keys never match).
    With ``fold``, keys match ignoring case, as the org matches its external id."""
    dc, core, quarantined = as_array(dc_keys), as_array(core_keys), as_array(quarantined_keys)
    known, listed = pc.unique(dc.drop_null()), pc.unique(core.drop_null())
    known_f, listed_f = folded(known, fold), folded(listed, fold)
    missing = known.filter(pc.invert(pc.or_(
        pc.is_in(known_f, value_set=listed_f),
        pc.is_in(known_f, value_set=folded(quarantined, fold)))))
    unexpected = listed.filter(pc.invert(pc.is_in(listed_f, value_set=known_f)))
    return Reconciliation(len(dc), len(core), quarantined_rows, _sorted(missing),
                          _sorted(unexpected))


def duplicates(keys: Keys, fold: bool = False) -> dict[str, int]:
    """Keys held by more than one record ({key: records}); with ``fold``, keys that differ
    only in case are one key (shown folded)."""
    counts = pc.value_counts(folded(keys, fold).drop_null())
    dup = counts.filter(pc.greater(counts.field("counts"), 1))
    return dict(zip(dup.field("values").to_pylist(), dup.field("counts").to_pylist(),
                    strict=True))


def _sorted(keys: pa.Array) -> list[str]:
    return keys.take(pc.sort_indices(keys)).to_pylist()


def canonical(arr: pa.Array, like: pa.DataType) -> pa.Array:
    """One comparable form for a column whichever side it came from (Arrow as prepared, or
    Core's text): numbers as integer millionths, dates as ``YYYY-MM-DD``, datetimes
    as UTC ``YYYY-MM-DDTHH:MM:SS``, booleans as bool, other text with empty meaning null."""
    try:
        if _is_number(like):  # integer millionths: float noise (…19000000001) compares equal
            number = pc.cast(text_of(arr) if _is_text(arr) else arr, pa.float64())
            return pc.cast(pc.round(pc.multiply(number, MICRO)), pa.int64())
        if pa.types.is_boolean(like):
            return arr if pa.types.is_boolean(arr.type) else pc.is_in(
                pc.utf8_lower(text_of(arr)), pa.array(["true", "1"]))
        if pa.types.is_timestamp(like):
            text = text_of(arr) if _is_text(arr) else pc.strftime(arr, "%Y-%m-%dT%H:%M:%S")
            return pc.utf8_slice_codeunits(text, 0, 19)
        if pa.types.is_date(like):
            return pc.utf8_slice_codeunits(text_of(arr), 0, 10)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass  # a value that does not parse: compared as text, so it shows as a mismatch
    text = text_of(arr)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _shown(arr: pa.Array, like: pa.DataType) -> pa.Array:
    """A canonical column as a person reads it (numbers back from millionths)."""
    if _is_number(like) and pa.types.is_integer(arr.type):
        return pc.divide(pc.cast(arr, pa.float64()), MICRO)
    return arr


def _is_text(arr: pa.Array) -> bool:
    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)


def text_of(arr: pa.Array) -> pa.Array:
    return arr if _is_text(arr) else pc.cast(arr, pa.string())


@dataclass
class FieldsComparison:
    compared: int
    dc_checksum: str
    core_checksum: str
    mismatched: int                                     # values that differ
    mismatches: list[tuple[str, str, object, object]]  # a sample: key, field, Data Cloud, Core
    differing: list[str] = field(default_factory=list)  # every key with a value that differs
    by_field: dict[str, list[str]] = field(default_factory=dict)  # field -> keys differing

    @property
    def passed(self) -> bool:
        return not self.mismatched


def _checksum(key: pa.Array, columns: list[pa.Array]) -> str:
    """sha256 of the rows as text (fields joined by U+001F, rows by newlines), built by Arrow:
    the same digest as joining Python strings, without making a string per row."""
    text = [pc.fill_null(text_of(c), "\u2205") for c in columns]
    rows = pc.binary_join_element_wise(key, *text, "\x1f")
    return hashlib.sha256(joined_text(rows, "\n")).hexdigest()[:16]


def compare_fields(dc: pa.Table, core: pa.Table, key: str, fields: list[str],
                   skip: set[str], sample: int = SAMPLE_ROWS, fold: bool = False,
                   folded_fields: set[str] | frozenset[str] = frozenset(),
                   keep_nulls: set[str] | frozenset[str] = frozenset()) -> FieldsComparison:
    """Compare ``fields`` for every key present on both sides (minus ``skip``), vectorised:
    each Data Cloud row meets the first Core record with its key (folded when ``fold``;
    duplicates have their own check), in key order. ``folded_fields`` (a parent's external
    id the org matches ignoring case) compare ignoring case; where a field of
    ``keep_nulls`` (``on_null: keep``) is null in Data Cloud, Core's value stands."""
    dc = dc.select([key, *fields])
    if skip:
        dc = dc.filter(pc.invert(pc.is_in(dc.column(key), pa.array(list(skip), pa.string()))))
    at = pc.index_in(folded(dc.column(key), fold), value_set=folded(core.column(key), fold),
                     skip_nulls=True)
    dc, at = dc.filter(pc.is_valid(at)), at.drop_null()
    order = pc.sort_indices(dc.column(key))
    dc, at = dc.take(order), at.take(order)
    right = core.select(fields).take(at)
    keys = dc.column(key).combine_chunks()
    left_cols, right_cols, mismatches, mismatched = [], [], [], 0
    by_field: dict[str, list[str]] = {}
    any_differ = pc.fill_null(pa.nulls(len(keys), pa.bool_()), False)
    for f in fields:
        like = dc.schema.field(f).type
        a = canonical(dc.column(f).combine_chunks(), like)
        b = canonical(right.column(f).combine_chunks(), like)
        if f in folded_fields:
            a, b = folded(a, True), folded(b, True)
        if a.type != b.type:
            a, b = text_of(a), text_of(b)
        if f in keep_nulls:
            a = pc.if_else(pc.is_null(a), b, a)
        left_cols.append(a)
        right_cols.append(b)
        same = pc.or_(pc.fill_null(pc.equal(a, b), False),
                      pc.and_(pc.is_null(a), pc.is_null(b)))
        differ = pc.invert(same)
        any_differ = pc.or_(any_differ, differ)
        n = pc.sum(differ).as_py() or 0
        mismatched += n
        if n:
            by_field[f] = keys.filter(differ).to_pylist()
        if n and len(mismatches) < sample:
            idx = pc.indices_nonzero(differ)[:sample - len(mismatches)]
            mismatches += zip(keys.take(idx).to_pylist(), [f] * len(idx),
                              _shown(a.take(idx), like).to_pylist(),
                              _shown(b.take(idx), like).to_pylist(), strict=True)
    return FieldsComparison(dc.num_rows, _checksum(keys, left_cols),
                            _checksum(keys, right_cols), mismatched, mismatches,
                            keys.filter(any_differ).to_pylist(), by_field)
