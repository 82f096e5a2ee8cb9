"""Prepare one partition for loading: map and coerce fields (with their policies), reject what
can be rejected before upload (missing or repeated external id, values that do not coerce or
that a value map does not know, values the org's field constraints refuse, rows on a loop of a
hierarchy), and order rows by their locking parents so the org's 10,000-row chunks hold whole
lock groups (``sync.lockplan``: the children of a parent in one chunk, and concurrent chunks
on different parents).

The parents come in an order shuffled by partition (a hash of partition and parent), not
alphabetically: every partition holds children of every parent, and two partitions loading at
once in the same order would have their chunks reach the same parents at the same moments and
wait on each other's locks all the way through (13 % of the org's worker time, measured).

Rejected rows become quarantine rows: key, error code, message and the source row as JSON.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ..salesforce.bulk_csv import CHUNK_ROWS, NA
from ..salesforce.datacloud_arrow import UNPARSED, joined_text
from ..salesforce.describe import ObjectInfo
from .hierarchy import CYCLE, cycle_message, cycles
from .keys import folded
from .lockplan import lock_plan
from .policies import UNMAPPED, source_values, unmapped_message
from .spec import FieldMap, SyncSpec
from .validate import org_rules

ROW = "__source_row"   # position of the row in the extracted table
RANK = "__parent_rank"
SUB = "__group_rank"
GROUP = "__lock_group"  # rows of one lock group go together (``sync.lockplan``); not sent
HASH = "__row_hash"  # the row's hash (``sync.changes``); travels with rows to send, not sent
QUARANTINE = pa.schema([("key", pa.string()), ("error_code", pa.string()),
                        ("error_message", pa.string()), ("stage", pa.string()),
                        ("row", pa.string())])
NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
INTEGER = r"^\s*[+-]?\d+\s*$"
DATE = r"^\d{4}-\d{2}-\d{2}$"
BOOLEAN = ["true", "false", "1", "0", "yes", "no"]


@dataclass
class Prepared:
    ready: pa.Table       # target columns + ROW, ordered for loading
    rejected: pa.Table    # QUARANTINE rows
    fingerprint: str


def source_rows_json(source: pa.Table, rows: list[int]) -> list[str]:
    """The given source rows as JSON objects (values as text; nulls as null)."""
    if not rows:
        return []
    part = source.take(pa.array(rows, pa.int64()))
    cols = {n: pc.cast(part.column(n), pa.string()).to_pylist() if not pa.types.is_string(
        part.column(n).type) else part.column(n).to_pylist() for n in part.column_names}
    return [json.dumps({n: cols[n][i] for n in cols}, ensure_ascii=False)
            for i in range(part.num_rows)]


def quarantine_table(keys: list[str | None], codes: list[str], messages: list[str],
                     stage: str, rows: list[str]) -> pa.Table:
    return pa.table([keys, codes, messages, [stage] * len(keys), rows], schema=QUARANTINE)


NULL_MARKER_KEY = "EXTERNAL_ID_IS_NULL_MARKER"  # a key that is the text #N/A
NULL_MARKER = "VALUE_IS_NULL_MARKER"  # a text value #N/A, which Bulk CSV would send as null


def _coerce(f: FieldMap, col: pa.ChunkedArray) -> tuple[pa.Array, pa.Array, str]:
    """(value, bad mask, error code) of one mapped column."""
    arr = col.combine_chunks()
    no_problem = pa.array([False] * len(arr))
    if pa.types.is_string(arr.type) and f.empty_as_null:
        arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)
    t = f.type
    if t == "string":  # Bulk CSV reads the text #N/A as null: it cannot be sent as text
        text = arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())
        return text, pc.fill_null(pc.equal(text, NA), False), NULL_MARKER
    if not pa.types.is_string(arr.type):
        try:
            target = {"number": None, "int": pa.int64(), "date": pa.date32(),
                      "datetime": pa.timestamp("us", tz="UTC"), "boolean": pa.bool_()}[t]
            if t == "number" and (pa.types.is_decimal(arr.type) or pa.types.is_floating(
                    arr.type) or pa.types.is_integer(arr.type)):
                return arr, no_problem, ""
            return pc.cast(arr, target or pa.float64()), no_problem, ""
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            arr = pc.cast(arr, pa.string())
    pattern = {"number": NUMBER, "int": INTEGER, "date": DATE}.get(t)
    if t == "boolean":
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
        ok = pc.is_in(lowered, pa.array(BOOLEAN))
        value = pc.is_in(lowered, pa.array(["true", "1", "yes"]))
    elif t == "date":  # strptime rolls Feb 30 over to Mar 2; the round trip catches it
        ok = pc.match_substring_regex(arr, pattern)
        parsed = pc.strptime(pc.if_else(ok, arr, "2000-01-01"), format="%Y-%m-%d", unit="s",
                             error_is_null=True)
        value = pc.cast(parsed, pa.date32())
        ok = pc.and_(ok, pc.fill_null(pc.equal(pc.cast(value, pa.string()), arr), False))
    elif pattern:
        ok = pc.match_substring_regex(arr, pattern)
        filler = "0"
        target = {"number": pa.float64(), "int": pa.int64()}[t]
        value = pc.cast(pc.utf8_trim_whitespace(pc.if_else(ok, arr, filler)), target)
    else:  # datetime text
        ok = pa.array([True] * len(arr))
        try:
            value = pc.cast(arr, pa.timestamp("us", tz="UTC"))
        except pa.ArrowInvalid:
            parsed = [_parse_datetime(v) for v in arr.to_pylist()]
            ok = pa.array([p is not False for p in parsed])
            value = pa.array([None if p is False else p for p in parsed],
                             pa.timestamp("us", tz="UTC"))
    bad = pc.and_(pc.is_valid(arr), pc.invert(pc.fill_null(ok, False)))
    value = pc.if_else(pc.or_(bad, pc.is_null(arr)), pa.scalar(None, value.type), value)
    return value, bad, f"INVALID_{t.upper()}"


def _parse_datetime(text: str | None) -> object:
    import datetime as dt

    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parent_order(parent: pa.Array, salt: str) -> pa.Array:
    """A rank per row: equal for rows of one parent, shuffled by ``salt`` (nulls first)."""
    distinct = pc.unique(parent).drop_null()
    ranks = pa.array([zlib.crc32(f"{salt}\x1f{p}".encode()) for p in distinct.to_pylist()],
                     pa.int64())
    return pc.fill_null(pc.take(ranks, pc.index_in(parent, value_set=distinct)), -1)


def _duplicate(spec: SyncSpec, spellings: list[str]) -> tuple[str, str]:
    """The quarantine reason of a row whose key another row of the source also holds."""
    if len(spellings) == 1:
        return ("DUPLICATE_EXTERNAL_ID_IN_SOURCE", f"{spec.source_key} {spellings[0]!r} "
                "appears more than once in Data Cloud; none of the copies is loaded")
    shown = " and ".join(repr(s) for s in spellings[:3])
    return ("DUPLICATE_EXTERNAL_ID_IN_SOURCE", f"{spec.source_key} values {shown} differ only "
            f"in case, and Salesforce matches {spec.target}.{spec.target_key} ignoring case: "
            "they are one record, so none of the copies is loaded. Make the keys distinct in "
            "Data Cloud (or declare key.case_sensitive: true if the field is case-sensitive)")


def prepare(spec: SyncSpec, source: pa.Table, salt: str = "", org: ObjectInfo | None = None,
            chunk_rows: int = CHUNK_ROWS) -> Prepared:
    """Map, coerce, pre-validate and order one extracted partition (``salt``, the partition,
    shuffles the order of the parents; ``chunk_rows``, the org's chunk, sizes the lock
    groups). With ``org``, the target's describe, rows the org would refuse for its field
    constraints are quarantined with the org's codes (``sync.validate``)."""
    n = source.num_rows
    missing = [c for c in spec.source_columns if c not in source.column_names]
    if missing:
        raise ValueError(f"sync {spec.name!r}: the extract lacks source columns {missing}")
    key = pc.cast(source.column(spec.source_key), pa.string()).combine_chunks()
    reasons: list[tuple[str, str] | None] = [None] * n
    for i in pc.indices_nonzero(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(key), ""), True)
                                ).to_pylist():
        reasons[i] = ("MISSING_EXTERNAL_ID", f"{spec.source_key} is empty; the row cannot be "
                      f"matched to a {spec.target} record")
    for i in pc.indices_nonzero(pc.fill_null(pc.equal(key, NA), False)).to_pylist():
        reasons[i] = reasons[i] or (NULL_MARKER_KEY, f"{spec.source_key} is the text '#N/A', "
                                    "Bulk API's null marker: the row has no external id to "
                                    "match (Salesforce refuses it, MISSING_ARGUMENT). Fix the "
                                    "key in Data Cloud")
    same = folded(key, spec.folds_key)  # OPP-X and opp-x are one record unless case-sensitive
    counts = pc.value_counts(same)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    dup_rows = pc.indices_nonzero(pc.fill_null(pc.is_in(same, value_set=repeated), False))
    spellings: dict[str, set[str]] = {}
    for raw, one in zip(key.take(dup_rows).to_pylist(), same.take(dup_rows).to_pylist(),
                        strict=True):
        spellings.setdefault(one, set()).add(raw)
    for i, one in zip(dup_rows.to_pylist(), same.take(dup_rows).to_pylist(), strict=True):
        reasons[i] = reasons[i] or _duplicate(spec, sorted(spellings[one]))
    if UNPARSED in source.column_names:  # values Data Cloud returned against their type
        flags = source.column(UNPARSED)
        for i in pc.indices_nonzero(pc.is_valid(flags)).to_pylist():
            reasons[i] = reasons[i] or ("INVALID_SOURCE_VALUE", "Data Cloud returned values "
                                        f"that do not parse as their declared types: "
                                        f"{flags[i].as_py()[:200]}")
    columns: dict[str, pa.Array] = {spec.target_key: key}
    for f in spec.fields:
        raw_values, unmapped = source_values(f, source)
        value, bad, code = _coerce(f, pa.chunked_array([raw_values]))
        columns[f.target] = value
        if unmapped is not None:
            for i in pc.indices_nonzero(unmapped).to_pylist():
                reasons[i] = reasons[i] or (UNMAPPED, unmapped_message(
                    f, spec.target, source.column(f.source)[i].as_py()))
        for i in pc.indices_nonzero(bad).to_pylist():
            raw = raw_values[i].as_py()
            reasons[i] = reasons[i] or (code, f"{f.source} is the text '#N/A', Bulk API's null "
                                        f"marker: sent, it would clear {spec.target}.{f.target}"
                                        " instead of writing it; change the value in Data "
                                        "Cloud" if code == NULL_MARKER else
                                        f"{f.source or 'value'} value {str(raw)[:60]!r} is not "
                                        f"a valid {f.type} for {spec.target}.{f.target}")
    for lk in spec.lookups:
        related = pc.cast(source.column(lk.source), pa.string()).combine_chunks()
        columns[lk.relationship] = pc.if_else(pc.equal(related, ""),
                                              pa.scalar(None, pa.string()), related)
        for i in pc.indices_nonzero(pc.fill_null(pc.equal(related, NA), False)).to_pylist():
            reasons[i] = reasons[i] or (NULL_MARKER, f"{lk.source} is the text '#N/A', Bulk "
                                        "API's null marker: sent, it would clear the "
                                        f"{spec.target}'s {lk.name} (its parent record) "
                                        "instead of setting it; "
                                        "change the value in Data Cloud")
    if spec.hierarchy_of:
        _refuse_loops(spec, columns, reasons)
    if org is not None:
        for i, code, message in org_rules(spec, columns, org):
            reasons[i] = reasons[i] or (code, message)
    columns[ROW] = pa.array(range(n), pa.int64())
    table = pa.table(columns)
    bad_rows = [i for i, r in enumerate(reasons) if r is not None]
    keep = pa.array([r is None for r in reasons]) if n else pa.array([], pa.bool_())
    ready = table.filter(keep)
    ready = _ordered(spec, ready, salt, chunk_rows)
    rejected = quarantine_table(
        [key[i].as_py() for i in bad_rows], [reasons[i][0] for i in bad_rows],  # type: ignore[index]
        [reasons[i][1] for i in bad_rows], "prepare",  # type: ignore[index]
        source_rows_json(source, bad_rows))
    return Prepared(ready, rejected, fingerprint(spec, ready))


def _ordered(spec: SyncSpec, ready: pa.Table, salt: str, chunk_rows: int) -> pa.Table:
    """``ready`` in loading order, with its lock groups (GROUP) when rows lock parents: one
    locking parent, by parent; several, by connected components (``sync.lockplan``)."""
    locking = spec.locking
    tail = [(spec.target_key, "ascending", "at_start")]
    if not locking:
        return ready.take(pc.sort_indices(ready, tail))
    parents = [folded(ready.column(lk.relationship), True) for lk in locking]  # one lock:
    if len(locking) == 1:                                                   # ACC-1 and acc-1
        ready = ready.append_column(RANK, parent_order(parents[0], salt))
        ready = ready.append_column(GROUP, parents[0])
        order = [(RANK, "ascending", "at_start"), (GROUP, "ascending", "at_start")]
        return ready.take(pc.sort_indices(ready, [*order, *tail])).drop_columns([RANK])
    plan = lock_plan(parents, chunk_rows, salt)
    ready = ready.append_column(RANK, plan.rank).append_column(SUB, plan.sub)
    ready = ready.append_column(GROUP, plan.group)
    order = [(RANK, "ascending", "at_start"), (SUB, "ascending", "at_start"),
             (GROUP, "ascending", "at_start")]
    return ready.take(pc.sort_indices(ready, [*order, *tail])).drop_columns([RANK, SUB])


def _refuse_loops(spec: SyncSpec, columns: dict[str, pa.Array],
                  reasons: list[tuple[str, str] | None]) -> None:
    """A hierarchy pass quarantines the rows on a loop of their self-lookups."""
    keys = folded(columns[spec.target_key], spec.folds_key)
    for lk in spec.lookups:
        loops = cycles(keys, folded(columns[lk.relationship], spec.folds_key))
        shown = columns[spec.target_key].to_pylist()
        for i, path in loops.items():
            reasons[i] = reasons[i] or (CYCLE, cycle_message([shown[j] for j in path],
                                                             f"{spec.target}.{lk.name}"))


def fingerprint(spec: SyncSpec, ready: pa.Table) -> str:
    """Identifies a prepared table (sync, columns, keys in order, and the rows' hashes when
    it has them): a retried load with the same fingerprint resumes the jobs already submitted
    for it, and never a job that carried other values of the same keys."""
    h = hashlib.sha256(f"{spec.name}|{spec.target}|{','.join(spec.target_columns)}".encode())
    for chunk in ready.column(spec.target_key).chunks:
        h.update(joined_text(chunk, "\x1f"))
    if HASH in ready.column_names:
        h.update(ready.column(HASH).combine_chunks().to_numpy(zero_copy_only=False).tobytes())
    return h.hexdigest()[:32]
