"""``DataCloud``: Data Cloud reads into Arrow — keyset pages of an external id range,
counts, range statistics and quantiles — over the Connect ``ssot/query-sql`` API (default) or
the tenant Query API v2."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Literal
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from .datacloud_arrow import (
    UNPARSED,
    combine,
    from_arrow_stream,
    schema_from_connect,
    schema_from_v2,
    to_batch,
)
from .errors import SalesforceError, SourceValueError
from .sqltext import sql_identifier, sql_literal
from .throttle import Progress, throttled
from .transport import SalesforceApi

FINISHED = {"FINISHED", "RESULTSPRODUCED"}
FAILED = {"FAILED", "ERROR", "CANCELLED", "CANCELED"}


FOLDED = "dc_to_core__key_folded"  # alias of a page's folded key, dropped from what is read


def key_expression(key: str, fold: bool = False) -> str:
    """The key as ranges compare it: the column itself, or ``LOWER(column)`` for an external
    id that Salesforce matches ignoring case (so ``OPP-X`` and ``opp-x`` fall together)."""
    k = sql_identifier(key)
    return f"LOWER({k})" if fold else k


def range_condition(key: str, start: str | None, end: str | None, fold: bool = False) -> str:
    """``[start, end)`` over ``key`` (folded when ``fold``); an open start also takes rows
    whose key is NULL, so together the ranges of a plan cover every row."""
    bounded = _bounds(key, start, end, fold)
    return f"({sql_identifier(key)} IS NULL OR {bounded})" if start is None else bounded


def _bounds(key: str, start: str | None, end: str | None, fold: bool) -> str:
    """``[start, end)`` over the key's non-null values."""
    e = key_expression(key, fold)
    parts = ([f"{e} >= {sql_literal(start)}"] if start is not None else []) + (
        [f"{e} < {sql_literal(end)}"] if end is not None else [])
    return "(" + (" AND ".join(parts) or "1 = 1") + ")"


class DataCloud(SalesforceApi):
    """Reads Data Cloud objects (``*__dlm``) into Arrow record batches."""
    api: Literal["query-sql", "v2"] = Field(default="query-sql",
                                            description="query-sql (Connect, current) or v2")
    arrow_stream: bool = Field(default=False, description="v2 only: ask for Arrow IPC pages "
                               "(enable-arrow-stream) instead of JSON rows.")
    page_rows: int = Field(default=50_000, description="Rows per keyset page.")
    poll_wait_ms: int = Field(default=10_000, description="Long-poll wait for slow queries.")
    query_timeout_s: float = Field(default=3600.0, description="Give up on a query after.")

    # -- whole statements -----------------------------------------------------------------------
    def query(self, sql: str) -> Iterator[pa.RecordBatch]:
        """Every row of one SELECT, following capped responses, one batch per response."""
        yield from (self._query_v2(sql) if self.api == "v2" else self._query_sql(sql))

    def query_table(self, sql: str) -> pa.Table:
        return combine(list(self.query(sql)))

    def _query_v2(self, sql: str) -> Iterator[pa.RecordBatch]:
        c = self.client()
        headers = {"enable-arrow-stream": "true"} if self.arrow_stream else {}
        body = c.request("POST", "/api/v2/query", kind="dc", json={"sql": sql},
                         headers=headers).json()
        schema = schema_from_v2(body.get("metadata") or {})
        while True:
            if "arrowStream" in body:
                yield from from_arrow_stream(body["arrowStream"], schema)
            else:
                yield to_batch(body.get("data") or [], schema)
            if body.get("done", True) or not body.get("nextBatchId"):
                return
            body = c.request("GET", f"/api/v2/query/{body['nextBatchId']}", kind="dc",
                             headers=headers).json()

    def _query_sql(self, sql: str) -> Iterator[pa.RecordBatch]:
        c = self.client()
        base = c.data_path("ssot/query-sql")
        body = c.request("POST", base, json={"sql": sql}).json()
        status = body.get("status") or body
        query_id = status.get("queryId")
        deadline = time.monotonic() + self.query_timeout_s
        while _state(status) not in FINISHED:
            if _state(status) in FAILED:
                raise SalesforceError(f"Data Cloud query {query_id} ended "
                                      f"{status.get('completionStatus')}: {sql[:200]}")
            if time.monotonic() > deadline:
                raise SalesforceError(f"Data Cloud query {query_id} still running after "
                                      f"{self.query_timeout_s:.0f} s")
            polled = c.request("GET", f"{base}/{query_id}",
                               params={"waitTimeMs": self.poll_wait_ms}).json()
            status = polled.get("status") or polled
        total = int(status.get("rowCount") or 0)
        metadata = body.get("metadata") or []
        got = len(body.get("data") or [])
        if got:
            yield to_batch(body["data"], schema_from_connect(metadata))
        while got < total or not metadata:
            page = c.request("GET", f"{base}/{query_id}/rows", params={
                "offset": got, "rowLimit": self.page_rows,
                "omitSchema": "true" if metadata else "false"}).json()
            metadata = metadata or page.get("metadata") or []
            rows = page.get("data") or []
            if not rows:
                if got < total:
                    raise SalesforceError(f"Data Cloud query {query_id} returned {got} of "
                                          f"{total} rows")
                break
            got += len(rows)
            yield to_batch(rows, schema_from_connect(metadata))
        if not got and metadata:
            yield to_batch([], schema_from_connect(metadata))

    # -- ranges -----------------------------------------------------------------------------------
    def read_range(self, object_name: str, columns: list[str], key: str, start: str | None,
                   end: str | None, page_rows: int | None = None, fold: bool = False,
                   progress: Progress | None = None) -> Iterator[pa.RecordBatch]:
        """Rows of ``object_name`` with ``start <= key < end`` (the key folded to lower case
        when ``fold``; NULL keys when start is open), in key order, keyset-paged
        (``key > last``, never OFFSET). Rows sharing a key are never split or lost across
        pages. ``progress`` is told the rows read so far (throttled)."""
        where = (f"{object_name} [{'-inf' if start is None else start}, "
                 f"{'+inf' if end is None else end})")
        with throttled(progress) as report:
            rows = 0
            for batch in self._range_batches(object_name, columns, key, start, end,
                                             page_rows, fold):
                rows += batch.num_rows
                if report:
                    report(f"{where}: {rows:,} rows read so far")
                yield batch
            if report:
                report(f"{where}: {rows:,} rows read, done")

    def _range_batches(self, object_name: str, columns: list[str], key: str,
                       start: str | None, end: str | None, page_rows: int | None, fold: bool
                       ) -> Iterator[pa.RecordBatch]:
        size = page_rows or self.page_rows
        cols = list(dict.fromkeys([key, *columns]))
        select = ", ".join(sql_identifier(c) for c in cols)
        table, k = sql_identifier(object_name), sql_identifier(key)
        e = key_expression(key, fold)
        where = _bounds(key, start, end, fold)  # NULL keys are read on their own, first
        if start is None:
            yield from self.query(f"SELECT {select} FROM {table} WHERE {k} IS NULL")
        last: str | None = None
        while True:
            after = f" AND {e} > {sql_literal(last)}" if last is not None else ""
            page = self.query_table(f"SELECT {select}, {e} AS {sql_identifier(FOLDED)} FROM "
                                    f"{table} WHERE {where} AND {k} IS NOT NULL{after} "
                                    f"ORDER BY {e} LIMIT {size}")
            if page.num_rows == 0:
                return
            last = page.column(FOLDED)[page.num_rows - 1].as_py()
            keep = cols + [UNPARSED] * (UNPARSED in page.column_names)  # flags travel along
            if page.num_rows < size:
                yield from page.select(keep).to_batches()
                return
            # the page may end inside a run of equal keys: re-read that key whole
            head = page.filter(pc.not_equal(page.column(FOLDED), last))
            yield from head.select(keep).to_batches()
            yield from self.query(f"SELECT {select} FROM {table} WHERE {e} = "
                                  f"{sql_literal(last)}")

    def columns(self, object_name: str) -> dict[str, str] | None:
        """The object's columns and their Data Cloud types (``/api/v1/metadata``), or None
        when Data Cloud does not know the object."""
        c = self.client()
        body = c.request("GET", f"/api/v1/metadata?entityName={quote(object_name, safe='')}",
                         kind="dc").json()
        for entity in body.get("metadata") or []:
            if str(entity.get("name", "")).lower() == object_name.lower():
                return {f["name"]: str(f.get("type", "")) for f in entity.get("fields") or []}
        return None

    def keys_present(self, object_name: str, key: str, keys: list[str], fold: bool = False
                     ) -> set[str]:
        """Which of ``keys`` (folded when ``fold``) Data Cloud holds, in any range."""
        found: set[str] = set()
        e = key_expression(key, fold)
        for i in range(0, len(keys), 500):
            values = ", ".join(sql_literal(v) for v in keys[i:i + 500])
            sql = (f"SELECT DISTINCT {e} AS k FROM {sql_identifier(object_name)} "
                   f"WHERE {e} IN ({values})")
            found.update(self.query_table(sql).column("k").to_pylist())
        return found

    def count_range(self, object_name: str, key: str, start: str | None, end: str | None,
                    fold: bool = False) -> int:
        sql = (f"SELECT COUNT(*) AS n FROM {sql_identifier(object_name)} "
               f"WHERE {range_condition(key, start, end, fold)}")
        return int(self.query_table(sql).column("n")[0].as_py())

    def range_stats(self, object_name: str, key: str, start: str | None, end: str | None,
                    modified: str, fold: bool = False) -> tuple[int, dt.datetime | None]:
        """(row count, latest ``modified`` value) of a range: what a change sensor watches."""
        sql = (f"SELECT COUNT(*) AS n, MAX({sql_identifier(modified)}) AS m FROM "
               f"{sql_identifier(object_name)} WHERE {range_condition(key, start, end, fold)}")
        row = self.query_table(sql).to_pylist()[0]
        latest = row["m"]
        if isinstance(latest, str):
            try:
                latest = pc.cast(pa.array([latest]).cast(pa.string()),
                                 pa.timestamp("us", tz="UTC"))[0].as_py()
            except (pa.ArrowInvalid, ValueError):
                raise self._bad_value(object_name, key, start, end, modified, latest,
                                      fold) from None
        return int(row["n"]), latest

    def _bad_value(self, object_name: str, key: str, start: str | None, end: str | None,
                   column: str, value: str, fold: bool) -> SourceValueError:
        sql = (f"SELECT {sql_identifier(key)} AS k FROM {sql_identifier(object_name)} WHERE "
               f"{range_condition(key, start, end, fold)} AND {sql_identifier(column)} = "
               f"{sql_literal(value)} LIMIT 1")
        keys = self.query_table(sql).column("k").to_pylist() if value else []
        return SourceValueError(
            f"{object_name}.{column} holds {value!r}, which is not a timestamp (row "
            f"{key} = {keys[0] if keys else '?'!r}); fix the value in Data Cloud")

    def quantiles(self, object_name: str, key: str, n: int, fold: bool = False) -> list[str]:
        """``n - 1`` boundaries splitting the non-null keys (folded when ``fold``) into ``n``
        near-equal ranges."""
        if n < 2:
            return []
        k, e = sql_identifier(key), key_expression(key, fold)
        sql = (f"SELECT MIN(k) AS b FROM (SELECT {e} AS k, NTILE({int(n)}) OVER (ORDER BY {e}) "
               f"AS t FROM {sql_identifier(object_name)} WHERE {k} IS NOT NULL) s GROUP BY t "
               "ORDER BY b")
        starts = [v for v in self.query_table(sql).column("b").to_pylist() if v is not None]
        return sorted(set(starts[1:]))


def _state(status: dict) -> str:
    return str(status.get("completionStatus", "")).upper().replace("_", "")
