"""The sync state: per sync and external id, what Core holds — its Salesforce Id and a hash
of the values it was sent (``sync.changes.row_hashes``) — or why the org refused it.

It is written only from the org's own results of a load (``record``), never from what was
merely sent, in one transaction per partition: a crash before or during the write leaves the
rows unrecorded, and they are sent again. It is keyed by external id (folded like the sync's
ranges), not by partition, so a new plan neither reloads everything nor loses a key. It lives
in the ledger's database, which every run worker reaches (SQLite in the state dir for the
embedded instance, the instance's PostgreSQL in production).

Each row's ``status``: ``loaded`` (Core holds it, with ``row_hash``), ``refused`` (the org
refused it for its content: not sent again while its source hashes the same), ``retry``
(its error can heal without a source change: sent again next run) or ``drifted`` (the checks
found it missing from Core or different there: sent again next run). A row recorded under
another ``mapping`` (the sync's mapping fingerprint) reads as ``stale``: it is sent again like
an unknown row, and still counts as a record Core holds (so its deletion is not lost).
"""

from __future__ import annotations

import datetime as dt
import io
import time
from itertools import repeat

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from pyarrow import csv
from sqlalchemy.dialects import postgresql, sqlite

from .keys import in_range
from .ledger import Ledger
from .plan import KeyRange

_META = sa.MetaData()
# the key compares byte for byte everywhere (as Arrow and the plan's ranges do), any length
KEY = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
STATE = sa.Table(
    "dc_to_core_sync_state", _META,
    sa.Column("sync", sa.String(128), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("sf_id", sa.String(18)),
    sa.Column("row_hash", sa.BigInteger, nullable=False),
    sa.Column("mapping", sa.String(32), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("error_code", sa.String(64)),
    sa.Column("updated_at", sa.String(32), nullable=False),
    # what Core held right after a load when it differed from what was sent (the org's own
    # rewrite): while Core still holds exactly that, the row has not drifted
    sa.Column("core_hash", sa.BigInteger),
    sqlite_with_rowid=False,  # a range is read off the primary key alone: 4x faster
)
SCHEMA = pa.schema([("key", pa.string()), ("sf_id", pa.string()), ("row_hash", pa.int64()),
                    ("status", pa.string()), ("error_code", pa.string())])
KNOWN = pa.schema([f for f in SCHEMA if f.name != "sf_id"])  # what a diff reads
LOADED, REFUSED, RETRY = "loaded", "refused", "retry"
DRIFTED = "drifted"  # like retry: the checks found it missing from Core or different there
DELETING = "deleting"  # gone from the source; its delete waits or was refused (sync.deletes)
STALE = "stale"  # read only: recorded under another mapping, so sent again (still in Core)


class SyncState:
    """The state of every sync, in the ledger's database."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def engine(self) -> sa.Engine:
        engine = self.ledger.engine()
        if not getattr(engine, "_dc_to_core_state", False):
            for attempt in range(3):
                try:
                    _META.create_all(engine)
                    _add_missing_columns(engine)
                    break
                except (sa.exc.IntegrityError, sa.exc.ProgrammingError,
                        sa.exc.OperationalError):
                    if attempt == 2:  # two workers creating or widening it at once
                        raise
                    time.sleep(0.2)
            engine._dc_to_core_state = True  # type: ignore[attr-defined]
        return engine

    def read_range(self, sync: str, r: KeyRange, fold: bool, mapping: str) -> pa.Table:
        """The recorded rows of ``r`` (KNOWN: keys as the sync folds them, without the
        Salesforce Ids); a row recorded under another ``mapping`` has status ``stale``."""
        c = STATE.c
        status = sa.case((c.mapping == mapping, c.status), (c.status == DELETING, c.status),
                         else_=sa.literal(STALE))
        query = sa.select(c.key, c.row_hash, status, c.error_code).where(c.sync == sync)
        if r.start is not None:
            query = query.where(c.key >= r.start)
        if r.end is not None:
            query = query.where(c.key < r.end)
        rows = _fetch_tuples(self.engine(), query)
        table = pa.table([pa.array([row[i] for row in rows], f.type)  # the fastest transpose
                          for i, f in enumerate(KNOWN)], schema=KNOWN)
        return table.filter(in_range(table.column("key"), r, fold))  # exact, whatever the DB

    def record(self, sync: str, mapping: str, rows: pa.Table) -> int:
        """Write ``rows`` (SCHEMA) in one transaction; a row without a Salesforce Id keeps
        the one already recorded, a key given twice is written once, as upserting its rows
        one after the other would leave it. Returns the rows written (one per key)."""
        if rows.num_rows == 0:
            return 0
        now = stamp()
        engine = self.engine()
        rows = _last_per_key(rows.take(pc.sort_indices(rows, [("key", "ascending")])))
        n = rows.num_rows  # in key order: one lock order for every writer
        if engine.dialect.name == "postgresql":  # through psycopg2 (Ledger.engine)
            with engine.begin() as conn:
                _copy_upsert(conn.connection.dbapi_connection, sync, mapping, now, rows)
            return n
        insert = sqlite.insert(STATE)
        upsert = insert.on_conflict_do_update(
            index_elements=[STATE.c.sync, STATE.c.key],
            set_={"sf_id": sa.func.coalesce(insert.excluded.sf_id, STATE.c.sf_id),
                  "row_hash": insert.excluded.row_hash, "mapping": insert.excluded.mapping,
                  "status": insert.excluded.status, "error_code": insert.excluded.error_code,
                  "updated_at": insert.excluded.updated_at, "core_hash": sa.null()})
        given = {"sync": repeat(sync, n), "mapping": repeat(mapping, n),
                 "updated_at": repeat(now, n), "core_hash": repeat(None, n),
                 **{c: rows.column(c).to_pylist() for c in SCHEMA.names}}
        names = [c.name for c in STATE.columns]  # the order the compiled INSERT lists them
        values = zip(*(given[c] for c in names), strict=True)  # one tuple a row, lazily
        with engine.begin() as conn:  # SQLite: the DB-API directly, 5x faster for 250,000
            sql = str(upsert.compile(dialect=engine.dialect, column_keys=names))
            conn.connection.dbapi_connection.cursor().executemany(sql, values)
        return n

    def mark_retry(self, sync: str, keys: list[str], recorded_before: str | None = None,
                   status: str = RETRY) -> int:
        """Mark recorded keys as to be sent again (``retry``), keeping their Salesforce Id:
        before rows go to the org (a crash after the org applied them but before ``record``
        must not leave their old hash standing), and for rows the checks found missing from
        Core or different there (``status`` ``drifted``) — only those recorded before
        ``recorded_before`` (a ``stamp``), when given: a row this run just loaded that
        differs is the org's doing, and sending it again would not change that."""
        done, ordered = 0, sorted(set(keys))  # one lock order for every writer
        with self.engine().begin() as conn:
            for i in range(0, len(ordered), 500):
                where = [STATE.c.sync == sync, STATE.c.key.in_(ordered[i:i + 500])]
                if recorded_before is not None:
                    where.append(STATE.c.updated_at < recorded_before)
                done += conn.execute(STATE.update().where(*where).values(
                    status=status, updated_at=stamp())).rowcount
        return done

    def forget(self, sync: str, keys: list[str]) -> int:
        """Remove recorded keys (records deleted from Core); returns the rows removed."""
        done, ordered = 0, sorted(set(keys))
        with self.engine().begin() as conn:
            for i in range(0, len(ordered), 500):
                done += conn.execute(STATE.delete().where(
                    STATE.c.sync == sync, STATE.c.key.in_(ordered[i:i + 500]))).rowcount
        return done

    def recorded_since(self, sync: str, keys: list[str], since: str) -> set[str]:
        """Which of ``keys`` were recorded as loaded at or after ``since`` (a ``stamp``):
        loaded by the run that started then."""
        return set(self._of_keys(sync, keys, STATE.c.status, STATE.c.updated_at >= since,
                                 STATE.c.status == LOADED))

    def core_hashes(self, sync: str, keys: list[str]) -> dict[str, int]:
        """{key: core_hash} of the given keys that have one."""
        return self._of_keys(sync, keys, STATE.c.core_hash, STATE.c.core_hash.is_not(None))

    def _of_keys(self, sync: str, keys: list[str], column: sa.Column,
                 *where: sa.ColumnElement[bool]) -> dict:
        """{key: ``column``} of the given keys whose rows meet ``where``, 500 keys a query."""
        out: dict = {}
        with self.engine().connect() as conn:
            for i in range(0, len(keys), 500):
                out.update(conn.execute(sa.select(STATE.c.key, column).where(
                    STATE.c.sync == sync, STATE.c.key.in_(keys[i:i + 500]), *where)).all())
        return out

    def set_core_hashes(self, sync: str, hashes: dict[str, int]) -> None:
        """Record what Core holds for rows the org rewrote right after their load."""
        if not hashes:
            return
        update = STATE.update().where(STATE.c.sync == sa.bindparam("s"),
                                      STATE.c.key == sa.bindparam("k")).values(
            core_hash=sa.bindparam("h"))
        with self.engine().begin() as conn:  # one statement, executed for every key
            conn.execute(update, [{"s": sync, "k": k, "h": v} for k, v in sorted(hashes.items())])

    def salesforce_ids(self, sync: str, keys: list[str]) -> dict[str, str]:
        """{key: Salesforce Id} of the given recorded keys that have one."""
        return self._of_keys(sync, keys, STATE.c.sf_id, STATE.c.sf_id.is_not(None))

    def keys(self, sync: str) -> int:
        with self.engine().connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(STATE).where(
                STATE.c.sync == sync)).scalar_one())


_INCOMING = "dc_to_core_state_in"
_COPY_UPSERT = f"""
INSERT INTO {STATE.name} AS s (sync, key, sf_id, row_hash, mapping, status, error_code,
                               updated_at, core_hash)
SELECT %(sync)s, key, sf_id, row_hash, %(mapping)s, status, error_code, %(now)s, NULL
FROM {_INCOMING} ORDER BY key
ON CONFLICT (sync, key) DO UPDATE SET
  sf_id = coalesce(excluded.sf_id, s.sf_id), row_hash = excluded.row_hash,
  mapping = excluded.mapping, status = excluded.status, error_code = excluded.error_code,
  updated_at = excluded.updated_at, core_hash = NULL"""


def _copy_upsert(dbapi: object, sync: str, mapping: str, now: str, rows: pa.Table) -> None:
    """``rows`` (SCHEMA, one per key) upserted on PostgreSQL through psycopg2 in the
    caller's transaction: COPY of pyarrow's CSV into a temporary table (the database user
    needs the TEMP privilege), then one INSERT … ON CONFLICT from it in key order (a quarter
    of a million rows cost the client a fraction of a second instead of a parameter dict per
    row)."""
    body = io.BytesIO()
    csv.write_csv(rows.select(SCHEMA.names), body,
                  csv.WriteOptions(include_header=False, quoting_style="all_valid"))
    body.seek(0)  # every value quoted, nulls empty and unquoted: PostgreSQL's CSV NULL
    with dbapi.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute(f'CREATE TEMPORARY TABLE {_INCOMING} (key text COLLATE "C", sf_id '
                       "text, row_hash bigint, status text, error_code text) ON COMMIT DROP")
        cursor.copy_expert(f"COPY {_INCOMING} (key, sf_id, row_hash, status, error_code) "
                           "FROM STDIN WITH (FORMAT csv, ENCODING 'UTF8')", body)
        cursor.execute(_COPY_UPSERT, {"sync": sync, "mapping": mapping, "now": now})


def _last_per_key(rows: pa.Table) -> pa.Table:
    """``rows`` (sorted by key) with each key once, as upserting them one after the other
    would leave it: its last row, with the last Salesforce Id given (one INSERT … ON
    CONFLICT cannot touch a row twice)."""
    if pc.count_distinct(rows.column("key")).as_py() == rows.num_rows:
        return rows
    last = [(c, "last", pc.ScalarAggregateOptions(skip_nulls=c == "sf_id"))
            for c in SCHEMA.names if c != "key"]
    folded = rows.group_by("key", use_threads=False).aggregate(last)  # keeps the row order
    return folded.rename_columns([n.removesuffix("_last") for n in folded.column_names]
                                 ).select(SCHEMA.names)


def _add_missing_columns(engine: sa.Engine) -> None:
    """A state table created by an earlier version gains the columns added since."""
    have = {c["name"] for c in sa.inspect(engine).get_columns(STATE.name)}
    with engine.begin() as conn:
        for column in STATE.columns:
            if column.name not in have:
                kind = column.type.compile(dialect=engine.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {STATE.name} ADD COLUMN {column.name} {kind}")


def stamp(at: dt.datetime | None = None) -> str:
    """A UTC time as the state records it (fixed width, so stamps compare as text)."""
    return (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def _fetch_tuples(engine: sa.Engine, query: sa.Select) -> list[tuple]:
    """The rows of ``query`` as plain tuples from the DB-API cursor (SQLAlchemy's Row objects
    cost more than the read itself at 250,000 rows)."""
    compiled = query.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile":
                                                                     True})
    if engine.dialect.paramstyle in ("qmark", "format", "numeric"):
        params: object = tuple(compiled.params[k] for k in compiled.positiontup or ())
    else:
        params = compiled.params
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(str(compiled), params)
        return cursor.fetchall()
    finally:
        raw.close()


def state_rows(keys: pa.Array, sf_ids: pa.Array, hashes: pa.Array, statuses: pa.Array,
               codes: pa.Array) -> pa.Table:
    """A SCHEMA table from its columns."""
    return pa.table([keys, sf_ids, hashes, statuses, codes], schema=SCHEMA)


def status_counts(table: pa.Table) -> dict[str, int]:
    counts = pc.value_counts(table.column("status"))
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(),
                    strict=True))
