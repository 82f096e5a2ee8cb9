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


def read_result_csv(data: bytes) -> pa.Table:
    """A result CSV as string columns ('' for empty cells)."""
    if not data.strip():
        return pa.table({})
    names = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")]))
    return pacsv.read_csv(io.BytesIO(data), parse_options=pacsv.ParseOptions(
        newlines_in_values=True), convert_options=pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, strings_can_be_null=False,
        quoted_strings_can_be_null=False))


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
    job_id: str
    successful: pa.Table
    failed: pa.Table
    unprocessed: pa.Table

    @property
    def reported(self) -> int:
        return self.successful.num_rows + self.failed.num_rows + self.unprocessed.num_rows


def join_outcomes(uploaded: pa.Table, key: str, results: JobResults) -> pa.Table:
    """One OUTCOME row per row of ``uploaded`` (the job's rows as CSV text, in order)."""
    n = uploaded.num_rows
    status: list[str | None] = [None] * n
    sf_id: list[str | None] = [None] * n
    created: list[bool | None] = [None] * n
    code: list[str | None] = [None] * n
    message: list[str | None] = [None] * n
    keys = uploaded.column(key).combine_chunks() if key in uploaded.column_names else None
    ambiguous = _ambiguous(keys) if keys is not None else [True] * n
    for kind, table in ((LOADED, results.successful), (FAILED, results.failed),
                        (UNPROCESSED, results.unprocessed)):
        if table.num_rows == 0:
            continue
        picked = _match(uploaded, key, keys, ambiguous, table, status)
        ids = table.column("sf__Id").to_pylist() if "sf__Id" in table.column_names else None
        flags = table.column("sf__Created").to_pylist() if kind == LOADED else None
        errors = table.column("sf__Error").to_pylist() if kind == FAILED else None
        for i, r in picked:
            status[i] = kind
            sf_id[i] = (ids[r] or None) if ids else None
            if flags is not None:
                created[i] = flags[r] == "true"
            if errors is not None:
                code[i], message[i] = parse_error(errors[r])
    for i in range(n):
        if status[i] is None:
            status[i], code[i] = UNPROCESSED, "NOT_REPORTED"
            message[i] = f"job {results.job_id} reported no result for this row"
    return pa.table([status, sf_id, created, code, message, [results.job_id] * n],
                    schema=OUTCOME)


def _ambiguous(keys: pa.Array) -> list[bool]:
    counts = pc.value_counts(keys)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    blank = pc.or_(pc.equal(keys, ""), pc.equal(keys, NA))
    return pc.or_(blank, pc.is_in(keys, value_set=repeated)).to_pylist()


def _match(uploaded: pa.Table, key: str, keys: pa.Array | None, ambiguous: list[bool],
           table: pa.Table, status: list) -> list[tuple[int, int]]:
    """(input row, result row) pairs for one result file."""
    pairs: list[tuple[int, int]] = []
    if keys is not None and key in table.column_names:
        index = pc.index_in(keys, value_set=table.column(key).combine_chunks()).to_pylist()
        pairs = [(i, r) for i, r in enumerate(index)
                 if r is not None and not ambiguous[i] and status[i] is None]
    if any(a and s is None for a, s in zip(ambiguous, status, strict=True)):
        pairs += _match_by_content(uploaded, ambiguous, table, status)
    return pairs


def _match_by_content(uploaded: pa.Table, ambiguous: list[bool], table: pa.Table,
                      status: list) -> list[tuple[int, int]]:
    cols = [c for c in uploaded.column_names if c in table.column_names]
    if not cols:
        return []
    sig = list(zip(*[table.column(c).to_pylist() for c in cols], strict=True))
    free: dict[tuple, list[int]] = defaultdict(list)
    for r, s in enumerate(sig):
        free[s].append(r)
    mine = list(zip(*[uploaded.column(c).to_pylist() for c in cols], strict=True))
    pairs = []
    for i, s in enumerate(mine):
        if ambiguous[i] and status[i] is None and free.get(s):
            pairs.append((i, free[s].pop(0)))
    return pairs
