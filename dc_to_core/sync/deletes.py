"""Mirroring deletes (``deletes: mirror``): records the sync state holds in a range whose key
Data Cloud no longer has are deleted from Core by Salesforce Id, with a Bulk API 2.0
``delete`` (or ``hardDelete``) job.

Safety first (``guard``, before anything of the partition is sent):

- a run never deletes more than ``max_delete_share`` of the range's known rows unless it
  carries ``ALLOW_TAG`` (a failed or empty Data Cloud read would otherwise wipe Core);
- each key to delete is looked up in Data Cloud by key: one that Data Cloud still holds means
  tonight's read was incomplete (truncated), and the run stops, deleting nothing.

Then (``delete_gone``, after the partition's upserts): the records are read back from Core by
key (their Id, and their last values for the file of deleted rows); a record that still has
children in Core through a child sync of the project waits (``deferred``) until its children
are gone — the child sync deletes or re-parents them in its own run, which follows — so a
parent is never deleted before its children, and nothing cascades. Rows Core no longer holds
are ``already_gone``. Lock failures are retried; whatever the org still refuses stays in the
state and is tried again next run.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..salesforce.bulk import BulkApi
from ..salesforce.bulk_results import LOADED, UNPROCESSED
from ..salesforce.throttle import Progress, throttled
from .budget import stop_on_quota
from .keys import as_array, folded, read_keys
from .loading import TRANSIENT_CODES
from .spec import SyncSpec
from .state import DELETING  # on file before the job; in the state: under way or waiting

ALLOW_TAG = "dc_to_core/allow_deletes"  # "true": this run may delete more than the share
GONE_CODES = ("ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY")  # not in Core any more
DELETED, ALREADY_GONE, DEFERRED = "deleted", "already_gone", "deferred"
FAILED, TRANSIENT = "failed", "transient"  # the org refused it; a lock or unprocessed row left
log = logging.getLogger("dc_to_core.sync.deletes")


class DeleteRefused(Exception):
    """Deleting tonight's candidates would be unsafe; the message says why and what to do."""


def candidates(spec: SyncSpec, source: pa.Table, state: pa.Table) -> pa.Table:
    """The state rows of the range (``key``, ``status``) whose key (as the sync folds keys
    now) tonight's read does not hold."""
    if not spec.mirrors_deletes:
        return pa.table({"key": pa.array([], pa.string()), "status": pa.array([], pa.string())})
    read = read_keys(source.column(spec.source_key), spec.folds_key)
    keys = folded(state.column("key"), spec.folds_key)
    gone = pc.invert(pc.is_in(keys, value_set=read))
    return pa.table({"key": keys.filter(gone),
                     "status": as_array(state.column("status")).filter(gone)})


def guard(spec: SyncSpec, where: str, gone: pa.Table, known: int, allowed: bool,
          present: Callable[[list[str]], set[str]]) -> None:
    """Refuse (``DeleteRefused``) a delete over the share without ``ALLOW_TAG`` — counting
    the keys found gone tonight, not those a run already set out to delete (``DELETING``) —
    or one of keys Data Cloud still holds (``present``: the keys of a list it has, folded)."""
    if not gone.num_rows:
        return
    n = int(pc.sum(pc.not_equal(gone.column("status"), DELETING)).as_py() or 0)
    share = n / known if known else 1.0
    if n and share > spec.max_delete_share and not allowed:
        raise DeleteRefused(
            f"{where}: {n} of the {known} records the sync state holds for the range are gone "
            f"from {spec.source} tonight ({share:.1%}), more than max_delete_share "
            f"({spec.max_delete_share:.0%}). Nothing was deleted or sent. If Data Cloud really "
            f"removed them, re-run the partition with the run tag {ALLOW_TAG}=true; if not, "
            "find out why the read came back short (an emptied or failed data stream) first")
    still = sorted(present(gone.column("key").to_pylist()))
    if still:
        raise DeleteRefused(
            f"{where}: tonight's read of {spec.source} left out {len(still)} rows that Data "
            f"Cloud holds (for example {', '.join(still[:3])}): the read was incomplete, so "
            "none of the range's missing keys can be trusted as deleted. Nothing was deleted "
            "or sent; re-run the partition")


@dataclass(frozen=True)
class Child:
    """A child sync's Core object and the reference field that points at this sync's target."""

    target: str
    field: str


def children_of(spec: SyncSpec, syncs: list[SyncSpec]) -> list[Child]:
    """The objects (and reference fields) of the other syncs whose lookups point at
    ``spec``'s records (a hierarchy's children are not: deleting a parent only clears their
    self-lookup)."""
    out = [Child(s.target, lk.reference_field) for s in syncs if not s.hierarchy_of
           for lk in s.lookups if lk.sync == spec.name]
    return list(dict.fromkeys(out))


def deleted_schema(spec: SyncSpec) -> pa.Schema:
    """The file of a run's deletes: one row per key gone from the source, with what became of
    it and the record's last values in Core (as text)."""
    values = [pa.field(c, pa.string()) for c in _value_columns(spec)]
    return pa.schema([("key", pa.string()), ("sf_id", pa.string()), ("status", pa.string()),
                      ("error_code", pa.string()), ("error_message", pa.string()), *values])


def _value_columns(spec: SyncSpec) -> list[str]:
    return [c for c in spec.target_columns if c != spec.target_key]


@dataclass
class Deletes:
    rows: pa.Table                # deleted_schema: one row per key gone from the source
    jobs: list[dict] = field(default_factory=list)  # the delete jobs' final infos


def delete_gone(spec: SyncSpec, bulk: BulkApi, keys: list[str], children: list[Child],
                keep: Callable[[pa.Table], object], rounds: int = 3, backoff_s: float = 20.0,
                sleep: Callable[[float], None] = time.sleep,
                before_job: Callable[[int], None] | None = None,
                progress: Progress | None = None, plan_only: bool = False) -> Deletes:
    """Delete the Core records of ``keys`` (folded keys gone from the source), saying for each
    what became of it. ``keep`` is given the records' last values before anything is deleted
    (``DELETING``), so they are on file even if the run stops during the delete.
    ``progress`` is told how the Bulk jobs (the reads of Core, the deletes) are doing.
    ``plan_only`` (a dry run): read what Core holds and which records wait for their children,
    then stop; the records that would be deleted are left ``DELETING``."""
    with throttled(progress) as report:  # one pace for all the jobs
        return _delete_gone(spec, bulk, keys, children, keep, rounds, backoff_s, sleep, report,
                            before_job, plan_only)


def _delete_gone(spec: SyncSpec, bulk: BulkApi, keys: list[str], children: list[Child],
                 keep: Callable[[pa.Table], object], rounds: int, backoff_s: float,
                 sleep: Callable[[float], None], progress: Progress | None,
                 before_job: Callable[[int], None] | None, plan_only: bool = False
                 ) -> Deletes:
    schema = deleted_schema(spec)
    if not keys:
        return Deletes(schema.empty_table())
    columns = ["Id", spec.target_key, *_value_columns(spec)]
    wanted = pa.array(keys, pa.string())
    core = bulk.read_keys(spec.target, columns, spec.target_key, keys, progress=progress)
    core = core.filter(pc.is_in(folded(core.column(spec.target_key), spec.folds_key),
                                value_set=wanted))
    ids = as_array(core.column("Id"))
    busy = _with_children(bulk, ids.to_pylist(), children, progress)
    deferred = pc.is_in(ids, value_set=pa.array(sorted(busy), pa.string()))
    todo, held = core.filter(pc.invert(deferred)), core.filter(deferred)
    found = pa.concat_tables([todo, held])
    missing = wanted.filter(pc.invert(pc.is_in(
        wanted, value_set=folded(found.column(spec.target_key), spec.folds_key))))
    n, n_def = todo.num_rows, held.num_rows
    why = (f"still has children in {', '.join(sorted({c.target for c in children}))}: "
           "deleted once they are gone")

    def rows(status: pa.Array, codes: pa.Array, messages: pa.Array) -> pa.Table:
        return _rows(spec, schema, found, missing,
                     pa.concat_arrays([status, pa.array([DEFERRED] * n_def, pa.string())]),
                     pa.concat_arrays([codes, pa.nulls(n_def, pa.string())]),
                     pa.concat_arrays([messages, pa.array([why] * n_def, pa.string())]))

    planned = rows(pa.array([DELETING] * n, pa.string()), pa.nulls(n, pa.string()),
                   pa.nulls(n, pa.string()))
    if plan_only:
        return Deletes(planned)
    keep(planned)
    jobs: list[dict] = []
    status, codes, messages = _delete(spec, bulk, as_array(todo.column("Id")), rounds,
                                      backoff_s, sleep, jobs, before_job, progress)
    return Deletes(rows(status, codes, messages), jobs)


def _rows(spec: SyncSpec, schema: pa.Schema, found: pa.Table, missing: pa.Array,
          status: pa.Array, codes: pa.Array, messages: pa.Array) -> pa.Table:
    """``deleted_schema`` rows: the records found in Core, then the keys Core lacks."""
    m = len(missing)
    out = {"key": pa.concat_arrays([folded(found.column(spec.target_key), spec.folds_key),
                                    missing]),
           "sf_id": pa.concat_arrays([as_array(found.column("Id")), pa.nulls(m, pa.string())]),
           "status": pa.concat_arrays([status, pa.array([ALREADY_GONE] * m, pa.string())]),
           "error_code": pa.concat_arrays([codes, pa.nulls(m, pa.string())]),
           "error_message": pa.concat_arrays([messages, pa.nulls(m, pa.string())])}
    for c in _value_columns(spec):
        out[c] = pa.concat_arrays([as_array(found.column(c)), pa.nulls(m, pa.string())])
    return pa.table(out, schema=schema)


def merged(earlier: pa.Table | None, now: pa.Table) -> pa.Table:
    """A retried attempt's rows with the earlier attempt's: a record the earlier attempt was
    deleting that this one finds gone was deleted by it, and keeps its last values."""
    if earlier is None or not earlier.num_rows:
        return now
    was = earlier.filter(pc.is_in(earlier.column("status"),
                                  value_set=pa.array([DELETING, DELETED])))
    gone_now = now.filter(pc.equal(now.column("status"), ALREADY_GONE))
    taken = was.filter(pc.is_in(was.column("key"), value_set=gone_now.column("key")))
    taken = taken.set_column(taken.schema.get_field_index("status"), "status",
                             pa.array([DELETED] * taken.num_rows, pa.string()))
    rest = now.filter(pc.invert(pc.is_in(now.column("key"), value_set=taken.column("key"))))
    only = earlier.filter(pc.invert(pc.is_in(earlier.column("key"), value_set=now.column("key"))))
    return pa.concat_tables([taken.cast(now.schema), rest, only.cast(now.schema)])


def _with_children(bulk: BulkApi, ids: list[str], children: list[Child],
                   progress: Progress | None) -> set[str]:
    """The Ids of ``ids`` some record of a child sync's object still points at."""
    busy: set[str] = set()
    for child in children:
        if ids:
            found = bulk.read_keys(child.target, [child.field], child.field, ids,
                                   progress=progress)
            busy.update(v[:15] for v in found.column(child.field).to_pylist() if v)
    return {i for i in ids if i[:15] in busy}


def _delete(spec: SyncSpec, bulk: BulkApi, ids: pa.Array, rounds: int, backoff_s: float,
            sleep: Callable[[float], None], jobs: list[dict],
            before_job: Callable[[int], None] | None = None,
            progress: Progress | None = None
            ) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Delete jobs for ``ids``; lock failures retried after a backoff. Per Id: its status,
    error code and message."""
    n = len(ids)
    status = pa.array([FAILED] * n, pa.string())
    codes, messages = pa.nulls(n, pa.string()), pa.nulls(n, pa.string())
    todo = pa.array(range(n), pa.int64())
    operation = "hardDelete" if spec.hard_delete else "delete"
    for r in range(rounds + 1):
        if len(todo) == 0:
            break
        if r:
            wait = backoff_s * 2 ** (r - 1) * (0.75 + random.random() / 2)
            log.info("%s: deleting %d records again after %.1f s", spec.name, len(todo), wait)
            sleep(wait)
        table = pa.table({"Id": ids.take(todo)})
        done = bulk.collect(bulk.submit(spec.target, None, table, operation,
                                        before_each=before_job), table, None,
                            progress)
        jobs += done.jobs
        stop_on_quota(f"deleting from {spec.target}", done.jobs)
        outcome = done.rows
        code = outcome.column("error_code")
        ok = pc.equal(outcome.column("status"), LOADED)
        gone = pc.fill_null(pc.is_in(code, value_set=pa.array(GONE_CODES)), False)
        again = pc.fill_null(pc.or_(pc.is_in(code, value_set=pa.array(TRANSIENT_CODES)),
                                    pc.equal(outcome.column("status"), UNPROCESSED)), False)
        now = pc.if_else(ok, DELETED, pc.if_else(gone, ALREADY_GONE, pc.if_else(
            again, TRANSIENT, FAILED)))
        at = pc.index_in(pa.array(range(n), pa.int64()), value_set=todo)
        taken = pc.is_valid(at)
        status = pc.if_else(taken, pc.take(now, at), status)
        codes = pc.if_else(taken, pc.take(pc.if_else(ok, pa.scalar(None, pa.string()), code),
                                          at), codes)
        messages = pc.if_else(taken, pc.take(outcome.column("error_message"), at), messages)
        todo = todo.filter(again)
    return _flat(status), _flat(codes), _flat(messages)


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def settled(deleted: pa.Table) -> list[str]:
    """Keys Core no longer holds (deleted now or before): the state forgets them."""
    done = pc.is_in(deleted.column("status"), value_set=pa.array([DELETED, ALREADY_GONE]))
    return deleted.column("key").filter(done).to_pylist()


def under_way(rows: pa.Table) -> list[str]:
    """Keys of the records a delete is about to remove or waits for (``keep``'s rows)."""
    return rows.column("key").filter(pc.is_in(
        rows.column("status"), value_set=pa.array([DELETING, DEFERRED]))).to_pylist()
