"""SQLite files of one emulated org, kept in a data dir that survives restarts.

- ``datacloud.db``: Data Cloud objects (``*__dlm``) as real tables, queried with the client's SQL,
  plus ``dc_column`` recording each column's declared Data Cloud type.
- ``core.db``: Core sObject tables (unique index on every external id), ingest jobs and their
  per-row results, tokens, usage counters and the clock origin. One file, so a transaction that
  writes records also writes their results atomically. Text columns that are not
  case-sensitive are ``COLLATE NOCASE``, so SOQL comparisons, ordering and the unique index
  ignore case as Salesforce does (ASCII letters only: SQLite's NOCASE folds no others).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from .ids import IdGenerator
from .schema import SYSTEM_FIELDS, CoreObject, DcColumn, OrgSchema, SchemaError

SQLITE_AFFINITY = {
    "VARCHAR": "TEXT", "DECIMAL": "NUMERIC", "TIMESTAMP": "TEXT", "DATE": "TEXT",
    "BOOLEAN": "INTEGER", "BIGINT": "INTEGER", "DOUBLE": "REAL",
}
CORE_AFFINITY = {
    "double": "REAL", "currency": "REAL", "percent": "REAL", "int": "INTEGER",
    "boolean": "INTEGER",
}

ORG_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ingest_job (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, object TEXT NOT NULL, operation TEXT NOT NULL,
    external_id_field TEXT, state TEXT NOT NULL, line_ending TEXT NOT NULL,
    column_delimiter TEXT NOT NULL, api_version REAL NOT NULL, created_date TEXT NOT NULL,
    system_modstamp TEXT NOT NULL, upload_bytes INTEGER NOT NULL DEFAULT 0,
    rows_total INTEGER NOT NULL DEFAULT 0, processed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, retries INTEGER NOT NULL DEFAULT 0,
    total_ms INTEGER NOT NULL DEFAULT 0, api_ms INTEGER NOT NULL DEFAULT 0,
    apex_ms INTEGER NOT NULL DEFAULT 0, error_message TEXT, closed_emu REAL,
    started_emu REAL, ended_emu REAL, batches INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ingest_result (
    job_id TEXT NOT NULL, first_row INTEGER NOT NULL, results TEXT NOT NULL,
    PRIMARY KEY (job_id, first_row)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recycle_bin (
    id TEXT PRIMARY KEY, object TEXT NOT NULL, deleted_date TEXT NOT NULL, record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS token (
    token TEXT PRIMARY KEY, kind TEXT NOT NULL, client_id TEXT NOT NULL,
    expires_emu REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS usage (
    kind TEXT NOT NULL, minute INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (kind, minute)
) WITHOUT ROWID;
"""

DC_DDL = """
CREATE TABLE IF NOT EXISTS dc_column (
    tbl TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, precision INTEGER,
    scale INTEGER, position INTEGER NOT NULL, PRIMARY KEY (tbl, name)
);
"""


def quote_ident(name: str) -> str:
    """A SQLite/ANSI identifier, double-quoted with inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def unicode_lower(value: object) -> object:
    """SQL ``LOWER`` as Data Cloud computes it, for every letter (SQLite's folds ASCII only);
    one code point per code point, as Arrow's ``utf8_lower`` does."""
    if not isinstance(value, str):
        return value
    if value.isascii():
        return value.lower()
    return "".join(ch.lower()[0] for ch in value)  # İ → i, not i + combining dot


def dc_functions(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Give a ``datacloud.db`` connection Data Cloud's ``LOWER`` (also what the folded-key
    index is built from, so every connection to that file needs it)."""
    conn.create_function("lower", 1, unicode_lower, deterministic=True)
    return conn


def connect(path: Path) -> sqlite3.Connection:
    """A connection tuned for one writer and many readers (WAL, autocommit mode)."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-65536")
    return conn


def core_columns(obj: CoreObject) -> list[tuple[str, str]]:
    """(column, SQLite type) of an sObject table: system fields first, then its fields."""
    cols = [("Id", "TEXT NOT NULL PRIMARY KEY")] + [(f, "TEXT") for f in SYSTEM_FIELDS[1:]]
    cols += [(f.name, CORE_AFFINITY.get(f.type, "TEXT") + " COLLATE NOCASE" * f.folds_case)
             for f in obj.fields.values()]
    return cols


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def nocase(value: str) -> str:
    """The form SQLite's NOCASE collation compares (ASCII letters folded to lower case): how
    the emulated org matches values of a text field that is not case-sensitive."""
    return value.translate(_ASCII_LOWER)


class Storage:
    """Opens (creating if needed) the data dir of one org."""

    def __init__(self, data_dir: str | Path, schema: OrgSchema) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "jobs").mkdir(exist_ok=True)
        self.schema = schema
        self.core_path = self.data_dir / "core.db"
        self.dc_path = self.data_dir / "datacloud.db"
        self.write_lock = threading.RLock()
        self.core = connect(self.core_path)
        self.dc = dc_functions(connect(self.dc_path))
        self._local = threading.local()
        self._ids: dict[str, IdGenerator] = {}
        self.core.executescript(ORG_DDL)
        self.dc.executescript(DC_DDL)
        for obj in schema.core.values():
            self._create_core_table(obj)
        for table, cols in schema.datacloud.items():
            self.create_dc_table(table, list(cols.values()))

    # -- connections -------------------------------------------------------------------------
    def reader(self, db: str = "core") -> sqlite3.Connection:
        """A read connection private to the calling thread."""
        conns = self._local.__dict__.setdefault("conns", {})
        if db not in conns:
            conns[db] = connect(self.core_path) if db == "core" else dc_functions(
                connect(self.dc_path))
        return conns[db]

    def close(self) -> None:
        self.core.close()
        self.dc.close()

    def ids(self, obj: str) -> IdGenerator:
        """The record Ids of a Core object, continuing after its highest Id; one generator per
        object for everything that writes through this storage (the org's Bulk engine, the
        seed), so their records never share an Id."""
        with self.write_lock:
            if obj not in self._ids:
                row = self.core.execute(f"SELECT max(Id) FROM {quote_ident(obj)}").fetchone()
                last = IdGenerator.sequence_of(row[0]) if row and row[0] else 0
                self._ids[obj] = IdGenerator(self.schema.core[obj].key_prefix, last)
            return self._ids[obj]

    # -- DDL -------------------------------------------------------------------------------
    def _create_core_table(self, obj: CoreObject) -> None:
        cols = ", ".join(f"{quote_ident(c)} {t}" for c, t in core_columns(obj))
        table = quote_ident(obj.name)
        ddl = f"CREATE TABLE {table} ({cols})"
        with self.write_lock:
            found = self.core.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND "
                                      "name = ?", (obj.name,)).fetchone()
            if found is None:
                self.core.execute(ddl)
            elif found[0] != ddl:  # a data dir of another schema (fields, case sensitivity)
                self._rebuild_core_table(obj, ddl)
            for ext in obj.external_ids:
                index = quote_ident(f"ux_{obj.name}_{ext}")
                self.core.execute(
                    f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} ({quote_ident(ext)})"
                )
            # No index on reference fields: reads go by external id, and a random-order
            # index on AccountId would halve the insert rate of the emulated org.

    def _rebuild_core_table(self, obj: CoreObject, ddl: str) -> None:
        """Bring a table written under another schema to this one, keeping its records (SQLite
        cannot change a column's collation in place)."""
        table, old = quote_ident(obj.name), quote_ident(f"{obj.name}__previous")
        had = {r[1] for r in self.core.execute(f"PRAGMA table_info({table})")}
        kept = ", ".join(quote_ident(c) for c, _ in core_columns(obj) if c in had)
        self.core.execute("BEGIN")
        try:
            self.core.execute(f"ALTER TABLE {table} RENAME TO {old}")
            self.core.execute(ddl)
            self.core.execute(f"INSERT INTO {table} ({kept}) SELECT {kept} FROM {old}")
            self.core.execute(f"DROP TABLE {old}")
            for ext in obj.external_ids:
                index = quote_ident(f"ux_{obj.name}_{ext}")
                self.core.execute(f"CREATE UNIQUE INDEX {index} ON {table} ({quote_ident(ext)})")
            self.core.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            self.core.execute("ROLLBACK")
            raise SchemaError(f"{self.core_path}: {obj.name} holds external ids that differ "
                              f"only in case, which its schema now declares one key ({exc}); "
                              "start this org on a new data dir") from None

    def create_dc_table(self, table: str, columns: Sequence[DcColumn]) -> None:
        """Create a Data Cloud object (idempotent; columns the table lacks are added) and
        record its declared column types."""
        if not table.endswith(("__dlm", "__dll", "__cio")):
            raise ValueError(f"Data Cloud object names end __dlm, __dll or __cio: {table!r}")
        cols = ", ".join(f"{quote_ident(c.name)} {SQLITE_AFFINITY[c.type]}" for c in columns)
        with self.write_lock:
            self.dc.execute("BEGIN")
            self.dc.execute(f"CREATE TABLE IF NOT EXISTS {quote_ident(table)} ({cols})")
            had = {r[1] for r in self.dc.execute(f"PRAGMA table_info({quote_ident(table)})")}
            for c in columns:
                if c.name not in had:
                    self.dc.execute(f"ALTER TABLE {quote_ident(table)} ADD COLUMN "
                                    f"{quote_ident(c.name)} {SQLITE_AFFINITY[c.type]}")
            for pos, c in enumerate(columns):
                self.dc.execute(
                    "INSERT OR REPLACE INTO dc_column VALUES (?,?,?,?,?,?)",
                    (table, c.name, c.type, c.precision, c.scale, pos),
                )
            key = next((c.name for c in columns if c.name.lower() == "externalid__c"), None)
            if key:
                index, column = quote_ident(f"ix_{table}_{key}"), quote_ident(key)
                self.dc.execute(
                    f"CREATE INDEX IF NOT EXISTS {index} ON {quote_ident(table)} ({column})")
                folded = quote_ident(f"ix_{table}_{key}_folded")  # ranges of a folded key
                self.dc.execute(f"CREATE INDEX IF NOT EXISTS {folded} ON {quote_ident(table)} "
                                f"(lower({column}))")
            self.dc.execute("COMMIT")

    def dc_columns(self) -> dict[str, dict[str, DcColumn]]:
        """Declared columns of every Data Cloud object, in table order."""
        out: dict[str, dict[str, DcColumn]] = {}
        rows = self.reader("dc").execute(
            "SELECT tbl, name, type, precision, scale FROM dc_column ORDER BY tbl, position"
        )
        for tbl, name, typ, precision, scale in rows:
            out.setdefault(tbl, {})[name] = DcColumn(name, typ, precision, scale)
        return out

    def insert_dc_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
        """Bulk-insert rows into a Data Cloud object; returns the number inserted."""
        names = ", ".join(quote_ident(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {quote_ident(table)} ({names}) VALUES ({marks})"
        with self.write_lock:
            self.dc.execute("BEGIN")
            cur = self.dc.executemany(sql, rows)
            self.dc.execute("COMMIT")
        return cur.rowcount

    # -- ingest results (one row per DML transaction: a JSON list of per-row results) --------
    def write_results(self, job_id: str, results: list[tuple]) -> None:
        """Store ``(row, sf_id, created, error)`` tuples of one transaction (caller locks)."""
        if results:
            self.core.execute("INSERT OR REPLACE INTO ingest_result VALUES (?, ?, ?)",
                              (job_id, results[0][0], json.dumps(results)))

    def read_results(self, job_id: str) -> list[tuple]:
        """Every recorded ``(row, sf_id, created, error)`` of a job, by row."""
        out: list[tuple] = []
        for (packed,) in self.reader().execute(
                "SELECT results FROM ingest_result WHERE job_id=?", (job_id,)):
            out.extend(tuple(r) for r in json.loads(packed))
        out.sort()
        return out

    # -- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.reader().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.write_lock:
            self.core.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
