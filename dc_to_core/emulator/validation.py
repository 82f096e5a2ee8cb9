"""Header checks and per-row validation of uploaded CSV data, as Salesforce applies them.

Everything that does not depend on the org's state at write time (types, lengths, picklists,
required fields, duplicates in the job) is computed here, vectorised over a chunk with pyarrow.
Parent existence and insert-vs-update are decided later, inside the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from .schema import CoreField, CoreObject, OrgSchema
from .storage import nocase

UNCHANGED = object()  # empty CSV cell: leave the field as it is (null on insert)
NA = "#N/A"
NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
INTEGER = r"^[+-]?\d+$"
DATE = r"^\d{4}-\d{2}-\d{2}Z?$"
DATETIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$"
XSD = {"date": "xsd:date", "datetime": "xsd:dateTime", "int": "xsd:int",
       "boolean": "xsd:boolean", "double": "xsd:double", "currency": "xsd:double",
       "percent": "xsd:double"}


class JobError(Exception):
    """The whole job cannot be processed (bad header); becomes the job's errorMessage."""


def sf_error(code: str, message: str, fields: list[str] | tuple[str, ...] = ()) -> str:
    """A failedResults ``sf__Error`` value: ``CODE:message:Field1,Field2 --`` (``…:--``)."""
    names = ",".join(fields)
    return f"{code}:{message}:{names + ' ' if names else ''}--"


@dataclass(frozen=True)
class Reference:
    field: CoreField   # e.g. Opportunity.AccountId
    target: str        # e.g. Account
    key: str           # e.g. External_Id__c (or Id)
    folds_case: bool = False  # the key matches ignoring case (not a case-sensitive field)


@dataclass(frozen=True)
class HeaderPlan:
    """How the columns of a job's CSV map onto the object."""

    obj: CoreObject
    operation: str
    key_field: str | None                  # the upsert key (external id or Id)
    fields: dict[str, CoreField]           # CSV column -> writable field
    references: dict[str, Reference]       # CSV column -> parent reference
    id_column: str | None = None


def plan_header(schema: OrgSchema, obj: CoreObject, operation: str, key: str | None,
                columns: list[str]) -> HeaderPlan:
    """Check a CSV header against the object; raise :class:`JobError` as Salesforce would."""
    fields: dict[str, CoreField] = {}
    refs: dict[str, Reference] = {}
    id_column = None
    for col in columns:
        if col.lower() == "id":
            id_column = col
            continue
        if "." in col:
            rel_name, _, target_key = col.partition(".")
            ref = obj.relationship(rel_name)
            if ref is None:
                raise JobError(f"InvalidBatch : Field name not found : {col}")
            target = schema.object(ref.to or "")
            by = target.field(target_key) if target is not None else None
            refs[col] = Reference(ref, ref.to or "", target_key, by is not None and by.folds_case)
            continue
        match = next((f for f in obj.fields.values() if f.name.lower() == col.lower()), None)
        if match is None:
            raise JobError(f"InvalidBatch : Field name not found : {col}")
        fields[col] = match
    if operation in ("update", "delete", "hardDelete") and id_column is None:
        raise JobError("InvalidBatch : Field name not found : Id (required for this operation)")
    if operation in ("delete", "hardDelete") and (fields or refs):
        raise JobError("InvalidBatch : Only the Id column is allowed for a delete job")
    if (operation == "upsert" and key and key.lower() != "id"
            and not any(f.name.lower() == key.lower() for f in fields.values())):
        raise JobError(f"InvalidBatch : External ID field {key} is not in the header")
    return HeaderPlan(obj, operation, key, fields, refs, id_column)


@dataclass
class RowBlock:
    """Validated rows of one chunk; lists are aligned with ``rows``."""

    rows: Sequence[int]
    key_values: list[str]                       # upsert key / Id per row ('' when blank)
    values: dict[str, list] = field(default_factory=dict)     # field name -> typed values
    parents: dict[str, list[str]] = field(default_factory=dict)  # CSV column -> parent keys
    errors: list[str | None] = field(default_factory=list)
    insert_errors: list[str | None] = field(default_factory=list)
    update_errors: list[str | None] = field(default_factory=list)
    insert_tuples: list[tuple] | None = None     # filled lazily by the DML layer


def _mask_indices(mask: pa.Array) -> list[int]:
    return pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()


def _convert(f: CoreField, col: pa.Array, pos: int) -> tuple[list, dict[int, str]]:
    """Typed values (UNCHANGED / None / value) and {row: error} for one field column."""
    empty = pc.equal(col, "")
    na = pc.equal(col, NA)
    given = pc.invert(pc.or_(empty, na))
    raw = col.to_pylist()
    errors: dict[int, str] = {}
    values: list = raw
    kind = f.type
    if kind in ("string", "textarea", "picklist", "reference"):
        limit = f.length or (255 if kind == "picklist" else 18 if kind == "reference" else None)
        if limit:
            for i in _mask_indices(pc.and_(given, pc.greater(pc.utf8_length(col), limit))):
                errors[i] = sf_error(
                    "STRING_TOO_LONG",
                    f"{f.label}: data value too large: {raw[i][:40]} (max length={limit})",
                    [f.name])
        if kind == "picklist" and f.restricted:
            bad = pc.and_(given, pc.invert(pc.is_in(col, pa.array(f.values, pa.string()))))
            for i in _mask_indices(bad):
                errors.setdefault(i, sf_error(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{f.label}: bad value for restricted picklist field: {raw[i]}", [f.name]))
    elif kind in XSD:
        values, errors = _convert_typed(f, col, raw, given, pos)
    return [UNCHANGED if r == "" else None if r == NA else v
            for r, v in zip(raw, values, strict=True)], errors


class _OutOfRange(ValueError):
    pass


def _convert_typed(
    f: CoreField, col: pa.Array, raw: list, given: pa.Array, pos: int
) -> tuple[list, dict[int, str]]:
    kind = f.type
    if kind in ("date", "double", "currency", "percent", "int"):
        fast = _vector_parse(f, col, given)
        if fast is not None:
            return fast[0], _report(f, raw, fast[1], fast[2], pos)
    pattern = {"date": DATE, "datetime": DATETIME, "int": INTEGER}.get(kind, NUMBER)
    if kind == "boolean":
        ok = pc.is_in(pc.utf8_lower(col), pa.array(["true", "false", "1", "0"]))
    else:
        ok = pc.match_substring_regex(col, pattern)
    bad = set(_mask_indices(pc.and_(given, pc.invert(ok))))
    out = list(raw)
    out_of_range: set[int] = set()
    for i in _mask_indices(pc.and_(given, ok)):
        try:
            out[i] = _parse(f, raw[i])
        except _OutOfRange:
            out_of_range.add(i)
        except ValueError:
            bad.add(i)
    return out, _report(f, raw, bad, out_of_range, pos)


def _vector_parse(f: CoreField, col: pa.Array, given: pa.Array
                  ) -> tuple[list, set[int], set[int]] | None:
    """Dates and numbers parsed by pyarrow: (values, malformed rows, out-of-range rows)."""
    if f.type == "date":
        text = pc.utf8_slice_codeunits(col, 0, 10)
        ok = pc.match_substring_regex(col, DATE)
        parsed = pc.strptime(pc.if_else(ok, text, "2000-01-01"), format="%Y-%m-%d", unit="s",
                             error_is_null=True)
        round_trip = pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), text)  # no Feb 30 → Mar 2
        valid = pc.and_(ok, pc.fill_null(round_trip, False))
        year = pc.year(pc.fill_null(parsed, 0))
        in_range = pc.and_(pc.greater_equal(year, 1700), pc.less_equal(year, 4000))
        values = text.to_pylist()
        bad_range = pc.and_(given, pc.and_(valid, pc.invert(in_range)))
    else:
        ok = pc.match_substring_regex(col, INTEGER if f.type == "int" else NUMBER)
        num = pc.cast(pc.if_else(ok, col, "0"), pa.float64())
        limit = float(2**31) if f.type == "int" else (
            float(10 ** (f.precision - (f.scale or 0))) if f.precision is not None else None)
        if f.type != "int" and f.precision is not None:
            num = pc.round(num, f.scale or 0)
        valid = ok
        bad_range = pc.and_(given, pc.and_(ok, pc.greater_equal(pc.abs(num), limit))) if (
            limit is not None) else pc.and_(given, pc.is_nan(num))
        values = (pc.cast(num, pa.int64()) if f.type == "int" else num).to_pylist()
    malformed = set(_mask_indices(pc.and_(given, pc.invert(valid))))
    return values, malformed, set(_mask_indices(bad_range))


def _report(f: CoreField, raw: list, malformed: set[int], out_of_range: set[int], pos: int
            ) -> dict[int, str]:
    errors: dict[int, str] = {}
    for i in out_of_range:
        code = "FIELD_INTEGRITY_EXCEPTION" if f.type in ("date", "datetime") else (
            "NUMBER_OUTSIDE_VALID_RANGE")
        errors[i] = sf_error(code, f"{f.label}: value outside of valid range: {raw[i]}",
                             [f.name])
    for i in malformed:
        errors[i] = sf_error(
            "INVALID_FIELD",
            f"Failed to deserialize field at col {pos + 1}. Due to, '{raw[i][:40]}' is not a "
            f"valid value for the type {XSD[f.type]}")
    return errors


def _parse(f: CoreField, text: str) -> object:
    """One valid-looking CSV value as stored; ValueError if malformed, _OutOfRange if too big."""
    kind = f.type
    if kind == "boolean":
        return 1 if text.lower() in ("true", "1") else 0
    if kind == "date":
        d = datetime.strptime(text[:10], "%Y-%m-%d")  # raises ValueError on Feb 30
        if not 1700 <= d.year <= 4000:
            raise _OutOfRange(text)
        return text[:10]
    if kind == "datetime":
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        dt = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)
        if not 1700 <= dt.year <= 4000:
            raise _OutOfRange(text)
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    if kind == "int":
        n = int(text)
        if abs(n) > 2**31 - 1:
            raise _OutOfRange(text)
        return n
    x = float(text)
    if f.precision is not None:
        scale = f.scale or 0
        if abs(x) >= 10 ** (f.precision - scale):
            raise _OutOfRange(text)
        x = round(x, scale)
    return x


def validate_rows(plan: HeaderPlan, table: pa.Table, rows: Sequence[int],
                  duplicates: frozenset[str]) -> RowBlock:
    """Validate ``rows`` (indices into the job's table) and convert their values."""
    if isinstance(rows, range) and rows.step == 1:
        part = table.slice(rows.start, len(rows))
    else:
        part = table.take(pa.array(rows, pa.int64()))
    key_col = plan.id_column if plan.operation != "upsert" or (
        plan.key_field or "").lower() == "id" else next(
        (c for c, f in plan.fields.items() if f.name.lower() == (plan.key_field or "").lower()),
        None)
    keys = part.column(key_col).to_pylist() if key_col else [""] * len(rows)
    block = RowBlock(rows=rows, key_values=keys)
    errors: dict[int, str] = {}
    required_missing: dict[int, list[str]] = {}
    read_only: dict[str, dict[int, list[str]]] = {"insert": {}, "update": {}}
    names = table.column_names
    for col, f in plan.fields.items():
        arr = part.column(col).combine_chunks()
        values, col_errors = _convert(f, arr, names.index(col))
        if f.on_save == "upper":  # the org's own automation rewrites what it was sent
            values = [v.upper() if isinstance(v, str) else v for v in values]
        block.values[f.name] = values
        for i, e in col_errors.items():
            errors.setdefault(i, e)
        for when, allowed in (("insert", f.createable), ("update", f.updateable)):
            if not allowed:
                for i, v in enumerate(values):
                    if v is not UNCHANGED:
                        read_only[when].setdefault(i, []).append(f.name)
        if f.required:
            for i, v in enumerate(values):
                if v is None:
                    errors.setdefault(i, sf_error("REQUIRED_FIELD_MISSING",
                                                  f"Required fields are missing: [{f.name}]",
                                                  [f.name]))
                elif v is UNCHANGED and not f.defaulted_on_create:
                    required_missing.setdefault(i, []).append(f.name)
    sent = [*plan.fields.values(), *(r.field for r in plan.references.values())]
    absent = [f.name for f in plan.obj.fields.values()
              if f.required and not f.defaulted_on_create and f not in sent]
    for col, ref in plan.references.items():
        block.parents[col] = part.column(col).to_pylist()
        if ref.field.required:
            for i, v in enumerate(block.parents[col]):
                if v in ("", NA):
                    required_missing.setdefault(i, []).append(ref.field.name)
    if duplicates and plan.operation == "upsert":
        fold = nocase if _key_folds_case(plan) else str
        for i, k in enumerate(keys):
            if k not in (None, "", NA) and fold(k) in duplicates:
                errors.setdefault(i, sf_error("DUPLICATE_EXTERNAL_ID",
                                              f"Duplicate external id specified: {k}",
                                              [plan.key_field or ""]))
    n = len(rows)
    block.errors = [errors.get(i) for i in range(n)]
    block.insert_errors = [None] * n
    block.update_errors = [None] * n
    for i in range(n):
        missing = absent + required_missing.get(i, [])
        if missing:
            block.insert_errors[i] = sf_error(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                missing)
    for when, out in (("insert", block.insert_errors), ("update", block.update_errors)):
        for i, names_ in read_only[when].items():
            out[i] = out[i] or sf_error(
                "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: "
                f"{', '.join(names_)}. Please check the security settings of this field and "
                "verify that it is read/write for your profile or permission set.", names_)
    return block


def find_duplicates(table: pa.Table, plan: HeaderPlan) -> frozenset[str]:
    """Upsert key values that occur more than once in the job (non-blank); for a key that
    is not case-sensitive, in folded form (``OPP-X`` and ``opp-x`` are one key)."""
    if plan.operation != "upsert" or not plan.key_field:
        return frozenset()
    col = next((c for c, f in plan.fields.items() if f.name.lower() == plan.key_field.lower()),
               plan.id_column)
    if col is None:
        return frozenset()
    keys = table.column(col).combine_chunks()
    keys = keys.filter(pc.invert(pc.is_in(keys, pa.array(["", NA]))))  # no key: not shared
    if _key_folds_case(plan):
        keys = pc.ascii_lower(keys)  # byte for byte SQLite's NOCASE fold on UTF-8
    counts = pc.value_counts(keys)
    values, n = counts.field("values"), counts.field("counts")
    dup = pc.filter(values, pc.greater(n, 1))
    return frozenset(dup.to_pylist())


def _key_folds_case(plan: HeaderPlan) -> bool:
    key = plan.obj.field(plan.key_field or "")
    return key is not None and key.folds_case


def is_valid_id(value: str, prefix: str) -> bool:
    return bool(re.fullmatch(r"[0-9A-Za-z]{15}([0-9A-Za-z]{3})?", value)) and value.startswith(
        prefix)
