"""What one 200-row DML transaction does to the org's tables.

``plan_txn`` runs when the transaction starts: it resolves parents and existing records and
says which locks every row needs. ``commit_txn`` runs once the locks are settled: it upserts
the rows that got their locks and records a result for every row of the transaction, in one
SQLite transaction together with the job's counters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .clock import EmulatedClock
from .ids import IdGenerator
from .storage import Storage, quote_ident
from .validation import NA, UNCHANGED, HeaderPlan, RowBlock, sf_error

LOCK_ERROR = sf_error("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")


@dataclass
class TxnPlan:
    positions: list[int]                         # positions in the chunk's RowBlock
    errors: dict[int, str] = field(default_factory=dict)
    parent_ids: dict[str, dict[int, str | None]] = field(default_factory=dict)  # ref field
    existing: dict[int, str] = field(default_factory=dict)      # position -> Id (update)
    row_locks: dict[int, list[str]] = field(default_factory=dict)

    @property
    def lock_keys(self) -> list[str]:
        return sorted({k for keys in self.row_locks.values() for k in keys})


def lookup(conn: sqlite3.Connection, obj: str, key: str, values: Iterable[str]) -> dict[str, str]:
    """{key value: Id} of the records of ``obj`` whose ``key`` is one of ``values``."""
    wanted = list(values)
    out: dict[str, str] = {}
    for i in range(0, len(wanted), 500):
        part = wanted[i:i + 500]
        marks = ",".join("?" * len(part))
        sql = (f"SELECT {quote_ident(key)}, Id FROM {quote_ident(obj)} "
               f"WHERE {quote_ident(key)} IN ({marks})")
        out.update(conn.execute(sql, part).fetchall())
    return out


def plan_txn(conn: sqlite3.Connection, plan: HeaderPlan, block: RowBlock,
             positions: Sequence[int]) -> TxnPlan:
    txn = TxnPlan(list(positions))
    errors = txn.errors
    for p in positions:
        if block.errors[p]:
            errors[p] = block.errors[p]
    live = [p for p in positions if p not in errors]
    for col, ref in plan.references.items():
        values = block.parents[col]
        wanted = {values[p] for p in live if values[p] not in ("", NA)}
        found = lookup(conn, ref.target, ref.key, wanted) if wanted else {}
        ids: dict[int, str | None] = {}
        for p in live:
            v = values[p]
            if v == NA:
                ids[p] = None
            elif v and v not in found:
                errors[p] = sf_error("INVALID_CROSS_REFERENCE_KEY", (
                    f"Foreign key external ID: {v} not found for field {ref.key} in entity "
                    f"{ref.target}"))
            elif v:
                ids[p] = found[v]
        txn.parent_ids[ref.field.name] = ids
    live = [p for p in live if p not in errors]
    txn.existing = _existing(conn, plan, block, live, errors)
    obj = plan.obj
    for p in live:
        if p in errors:
            continue
        if p not in txn.existing and block.insert_errors[p]:
            errors[p] = block.insert_errors[p]
            continue
        keys = [f"{obj.name}:{txn.existing[p]}"] if p in txn.existing else []
        for ref in plan.references.values():
            parent = txn.parent_ids[ref.field.name].get(p)
            if parent and ref.field.locks_parent:
                keys.append(f"{ref.target}:{parent}")
        txn.row_locks[p] = keys
    return txn


def _existing(conn: sqlite3.Connection, plan: HeaderPlan, block: RowBlock, live: list[int],
              errors: dict[int, str]) -> dict[int, str]:
    """position -> Id of the record each live row updates or deletes (absent: insert)."""
    op, obj, keys = plan.operation, plan.obj, block.key_values
    if op == "insert" or not live:
        return {}
    by_id = op != "upsert" or (plan.key_field or "").lower() == "id"
    wanted = {keys[p] for p in live if keys[p]}
    found = lookup(conn, obj.name, "Id", wanted) if by_id else lookup(
        conn, obj.name, plan.key_field or "", wanted)
    found_ci = {k[:15]: v for k, v in found.items()} if by_id else {}
    out = {}
    for p in live:
        k = keys[p]
        record = found.get(k) or (found_ci.get(k[:15]) if by_id and k else None)
        if record:
            out[p] = record
        elif op in ("update", "delete", "hardDelete") or (by_id and op == "upsert" and k):
            errors[p] = sf_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
    return out


@dataclass
class Outcome:
    committed: int = 0
    failed: int = 0
    lock_failed: int = 0


def commit_txn(storage: Storage, ids: IdGenerator, job_id: str, plan: HeaderPlan,
               block: RowBlock, txn: TxnPlan, failed_locks: set[str]) -> Outcome:
    """Write the rows whose locks were all obtained; record every row's result."""
    results: list[tuple] = []
    out = Outcome()
    ok: list[int] = []
    for p in txn.positions:
        row = block.rows[p]
        error = txn.errors.get(p)
        if error is None and failed_locks and any(k in failed_locks for k in txn.row_locks[p]):
            error = LOCK_ERROR
            out.lock_failed += 1
        if error is not None:
            results.append((job_id, row, txn.existing.get(p), None, error))
        else:
            ok.append(p)
    conn = storage.core
    with storage.write_lock:
        conn.execute("BEGIN")
        try:
            results += _write(conn, ids, job_id, plan, block, txn, ok)
            conn.executemany("INSERT OR REPLACE INTO ingest_result VALUES (?,?,?,?,?)", results)
            out.failed = sum(1 for r in results if r[4] is not None)
            out.committed = len(results) - out.failed
            conn.execute("UPDATE ingest_job SET processed=processed+?, failed=failed+? WHERE id=?",
                         (len(results), out.failed, job_id))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return out


def _write(conn: sqlite3.Connection, ids: IdGenerator, job_id: str, plan: HeaderPlan,
           block: RowBlock, txn: TxnPlan, ok: list[int]) -> list[tuple]:
    obj = plan.obj
    table = quote_ident(obj.name)
    if plan.operation in ("delete", "hardDelete"):
        conn.executemany(f"DELETE FROM {table} WHERE Id=?", [(txn.existing[p],) for p in ok])
        return [(job_id, block.rows[p], txn.existing[p], 0, None) for p in ok]
    if plan.operation == "upsert" and ok:  # re-check: a concurrent job may have inserted since
        txn.existing.update({p: i for p, i in _existing(conn, plan, block, ok, {}).items()})
    stamp = EmulatedClock.stamp()
    columns = list(block.values) + list(txn.parent_ids)
    results = []
    inserts, updates = [], {}
    for p in ok:
        values = [block.values[c][p] for c in block.values]
        values += [txn.parent_ids[c].get(p, UNCHANGED) for c in txn.parent_ids]
        record = txn.existing.get(p)
        if record is None:
            record = ids.next()
            inserts.append((record, stamp, stamp, stamp,
                            *[None if v is UNCHANGED else v for v in values]))
        else:
            sig = tuple(i for i, v in enumerate(values) if v is not UNCHANGED)
            updates.setdefault(sig, []).append((stamp, stamp, *[values[i] for i in sig], record))
        results.append((job_id, block.rows[p], record, int(p not in txn.existing), None))
    if inserts:
        names = ", ".join(quote_ident(c) for c in
                          ["Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", *columns])
        marks = ",".join("?" * (4 + len(columns)))
        results = _insert(conn, f"INSERT INTO {table} ({names}) VALUES ({marks})", inserts,
                          results, plan)
    for sig, rows in updates.items():
        sets = ", ".join(f"{quote_ident(columns[i])}=?" for i in sig)
        conn.executemany(f"UPDATE {table} SET LastModifiedDate=?, SystemModstamp=?"
                         f"{', ' if sets else ''}{sets} WHERE Id=?", rows)
    return results


def _insert(conn: sqlite3.Connection, sql: str, rows: list[tuple], results: list[tuple],
            plan: HeaderPlan) -> list[tuple]:
    """Insert; rows that break the external id's uniqueness fail with DUPLICATE_VALUE."""
    conn.execute("SAVEPOINT ins")
    try:
        conn.executemany(sql, rows)
        conn.execute("RELEASE ins")
        return results
    except sqlite3.IntegrityError:
        conn.execute("ROLLBACK TO ins")
        conn.execute("RELEASE ins")
    failed = set()
    for row in rows:
        try:
            conn.execute(sql, row)
        except sqlite3.IntegrityError:
            failed.add(row[0])
    field_name = plan.key_field or (plan.obj.external_ids or ["Id"])[0]
    return [r if r[2] not in failed else (r[0], r[1], None, None, sf_error(
        "DUPLICATE_VALUE", f"duplicate value found: {field_name} duplicates value on record",
        [field_name])) for r in results]
