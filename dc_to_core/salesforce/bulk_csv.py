"""Arrow → Bulk API 2.0 CSV: Salesforce's value formats, and jobs cut at the size limit.

Values: dates ``YYYY-MM-DD``, datetimes ISO 8601 in UTC with milliseconds and ``Z``, booleans
``true``/``false``, numbers as plain decimal text, and **null as ``#N/A``** so an update clears
the field (an empty string stays an empty cell, which Salesforce reads as "leave unchanged").
Quoting is RFC 4180 (pyarrow quotes every string), UTF-8, LF line endings.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

NA = "#N/A"
MAX_JOB_BYTES = 100 * 1024 * 1024  # raw CSV; Salesforce's 150 MB limit is after base64
CHUNK_ROWS = 10_000                 # Bulk API 2.0 processes a job in chunks of this size


def bulk_text(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """One column as Salesforce CSV text (nulls become ``#N/A``)."""
    typ = column.type
    if pa.types.is_dictionary(typ):
        column, typ = pc.cast(column, typ.value_type), typ.value_type
    if pa.types.is_timestamp(typ):  # cast is much faster than strftime: "… 03:04:05.000Z"
        utc = column if typ.tz else pc.assume_timezone(column, "UTC")
        ms = pc.cast(utc, pa.timestamp("ms", tz="UTC"), safe=False)
        text = pc.replace_substring(pc.cast(ms, pa.string()), " ", "T", max_replacements=1)
    elif pa.types.is_date(typ):
        text = pc.cast(column, pa.string())
    elif pa.types.is_string(typ):
        text = column
    else:  # numbers, decimals, booleans, large strings
        text = pc.cast(column, pa.string())
    return pc.fill_null(text, NA)


def bulk_table(table: pa.Table) -> pa.Table:
    """Every column of ``table`` as Salesforce CSV text."""
    return pa.table({name: bulk_text(table.column(name)) for name in table.column_names})


def write_rows(table: pa.Table, header: bool) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=header,
                                                    quoting_style="needed"))
    return sink.getvalue()


@dataclass(frozen=True)
class JobPayload:
    """Rows ``[start, stop)`` of the input table as the CSV body of one ingest job."""

    start: int
    stop: int
    data: bytes


def split_jobs(table: pa.Table, max_bytes: int = MAX_JOB_BYTES,
               grid: int = CHUNK_ROWS) -> Iterator[JobPayload]:
    """Cut an (already ordered) table into job payloads of at most ``max_bytes`` each. Jobs
    break on the ``grid`` (the org's chunk size) so a chunk planned to hold whole parents stays
    whole; only a single chunk that is itself too big is split further."""
    text = bulk_table(table)
    header = write_rows(text.slice(0, 0), header=True)
    budget = max_bytes - len(header)
    if budget <= 0:
        raise ValueError(f"the CSV header alone ({len(header)} bytes) exceeds {max_bytes} bytes")
    parts: list[bytes] = []
    start = size = 0
    for piece_start, piece in _pieces(text, grid, budget):
        if parts and size + len(piece) > budget:
            yield JobPayload(start, piece_start, header + b"".join(parts))
            parts, size, start = [], 0, piece_start
        parts.append(piece)
        size += len(piece)
    if parts or table.num_rows == 0:
        yield JobPayload(start, table.num_rows, header + b"".join(parts))


def _pieces(text: pa.Table, grid: int, budget: int) -> Iterator[tuple[int, bytes]]:
    """(first row, CSV bytes) of each grid chunk, bisected while a chunk exceeds the budget."""
    for start in range(0, text.num_rows, grid):
        pending = [(start, min(grid, text.num_rows - start))]
        while pending:
            s, n = pending.pop(0)
            data = write_rows(text.slice(s, n), header=False)
            if len(data) <= budget:
                yield s, data
            elif n == 1:
                raise ValueError(f"row {s} alone is {len(data)} bytes of CSV, over the "
                                 f"{budget}-byte job limit")
            else:
                half = n // 2
                pending[:0] = [(s, half), (s + half, n - half)]
