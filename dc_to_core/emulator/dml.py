"""What one 200-row DML transaction does to the org's tables.

``plan_txn`` runs when the transaction starts: it resolves parents and existing records and
says which locks every row needs. ``commit_txn`` runs once the locks are settled: it refuses
the rows that would close a hierarchy loop, upserts the rows that got their locks and records
a result for every row of the transaction, in one SQLite transaction together with the job's
counters.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .clock import EmulatedClock
from .hierarchy import loop_errors
from .ids import IdGenerator
from .schema import CoreObject, OrgSchema
from .storage import Storage, nocase, quote_ident
from .validation import NA, UNCHANGED, HeaderPlan, RowBlock, sf_error

DELETES = ("delete", "hardDelete")
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


def lookup(conn: sqlite3.Connection, obj: str, key: str, values: Iterable[str],
           folds_case: bool = False) -> dict[str, str]:
    """{requested value: Id} of the records of ``obj`` whose ``key`` is one of ``values``;
    a key that is not case-sensitive matches ignoring case (``opp-1`` finds ``OPP-1``)."""
    wanted = list(values)
    fold = nocase if folds_case else None
    out: dict[str, str] = {}
    for i in range(0, len(wanted), 500):
        part = wanted[i:i + 500]
        marks = ",".join("?" * len(part))
        sql = (f"SELECT {quote_ident(key)}, Id FROM {quote_ident(obj)} "
               f"WHERE {quote_ident(key)} IN ({marks})")
        found = dict(conn.execute(sql, part).fetchall())
        if fold is None:
            out.update(found)
        else:
            ids = {fold(k): v for k, v in found.items()}
            out.update((v, ids[fold(v)]) for v in part if fold(v) in ids)
    return out


ParentCache = dict[tuple[str, str], dict[str, str]]


def plan_txn(conn: sqlite3.Connection, plan: HeaderPlan, block: RowBlock,
             positions: Sequence[int], parents: ParentCache) -> TxnPlan:
    """Resolve parents (cached per chunk; misses are looked up again) and existing records."""
    txn = TxnPlan(list(positions))
    errors = txn.errors
    for p in positions:
        if block.errors[p]:
            errors[p] = block.errors[p]
    live = [p for p in positions if p not in errors]
    for col, ref in plan.references.items():
        values = block.parents[col]
        found = parents.setdefault((ref.target, ref.key), {})
        missing = {values[p] for p in live if values[p] not in ("", NA)} - found.keys()
        if missing:
            found.update(lookup(conn, ref.target, ref.key, missing, ref.folds_case))
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
        if p in txn.existing and block.update_errors and block.update_errors[p]:
            errors[p] = block.update_errors[p]
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
    wanted = {keys[p] for p in live if keys[p] and keys[p] != NA}
    if by_id:
        found = lookup(conn, obj.name, "Id", wanted)
    else:
        key_field = obj.field(plan.key_field or "")
        found = lookup(conn, obj.name, plan.key_field or "", wanted,
                       key_field is not None and key_field.folds_case)
    found_ci = {k[:15]: v for k, v in found.items()} if by_id else {}
    binned = _in_recycle_bin(conn, wanted - set(found)) if op in DELETES else set()
    out = {}
    for p in live:
        k = keys[p]
        record = found.get(k) or (found_ci.get(k[:15]) if by_id and k else None)
        if record:
            out[p] = record
        elif op == "upsert" and not by_id and k in ("", NA):  # #N/A is Bulk's null: no key
            errors[p] = sf_error("MISSING_ARGUMENT", f"{plan.key_field} not specified")
        elif op in DELETES and k[:15] in binned:
            errors[p] = sf_error("ENTITY_IS_DELETED", "entity is deleted")
        elif op in ("update", *DELETES) or (by_id and op == "upsert" and k and k != NA):
            errors[p] = sf_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
    return out


def _in_recycle_bin(conn: sqlite3.Connection, ids: set[str]) -> set[str]:
    """The 15-character Ids of ``ids`` that are in the recycle bin."""
    wanted, out = sorted(ids), set()
    for i in range(0, len(wanted), 500):
        part = wanted[i:i + 500]
        out.update(r[0][:15] for r in conn.execute(
            f"SELECT id FROM recycle_bin WHERE substr(id, 1, 15) IN "
            f"({','.join('?' * len(part))})", [v[:15] for v in part]))
    return out


@dataclass
class Outcome:
    committed: int = 0
    failed: int = 0
    lock_failed: int = 0


def commit_txn(storage: Storage, ids: IdGenerator, job_id: str, plan: HeaderPlan,
               block: RowBlock, txn: TxnPlan, failed_locks: set[str],
               running_user: str | None = None) -> Outcome:
    """Write the rows whose locks were all obtained; record every row's result. A lookup to
    User the org defaults on create (``OwnerId``) is ``running_user`` when not given."""
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
    with storage.write_lock:  # inside the engine's batch transaction, if one is open
        conn.execute("SAVEPOINT txn")
        try:
            if plan.operation not in DELETES:
                loops = loop_errors(conn, plan.obj, block, txn.parent_ids, txn.existing, ok)
                results += [(job_id, block.rows[p], txn.existing.get(p), None, e)
                            for p, e in loops.items()]
                ok = [p for p in ok if p not in loops]
            results += _write(conn, ids, job_id, plan, block, txn, ok, storage.schema,
                              running_user)
            storage.write_results(job_id, [r[1:] for r in results])
            out.failed = sum(1 for r in results if r[4] is not None)
            out.committed = len(results) - out.failed
            conn.execute("UPDATE ingest_job SET processed=processed+?, failed=failed+? WHERE id=?",
                         (len(results), out.failed, job_id))
            conn.execute("RELEASE txn")
        except BaseException:
            conn.execute("ROLLBACK TO txn")
            conn.execute("RELEASE txn")
            raise
    return out


def _write(conn: sqlite3.Connection, ids: IdGenerator, job_id: str, plan: HeaderPlan,
           block: RowBlock, txn: TxnPlan, ok: list[int], schema: OrgSchema,
           running_user: str | None) -> list[tuple]:
    obj = plan.obj
    table = quote_ident(obj.name)
    if plan.operation in DELETES:
        delete_records(conn, plan.obj, [txn.existing[p] for p in ok],
                       to_bin=plan.operation == "delete", schema=schema)
        return [(job_id, block.rows[p], txn.existing[p], 0, None) for p in ok]
    columns = list(block.values) + list(txn.parent_ids)
    inserts = [p for p in ok if p not in txn.existing]
    failed: dict[int, str] = {}
    if inserts:
        inserts, failed = _insert(conn, ids, table, columns, plan, block, txn, inserts,
                                  running_user)
    created = set(inserts)
    stamp = EmulatedClock.stamp()
    updates: dict[tuple, list[tuple]] = {}
    for p in ok:
        if p in txn.existing and p not in failed and p not in created:
            values = _row_values(block, txn, p)
            sig = tuple(i for i, v in enumerate(values) if v is not UNCHANGED)
            updates.setdefault(sig, []).append(
                (stamp, stamp, *[values[i] for i in sig], txn.existing[p]))
    for sig, rows in updates.items():
        sets = ", ".join(f"{quote_ident(columns[i])}=?" for i in sig)
        conn.executemany(f"UPDATE {table} SET LastModifiedDate=?, SystemModstamp=?"
                         f"{', ' if sets else ''}{sets} WHERE Id=?", rows)
    return [(job_id, block.rows[p], None, None, failed[p]) if p in failed else
            (job_id, block.rows[p], txn.existing[p], int(p in created), None) for p in ok]


def _row_values(block: RowBlock, txn: TxnPlan, p: int) -> list:
    values = [block.values[c][p] for c in block.values]
    values += [txn.parent_ids[c].get(p, UNCHANGED) for c in txn.parent_ids]
    return values


def _insert_values(block: RowBlock) -> list[tuple]:
    """Per row of the block, its field values for an INSERT (unchanged → NULL), built once."""
    if block.insert_tuples is None:
        columns = [[None if v is UNCHANGED else v for v in block.values[c]] for c in block.values]
        block.insert_tuples = list(zip(*columns, strict=True)) if columns else [
            ()] * len(block.rows)
    return block.insert_tuples


def _defaulted(obj: CoreObject, columns: list[str], running_user: str | None
               ) -> tuple[list[int], list[str]]:
    """What the org fills in on insert: (positions in ``columns`` to fill when null, fields
    to add). A lookup to User defaulted on create (``OwnerId``) takes the running user."""
    if running_user is None:
        return [], []
    names = [f.name for f in obj.fields.values()
             if f.defaulted_on_create and f.type == "reference" and f.to == "User"]
    return ([i for i, c in enumerate(columns) if c in names],
            [n for n in names if n not in columns])


def _insert(conn: sqlite3.Connection, ids: IdGenerator, table: str, columns: list[str],
            plan: HeaderPlan, block: RowBlock, txn: TxnPlan, positions: list[int],
            running_user: str | None) -> tuple[list[int], dict[int, str]]:
    """Insert new records. A key another job inserted meanwhile makes an upsert row an update;
    for an insert job it is a DUPLICATE_VALUE. Returns (inserted positions, {pos: error})."""
    fill, added = _defaulted(plan.obj, columns, running_user)
    names = ", ".join(quote_ident(c) for c in
                      ["Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", *columns,
                       *added])
    sql = (f"INSERT INTO {table} ({names}) VALUES "
           f"({','.join('?' * (4 + len(columns) + len(added)))})")
    stamp = EmulatedClock.stamp()

    base = _insert_values(block)
    parents = [txn.parent_ids[c] for c in txn.parent_ids]
    defaults = (running_user,) * len(added)

    def rows(ps: list[int]) -> list[tuple]:
        new = ids.take(len(ps))
        out = []
        for p, record in zip(ps, new, strict=True):
            txn.existing[p] = record
            values = (*base[p], *(ids_of.get(p) for ids_of in parents))
            if fill:
                values = tuple(running_user if i in fill and v is None else v
                               for i, v in enumerate(values))
            out.append((record, stamp, stamp, stamp, *values, *defaults))
        return out

    conn.execute("SAVEPOINT ins")
    try:
        conn.executemany(sql, rows(positions))
        conn.execute("RELEASE ins")
        return positions, {}
    except sqlite3.IntegrityError:
        conn.execute("ROLLBACK TO ins")
        conn.execute("RELEASE ins")
        for p in positions:
            txn.existing.pop(p, None)
    errors: dict[int, str] = {}
    if plan.operation == "upsert":
        txn.existing.update(_existing(conn, plan, block, positions, errors))
        positions = [p for p in positions if p not in txn.existing]
    inserted = []
    for p in positions:
        try:
            conn.execute(sql, rows([p])[0])
            inserted.append(p)
        except sqlite3.IntegrityError:
            txn.existing.pop(p, None)
            key = plan.key_field or (plan.obj.external_ids or ["Id"])[0]
            errors[p] = sf_error("DUPLICATE_VALUE", f"duplicate value found: {key} duplicates "
                                 "value on record", [key])
    return inserted, errors


def delete_records(conn: sqlite3.Connection, obj: CoreObject, ids: list[str], to_bin: bool,
                   schema: OrgSchema | None = None) -> None:
    """Delete records as Salesforce does: ``delete`` keeps them in the recycle bin,
    ``hardDelete`` purges them; the children of a locking (master-detail) reference go with
    their parent, a plain lookup to them is cleared."""
    if not ids:
        return
    table = quote_ident(obj.name)
    marks = ",".join("?" * len(ids))
    if to_bin:
        cols = [c[1] for c in conn.execute(f"PRAGMA table_info({table})")]
        stamp = EmulatedClock.stamp()
        rows = conn.execute(f"SELECT {', '.join(quote_ident(c) for c in cols)} FROM {table} "
                            f"WHERE Id IN ({marks})", ids).fetchall()
        conn.executemany("INSERT OR REPLACE INTO recycle_bin VALUES (?, ?, ?, ?)", [
            (r[0], obj.name, stamp, json.dumps(dict(zip(cols, r, strict=True)), default=str))
            for r in rows])
    conn.execute(f"DELETE FROM {table} WHERE Id IN ({marks})", ids)
    for child in (schema.core.values() if schema else ()):
        for ref in child.fields.values():
            if ref.type != "reference" or ref.to != obj.name:
                continue
            where = f"{quote_ident(ref.name)} IN ({marks})"
            if ref.locks_parent:  # master-detail: the children go too
                kids = [r[0] for r in conn.execute(
                    f"SELECT Id FROM {quote_ident(child.name)} WHERE {where}", ids)]
                for i in range(0, len(kids), 500):
                    delete_records(conn, child, kids[i:i + 500], to_bin, schema)
            else:
                conn.execute(f"UPDATE {quote_ident(child.name)} SET {quote_ident(ref.name)} = "
                             f"NULL WHERE {where}", ids)
