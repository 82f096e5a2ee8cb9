"""Bulk job results (successful / failed / unprocessed CSVs) joined back to the input rows.

Rows are matched by the upsert key as uploaded. A key that is blank or repeated in the job is
matched by the whole echoed row instead, so every input row gets exactly one outcome; a row
the org never reported (it should not happen) is marked ``unprocessed`` for resubmission.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .bulk_csv import NA

LOADED, FAILED, UNPROCESSED = "loaded", "failed", "unprocessed"
OUTCOME = pa.schema([("status", pa.string()), ("sf_id", pa.string()), ("created", pa.bool_()),
                     ("error_code", pa.string()), ("error_message", pa.string()),
                     ("job_id", pa.string())])
_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def csv_header(data: bytes) -> list[str]:
    """The field names in a CSV's first line."""
    return next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")]))


def read_result_csv(data: bytes, columns: list[str] | None = None) -> pa.Table:
    """A result CSV as string columns ('' for empty cells); only ``columns`` if given."""
    if not data.strip():
        return pa.table({})
    names = csv_header(data)
    wanted = [n for n in names if columns is None or n in columns]
    return pacsv.read_csv(io.BytesIO(data), parse_options=pacsv.ParseOptions(
        newlines_in_values=True), convert_options=pacsv.ConvertOptions(
        column_types={n: pa.string() for n in wanted}, include_columns=wanted,
        strings_can_be_null=False, quoted_strings_can_be_null=False))


def parse_error(text: str) -> tuple[str, str]:
    """``CODE:message:fields --`` → (code, message)."""
    s = text.strip()
    if s.endswith("--"):
        s = s[:-2].rstrip()
    code, sep, rest = s.partition(":")
    if not sep or not _CODE.match(code):
        return "UNKNOWN_ERROR", text.strip()
    message, sep, _fields = rest.rpartition(":")
    return code, (message if sep else rest).strip()


@dataclass
class JobResults:
    """A job's three result files; ``raw`` keeps their bytes for a full parse on demand."""

    job_id: str
    successful: pa.Table
    failed: pa.Table
    unprocessed: pa.Table
    raw: dict[str, bytes] | None = None

    @classmethod
    def parse(cls, job_id: str, raw: dict[str, bytes], key: str) -> JobResults:
        """Parse only what matching by key needs (sf__ columns and the key)."""
        wanted = ["sf__Id", "sf__Created", "sf__Error", key]
        return cls(job_id, read_result_csv(raw["successful"], wanted),
                   read_result_csv(raw["failed"], wanted),
                   read_result_csv(raw["unprocessed"], wanted), raw)

    def full(self) -> JobResults:
        """Every echoed column (for rows matched by content)."""
        if self.raw is None:
            return self
        return JobResults(self.job_id, *(read_result_csv(self.raw[k]) for k in (
            "successful", "failed", "unprocessed")))

    @property
    def reported(self) -> int:
        return self.successful.num_rows + self.failed.num_rows + self.unprocessed.num_rows


def join_outcomes(uploaded: pa.Table | None, key: str, results: JobResults,
                  full_rows: Callable[[], pa.Table]) -> pa.Table:
    """One OUTCOME row per uploaded row, in upload order. ``uploaded`` holds the key column as
    uploaded (CSV text); ``full_rows`` gives every uploaded column, needed only to match rows
    whose key is blank or repeated."""
    if uploaded is None or key not in uploaded.column_names:
        uploaded = full_rows()
    n = uploaded.num_rows
    keys = uploaded.column(key).combine_chunks() if key in uploaded.column_names else None
    ambiguous = _ambiguous(keys) if keys is not None else pa.array([True] * n)
    cols = {"status": pa.nulls(n, pa.string()), "sf_id": pa.nulls(n, pa.string()),
            "created": pa.nulls(n, pa.bool_()), "error_code": pa.nulls(n, pa.string()),
            "error_message": pa.nulls(n, pa.string())}
    files = [(LOADED, results.successful), (FAILED, results.failed),
             (UNPROCESSED, results.unprocessed)]
    for kind, table in files:
        if table.num_rows and keys is not None and key in table.column_names:
            idx = pc.index_in(keys, value_set=table.column(key).combine_chunks())
            hit = pc.and_(pc.and_(pc.is_valid(idx), pc.invert(ambiguous)),
                          pc.is_null(cols["status"]))
            _fill(cols, kind, table, pc.if_else(hit, idx, pa.scalar(None, idx.type)))
    if pc.any(pc.and_(ambiguous, pc.is_null(cols["status"]))).as_py():
        whole = results.full()
        _fill_ambiguous(cols, full_rows(), ambiguous, [
            (LOADED, whole.successful), (FAILED, whole.failed), (UNPROCESSED, whole.unprocessed)])
    missing = pc.is_null(cols["status"])
    cols["status"] = pc.if_else(missing, UNPROCESSED, cols["status"])
    cols["error_code"] = pc.if_else(missing, "NOT_REPORTED", cols["error_code"])
    cols["error_message"] = pc.if_else(
        missing, f"job {results.job_id} reported no result for this row", cols["error_message"])
    cols["job_id"] = pa.array([results.job_id] * n, pa.string())
    return pa.table(cols, schema=OUTCOME)


def _per_result_row(kind: str, table: pa.Table) -> dict[str, pa.Array]:
    """Outcome values of each row of one result file."""
    out: dict[str, pa.Array] = {"status": pa.array([kind] * table.num_rows, pa.string())}
    if "sf__Id" in table.column_names:
        ids = table.column("sf__Id").combine_chunks()
        out["sf_id"] = pc.if_else(pc.equal(ids, ""), pa.scalar(None, pa.string()), ids)
    if kind == LOADED:
        out["created"] = pc.equal(table.column("sf__Created").combine_chunks(), "true")
    if kind == FAILED:
        parsed = [parse_error(e) for e in table.column("sf__Error").to_pylist()]
        out["error_code"] = pa.array([p[0] for p in parsed], pa.string())
        out["error_message"] = pa.array([p[1] for p in parsed], pa.string())
    return out


def _fill(cols: dict[str, pa.Array], kind: str, table: pa.Table, idx: pa.Array) -> None:
    """Where ``idx`` is set, take that result row's values."""
    for name, values in _per_result_row(kind, table).items():
        cols[name] = pc.coalesce(cols[name], pc.take(values, idx))


def _ambiguous(keys: pa.Array) -> pa.Array:
    counts = pc.value_counts(keys)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    blank = pc.or_(pc.equal(keys, ""), pc.equal(keys, NA))
    return pc.fill_null(pc.or_(blank, pc.is_in(keys, value_set=repeated)), True)


def _fill_ambiguous(cols: dict[str, pa.Array], uploaded: pa.Table, ambiguous: pa.Array,
                    files: list[tuple[str, pa.Table]]) -> None:
    """Match rows with a blank or repeated key by their whole echoed content."""
    n = uploaded.num_rows
    idx: dict[str, list[int | None]] = {kind: [None] * n for kind, _ in files}
    taken = pc.is_valid(cols["status"]).to_pylist()
    wanted = [a and not t for a, t in zip(ambiguous.to_pylist(), taken, strict=True)]
    for kind, table in files:
        shared = [c for c in uploaded.column_names if c in table.column_names]
        if not table.num_rows or not shared:
            continue
        free: dict[tuple, list[int]] = defaultdict(list)
        for r, sig in enumerate(zip(*[table.column(c).to_pylist() for c in shared],
                                    strict=True)):
            free[sig].append(r)
        mine = zip(*[uploaded.column(c).to_pylist() for c in shared], strict=True)
        for i, sig in enumerate(mine):
            if wanted[i] and free.get(sig):
                idx[kind][i] = free[sig].pop(0)
                wanted[i] = False
    for kind, table in files:
        if any(v is not None for v in idx[kind]):
            _fill(cols, kind, table, pa.array(idx[kind], pa.int32()))
