"""Data Cloud SQL over the emulator's ``datacloud.db``, for both query API generations.

Queries run read-only with the client's own SQL (double-quoted identifiers, single-quoted
literals). Result sets are kept server-side for paging: the v2 API hands out ``nextBatchId``s,
the Connect ``ssot/query-sql`` API pages by row offset.
"""

from __future__ import annotations

import base64
import re
import sqlite3
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from .clock import EmulatedClock
from .errors import ApiError
from .profile import FaultProfile
from .schema import DcColumn
from .storage import dc_functions

V2_TYPES = {"VARCHAR": ("VARCHAR", 12), "DECIMAL": ("DECIMAL", 3), "TIMESTAMP": ("TIMESTAMP", 93),
            "DATE": ("DATE", 91), "BOOLEAN": ("BOOLEAN", 16), "BIGINT": ("BIGINT", -5),
            "DOUBLE": ("DOUBLE", 8)}
CONNECT_TYPES = {"VARCHAR": "Varchar", "DECIMAL": "Numeric", "TIMESTAMP": "TimestampTZ",
                 "DATE": "Date", "BOOLEAN": "Boolean", "BIGINT": "BigInt", "DOUBLE": "Double"}
MAX_KEPT = 64


class DcQueryError(ApiError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(status, "QUERY_ERROR", message)


@dataclass(eq=False)
class ResultSet:
    query_id: str
    columns: list[DcColumn]
    rows: list[list]
    submitted_emu: float
    ready_emu: float
    event: threading.Event = field(default_factory=threading.Event)

    def render(self, start: int, stop: int) -> list[list]:
        """Rows as JSON values: DECIMAL as strings with their scale, BOOLEAN as bool."""
        out = []
        kinds = [(c.type, c.scale) for c in self.columns]
        for row in self.rows[start:stop]:
            out.append([_json_value(v, t, s) for v, (t, s) in zip(row, kinds, strict=True)])
        return out


def _json_value(value: object, kind: str, scale: int | None) -> object:
    if value is None:
        return None
    if kind == "DECIMAL":
        if isinstance(value, str):
            return value
        return f"{Decimal(str(value)):.{scale or 0}f}" if scale is not None else str(value)
    if kind == "BOOLEAN":
        return bool(value)
    if kind == "BIGINT":
        return int(value)  # type: ignore[call-overload]
    if kind == "DOUBLE":
        return float(value)  # type: ignore[arg-type]
    return value if isinstance(value, str) else str(value)


def quoted_identifiers(sql: str) -> tuple[list[str], set[str]]:
    """Double-quoted identifiers in ``sql`` (string literals skipped) and the names it defines
    as aliases (``AS "x"`` / ``AS x``)."""
    found, aliases = [], set()
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            j = i + 1
            while j < n:
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            if ch == '"':
                found.append(sql[i + 1:j].replace('""', '"'))
            i = j + 1
        else:
            i += 1
    for m in re.finditer(r'(?i)\bas\s+(?:"((?:[^"]|"")*)"|([A-Za-z_][A-Za-z0-9_]*))', sql):
        aliases.add((m.group(1) or m.group(2) or "").replace('""', '"'))
    return found, aliases


def _infer(name: str, values: list, declared: dict[str, DcColumn]) -> DcColumn:
    """The Data Cloud type of a result column: declared if it is a column (possibly inside
    MIN/MAX), else inferred from its values."""
    if name in declared:
        d = declared[name]
        return DcColumn(name, d.type, d.precision, d.scale)
    m = re.fullmatch(r'(?i)\s*(min|max)\(\s*"?([^")]+)"?\s*\)\s*', name)
    if m and m.group(2) in declared:
        d = declared[m.group(2)]
        return DcColumn(name, d.type, d.precision, d.scale)
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool | int):
        return DcColumn(name, "BIGINT")
    if isinstance(sample, float):
        return DcColumn(name, "DOUBLE")
    return DcColumn(name, "VARCHAR")


class DataCloudQueries:
    def __init__(self, path: Path, clock: EmulatedClock, latency_ms: float,
                 faults: FaultProfile | None = None) -> None:
        self._path = path
        self._faults = faults or FaultProfile()
        self._clock = clock
        self._latency = latency_ms / 1000
        self._local = threading.local()
        self._kept: OrderedDict[str, ResultSet] = OrderedDict()
        self._batches: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self.statements = 0  # SELECTs run (what a test asserts nothing was read)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = dc_functions(sqlite3.connect(f"file:{self._path}?mode=ro", uri=True,
                                                check_same_thread=False))
            self._local.conn = conn
        return conn

    def run(self, sql: str, declared: dict[str, dict[str, DcColumn]],
            params: dict[str, object] | None = None) -> ResultSet:
        """Execute one SELECT; keep its rows for paging. SQL errors become 400s."""
        text = sql.strip().rstrip(";")
        with self._lock:
            self.statements += 1
        if not re.match(r"(?is)^\s*(select|with)\b", text):
            raise DcQueryError("Only SELECT statements are supported by the Query API")
        # SQLite reads an unknown "identifier" as a string literal; Data Cloud rejects it.
        names, aliases = quoted_identifiers(text)
        words = set(names) | set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
        known = set(declared) | {c for t, cols in declared.items() if t in words for c in cols}
        unknown = [q for q in names if q not in known and q not in aliases]
        if unknown:
            raise DcQueryError(f'Query failed: column or object "{unknown[0]}" does not exist')
        try:
            cur = self._conn().execute(text, params or {})
            rows = [list(r) for r in cur.fetchall()]
            cut = self._faults.dc_truncate_rows
            if cut and re.search(r"(?i)\blimit\s+\d+\s*$", text):  # a page, cut short
                rows = rows[:cut]
        except (sqlite3.Error, sqlite3.Warning, ValueError) as exc:
            raise DcQueryError(f"Query failed: {exc}") from None
        names = [d[0] for d in cur.description or []]
        mentioned = {c.name: c for t, cols in declared.items() if t in words
                     for c in cols.values()}
        columns = [_infer(n, [r[i] for r in rows[:50]], mentioned) for i, n in enumerate(names)]
        now = self._clock.now()
        result = ResultSet(str(uuid.uuid4()), columns, rows, now, now + self._latency)
        with self._lock:
            self._kept[result.query_id] = result
            while len(self._kept) > MAX_KEPT:
                old, _ = self._kept.popitem(last=False)
                self._batches = {k: v for k, v in self._batches.items() if v[0] != old}
        return result

    def get(self, query_id: str) -> ResultSet:
        with self._lock:
            result = self._kept.get(query_id)
        if result is None:
            raise DcQueryError(f"Query {query_id} not found or expired", status=404)
        return result

    def cancel(self, query_id: str) -> None:
        with self._lock:
            self._kept.pop(query_id, None)

    # -- v2 batches ----------------------------------------------------------------------------
    def v2_page(self, result: ResultSet, offset: int, batch_rows: int) -> dict:
        """One Query API v2 response: ``data``, ``metadata``, ``done``, ``nextBatchId``…"""
        stop = min(offset + batch_rows, len(result.rows))
        body: dict = {
            "data": result.render(offset, stop),
            "metadata": {c.name: {"type": V2_TYPES[c.type][0], "placeInOrder": i,
                                  "typeCode": V2_TYPES[c.type][1]}
                         for i, c in enumerate(result.columns)},
            "rowCount": len(result.rows), "queryId": result.query_id,
            "startTime": EmulatedClock.stamp(), "endTime": EmulatedClock.stamp(),
            "done": stop >= len(result.rows),
        }
        if not body["done"]:
            batch = str(uuid.uuid4())
            with self._lock:
                self._batches[batch] = (result.query_id, stop)
            body["nextBatchId"] = batch
        return body

    def next_batch(self, batch_id: str) -> tuple[ResultSet, int]:
        with self._lock:
            found = self._batches.pop(batch_id, None)
        if found is None:
            raise DcQueryError(f"Batch {batch_id} not found or already read", status=404)
        return self.get(found[0]), found[1]


def connect_metadata(columns: list[DcColumn]) -> list[dict]:
    return [{"name": c.name, "type": CONNECT_TYPES[c.type], "nullable": True,
             "precision": c.precision or 0, "scale": c.scale or 0} for c in columns]


def connect_status(result: ResultSet, now: float) -> dict:
    done = now >= result.ready_emu
    return {"queryId": result.query_id,
            "completionStatus": "Finished" if done else "Running",
            "progress": 1.0 if done else 0.0, "rowCount": len(result.rows) if done else 0,
            "chunkCount": 1 if done else 0, "expirationTime": EmulatedClock.stamp()}


def arrow_stream(result: ResultSet, start: int, stop: int) -> str:
    """Rows ``start:stop`` as a base64 Arrow IPC stream (the ``enable-arrow-stream`` answer)."""
    arrays, fields = [], []
    for i, c in enumerate(result.columns):
        values = [row[i] for row in result.rows[start:stop]]
        typ = _ARROW.get(c.type, pa.string())
        if c.type == "DECIMAL":
            typ = pa.decimal128(c.precision or 38, c.scale or 0)
            values = [None if v is None else Decimal(str(v)).quantize(
                Decimal(1).scaleb(-(c.scale or 0))) for v in values]
        elif c.type == "TIMESTAMP":
            values = [None if v is None else datetime.fromisoformat(str(v).replace("Z", "+00:00"))
                      for v in values]
        elif c.type == "DATE":
            values = [None if v is None else date.fromisoformat(str(v)) for v in values]
        arrays.append(pa.array(values, typ))
        fields.append(pa.field(c.name, typ))
    sink = pa.BufferOutputStream()
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return base64.b64encode(sink.getvalue().to_pybytes()).decode("ascii")


_ARROW = {"VARCHAR": pa.string(), "TIMESTAMP": pa.timestamp("ms", "UTC"), "DATE": pa.date32(),
          "BOOLEAN": pa.bool_(), "BIGINT": pa.int64(), "DOUBLE": pa.float64()}
