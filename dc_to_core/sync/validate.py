"""Client-side validation: the org's own constraints (from describe) applied to prepared rows
before upload, so a row Salesforce would refuse costs no org time and no batch holds it.

What is checked needs only the row and the field's describe: text longer than the field
(STRING_TOO_LONG), a value outside a restricted picklist
(INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST), a null in a field that cannot be null
(REQUIRED_FIELD_MISSING), a number beyond the field's precision and scale or an int beyond
32 bits (NUMBER_OUTSIDE_VALID_RANGE), a date or datetime outside the years 1700-4000
(FIELD_INTEGRITY_EXCEPTION). Codes and messages are the org's. What needs the org's data
(a parent that is not there, a duplicate value in Core) is left to the org.
Every check is vectorised; messages are built for the failing rows only.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from ..salesforce.bulk_csv import bulk_text
from ..salesforce.describe import NUMBER_TYPES, TEXT_TYPES, FieldInfo, ObjectInfo
from .spec import SyncSpec

INT_LIMIT = float(2**31)
PICKLIST_LENGTH = 255  # a picklist value's length when describe gives none
XSD = {"double": "double", "currency": "double", "percent": "double", "int": "int"}


def _rows(mask: pa.Array) -> list[int]:
    return pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()


def _given(col: pa.Array, text: pa.Array) -> pa.Array:
    """Values the upload carries: not null, and not an empty cell (which leaves the field as
    it is, so the org checks nothing)."""
    return pc.and_(pc.is_valid(col), pc.not_equal(text, ""))


def _text_rules(f: FieldInfo, col: pa.Array) -> Iterator[tuple[int, str, str]]:
    text = col if pa.types.is_string(col.type) else bulk_text(col)
    given = _given(col, text)
    limit = f.length or (PICKLIST_LENGTH if f.type == "picklist" else 0)
    long = pc.greater(pc.utf8_length(text), limit) if limit else None
    if long is not None:
        for i in _rows(pc.and_(given, long)):
            yield i, "STRING_TOO_LONG", (f"{f.label}: data value too large: "
                                         f"{text[i].as_py()[:40]} (max length={limit})")
    if f.type == "picklist" and f.restricted_picklist:
        bad = pc.invert(pc.is_in(text, pa.array(f.picklist_values, pa.string())))
        for i in _rows(pc.and_(given, bad)):
            yield i, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", (
                f"{f.label}: bad value for restricted picklist field: {text[i].as_py()}")


def _range_rules(f: FieldInfo, col: pa.Array, pos: int) -> Iterator[tuple[int, str, str]]:
    if f.type in NUMBER_TYPES | {"int"} and (pa.types.is_integer(col.type) or pa.types.is_floating(
            col.type) or pa.types.is_decimal(col.type)):
        num = pc.cast(col, pa.float64())
        if pa.types.is_floating(col.type):  # NaN and infinities are no number to the org
            for i in _rows(pc.invert(pc.is_finite(num))):
                yield i, "INVALID_FIELD", (f"Failed to deserialize field at col {pos + 1}. Due "
                                           f"to, '{bulk_text(col.slice(i, 1))[0].as_py()}' is "
                                           f"not a valid value for the type xsd:{XSD[f.type]}")
            num = pc.if_else(pc.is_finite(num), num, 0.0)
        if f.type == "int":
            out = pc.greater_equal(pc.abs(num), INT_LIMIT)
        elif f.precision:
            out = pc.greater_equal(pc.abs(pc.round(num, f.scale)),
                                   float(10 ** (f.precision - f.scale)))
        else:
            return
        code = "NUMBER_OUTSIDE_VALID_RANGE"
    elif f.type in ("date", "datetime") and (pa.types.is_date(col.type) or
                                             pa.types.is_timestamp(col.type)):
        year = pc.year(col)
        out = pc.or_(pc.less(year, 1700), pc.greater(year, 4000))
        code = "FIELD_INTEGRITY_EXCEPTION"
    else:
        return
    rows = _rows(out)
    if rows:
        text = bulk_text(col.take(pa.array(rows, pa.int64()))).to_pylist()
        for i, value in zip(rows, text, strict=True):
            yield i, code, f"{f.label}: value outside of valid range: {value}"


def org_rules(spec: SyncSpec, columns: dict[str, pa.Array], info: ObjectInfo
              ) -> Iterator[tuple[int, str, str]]:
    """(row, code, message) for each prepared value the org would refuse, in column order
    (a row may appear more than once: the first reason is the one the org would give)."""
    keeps = {m.target for m in spec.fields if m.keeps_nulls}  # a null there leaves Core's
    for pos, (name, col) in enumerate(columns.items()):
        f = info.field(name)
        if f is None or "." in name:
            continue
        if not f.nillable and f.type != "boolean" and name != spec.target_key and (
                name not in keeps):
            for i in _rows(pc.is_null(col)):
                yield i, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{f.name}]"
        if f.type in TEXT_TYPES:
            yield from _text_rules(f, col)
        else:
            yield from _range_rules(f, col, pos)
