"""Loading a prepared partition: rounds of Bulk upserts, resumable through the ledger.

- **Waves**: a parent with more rows than one chunk would otherwise sit in several chunks that
  the org runs at once, all waiting on that parent's lock. Rows are dealt into waves so each
  wave holds at most one chunk's worth of any parent; waves run one after another.
- **Rounds**: round 0 loads every row; each later round (the re-pass) resubmits, after a
  backoff, only the rows that failed transiently (``UNABLE_TO_LOCK_ROW``, unprocessed),
  still ordered by parent.
- **Ledger**: each job is recorded as soon as the org has created it, before its upload; a
  retried load collects the recorded jobs that were closed (the org processes them) instead
  of uploading their rows again, and aborts and sends anew those left open (a load stopped
  during their upload: the org never processes an open job).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..salesforce.bulk import BulkApi, LoadOutcome, SubmittedJob
from ..salesforce.bulk_csv import bulk_text
from ..salesforce.bulk_results import OUTCOME, UNPROCESSED
from ..salesforce.errors import JobRejectedError, SalesforceApiError
from ..salesforce.throttle import Progress, throttled
from .budget import BudgetExceeded, quota_failed, stop_on_quota
from .hierarchy import heal_in_order
from .keys import folded
from .ledger import Ledger
from .prepare import GROUP, HASH, ROW
from .spec import SyncSpec

TRANSIENT_CODES = ("UNABLE_TO_LOCK_ROW", "NOT_REPORTED")
log = logging.getLogger("dc_to_core.sync.loading")


@dataclass
class LoadTarget:
    """What one partition's load talks to."""

    spec: SyncSpec
    partition: str
    fingerprint: str
    bulk: BulkApi
    ledger: Ledger
    run_id: str | None = None
    sleep: Callable[[float], None] = time.sleep
    progress: Progress | None = None  # told how the Bulk jobs are doing (throttled)
    before_job: Callable[[int], None] | None = None  # the limit budget's check (sync.budget)


@dataclass
class LoadStats:
    jobs: list[dict] = field(default_factory=list)
    rounds: int = 0
    resumed_jobs: int = 0
    forecast: dict | None = None  # what the first round was forecast to need (sync.budget)
    lock_failed: list[int] = field(default_factory=list)  # UNABLE_TO_LOCK_ROW rows per round

    @property
    def batches(self) -> int:
        return LoadOutcome(OUTCOME.empty_table(), self.jobs).batches


def waves(table: pa.Table, parent: str | None, chunk_rows: int) -> list[pa.Array]:
    """Row indices of ``table`` (ordered by lock group) per wave: wave k takes the k-th
    ``chunk_rows`` rows of every group (``parent``: the group column), so no wave has a
    group in more than ~1 chunk."""
    n = table.num_rows
    if parent is None or n == 0 or parent not in table.column_names:
        return [pa.array(range(n), pa.int64())]
    first = _group_starts(table.column(parent))
    at = np.arange(n)
    start = np.maximum.accumulate(np.where(first, at, 0))  # where each row's group starts
    wave_of = pa.array((at - start) // chunk_rows, pa.int64())
    top = pc.max(wave_of).as_py() or 0
    return [pc.cast(pc.indices_nonzero(pc.equal(wave_of, k)), pa.int64())
            for k in range(top + 1)]


def _group_starts(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Per row: whether a lock group starts there (a run of equal keys is one group; a null
    key is a group of its own)."""
    keys = folded(column, True)  # the org finds ACC-1 as acc-1
    after = pc.fill_null(pc.not_equal(keys[1:], keys[:-1]), True)
    null = pc.is_null(keys).to_numpy(zero_copy_only=False)
    return np.concatenate(([True], after.to_numpy(zero_copy_only=False) | null[:-1])) | null


SMALL_JOB_ROWS = 200  # a small wave is cut into jobs of about this many rows or more
SMALL_JOBS = 8        # and at most this many of them


def job_cuts(table: pa.Table, chunk_rows: int) -> list[int]:
    """Where the jobs of one wave (ordered by lock group) start, after row 0. A wave
    smaller than one chunk would be a single chunk on a single org worker, its
    transactions one after another (1,000 accounts: 5 of them in a row, while every row of
    the night waits for those accounts); it is cut at lock-group boundaries into up to
    ``SMALL_JOBS`` jobs of about ``n / jobs`` rows each (at least ``SMALL_JOB_ROWS``; a cut
    moves to the next group start, so uneven groups make uneven jobs), which the org's
    workers take at once: a batch each, no parent in two of them. A larger wave needs no
    cut: the org splits it into chunks that already run side by side."""
    n = table.num_rows
    jobs = small_load_jobs(n, chunk_rows)
    if jobs < 2:
        return []
    starts = (np.flatnonzero(_group_starts(table.column(GROUP)))
              if GROUP in table.column_names else np.arange(n))
    wanted = np.arange(1, jobs) * n // jobs
    at = starts[np.minimum(np.searchsorted(starts, wanted), len(starts) - 1)]
    return sorted({int(a) for a in at if 0 < a < n})


def small_load_jobs(rows: int, chunk_rows: int) -> int:
    """How many jobs a wave of ``rows`` rows goes as, before its groups are known (the
    limit budget's forecast of a partition never loaded)."""
    jobs = min(SMALL_JOBS, rows // SMALL_JOB_ROWS)
    return jobs if rows < chunk_rows and jobs >= 2 else 1


def _pieces(cuts: list[int], start: int, stop: int) -> list[tuple[int, int]]:
    """``[start, stop)`` cut at the cuts inside it."""
    inside = [c for c in cuts if start < c < stop]
    return list(zip([start, *inside], [*inside, stop], strict=True))


def upload_columns(spec: SyncSpec, table: pa.Table) -> pa.Table:
    """The columns the org gets: the sync's, not the pipeline's bookkeeping; a null of a
    column whose policy is ``on_null: keep`` goes as an empty cell (Core's value stays)."""
    table = table.drop_columns([c for c in (ROW, HASH, GROUP) if c in table.column_names])
    keeps = [f.target for f in spec.fields if f.keeps_nulls] + [
        lk.relationship for lk in spec.lookups if lk.keeps_nulls]
    for name in keeps:
        col = table.column(name)
        table = table.set_column(table.schema.get_field_index(name), name, pc.if_else(
            pc.is_null(col), "", bulk_text(col)))
    return table


def _waves(target: LoadTarget, table: pa.Table) -> list[pa.Array]:
    return waves(table, GROUP if GROUP in table.column_names else None,
                 target.bulk.chunk_rows)


def _wave(table: pa.Table, rows: pa.Array) -> pa.Table:
    """The rows of one wave; the only wave of a table (every row, in order) is the table
    itself, not a copy."""
    return table if len(rows) == table.num_rows else table.take(rows)


def operation(spec: SyncSpec) -> tuple[str, str | None]:
    """The Bulk operation and external id field of a sync's jobs: an insert-only sync
    inserts (the org refuses a key it holds), an update-only one updates by Id (the rows
    carry the Ids of the records Core holds, ``sync.changes.against_core``)."""
    return ("upsert", spec.target_key) if spec.operation == "upsert" else (spec.operation, None)


def planned_jobs(target: LoadTarget, table: pa.Table) -> list[int]:
    """The row count of every job a first round of ``table`` creates, in order (what the
    limit budget and the dry run forecast: exactly what :func:`load_round` then sends)."""
    if table.num_rows == 0:
        return []
    planned = []
    for rows in _waves(target, table):
        wave = _wave(table, rows)
        part = upload_columns(target.spec, wave)
        for a, b in _pieces(job_cuts(wave, target.bulk.chunk_rows), 0, wave.num_rows):
            planned += target.bulk.job_rows(part.slice(a, b - a))
    return planned


def load_round(target: LoadTarget, table: pa.Table, round_: int, stats: LoadStats) -> pa.Table:
    """Load ``table`` (already ordered) as one round; an OUTCOME row per input row. Nothing
    to send costs nothing: no job, no batch."""
    with throttled(target.progress) as report:  # one pace for all the round's waves
        outcome = _load_round(replace(target, progress=report), table, round_, stats)
    stats.lock_failed.append(int(pc.sum(pc.fill_null(pc.equal(
        outcome.column("error_code"), "UNABLE_TO_LOCK_ROW"), False)).as_py() or 0))
    return outcome


def _load_round(target: LoadTarget, table: pa.Table, round_: int, stats: LoadStats
                ) -> pa.Table:
    if table.num_rows == 0:
        return OUTCOME.empty_table()
    parts: list[pa.Table] = []
    indices: list[pa.Array] = []
    for w, rows in enumerate(_waves(target, table)):
        wave = _wave(table, rows)
        part = upload_columns(target.spec, wave)
        try:
            parts.append(_load_wave(target, part, round_ * 1000 + w, stats,
                                    job_cuts(wave, target.bulk.chunk_rows)))
        except BudgetExceeded as stop:  # what the org did before the stop, for the state
            if stop.outcome is not None:  # the wave was collected (a job hit ExceededQuota)
                parts.append(stop.outcome)
                indices.append(rows)
            stop.outcome = pa.concat_tables(parts) if parts else OUTCOME.empty_table()
            stop.rows = pa.chunked_array(indices, pa.int64()).combine_chunks()
            raise
        indices.append(rows)
    outcome = pa.concat_tables(parts) if parts else OUTCOME.empty_table()
    if len(indices) == 1:  # one wave: every row, in order
        return outcome
    order = pc.sort_indices(pa.table({"i": pa.chunked_array(indices, pa.int64())}), [("i",
                                                                                      "ascending")])
    return outcome.take(order)


def settle_stale_jobs(target: LoadTarget) -> int:
    """Wait for the jobs a crashed earlier load of the partition left with the org (other
    rows or other values than this load's) to end before this load sends anything: one the
    org processed after tonight's would leave Core older than what the state records (one
    left open is aborted: the org would never process it). Returns how many there were."""
    spec, ledger, bulk = target.spec, target.ledger, target.bulk
    live = [j for j in ledger.other_jobs(spec.name, target.partition, target.fingerprint)
            if _closed_job(bulk, j)]
    if live:
        log.warning("%s %s: waiting for %d job(s) an earlier, interrupted load left with the "
                    "org before sending", spec.name, target.partition, len(live))
        bulk.wait(live, progress=target.progress)
    ledger.forget_others(spec.name, target.partition, target.fingerprint)
    return len(live)


def _closed_job(bulk: BulkApi, job_id: str) -> bool:
    """Whether the org knows the job and processes (or processed) it: deleted or expired
    jobs answer 404; a job left open (its upload interrupted) is aborted here, and its rows
    are to be sent anew. A job aborted after its close is collected: what the org processed
    is in its results, the rest comes back unprocessed for the re-pass (an insert-only sync
    must not send processed rows twice)."""
    try:
        state = bulk.get_job(job_id).get("state")
    except SalesforceApiError as exc:
        if exc.status != 404:
            raise
        return False
    if state == "Open":
        log.warning("job %s was left open (its load stopped during the upload): aborting it; "
                    "its rows are sent again", job_id)
        try:
            bulk.abort(job_id)
        except SalesforceApiError as exc:  # closed or aborted meanwhile: ask again
            log.info("could not abort job %s (%s)", job_id, exc)
            return bulk.get_job(job_id).get("state") != "Open"
        return False
    return True


def _load_wave(target: LoadTarget, table: pa.Table, slot: int, stats: LoadStats,
               cuts: list[int]) -> pa.Table:
    """Submit (resuming recorded jobs; a job starting at each of ``cuts``) and collect one
    wave of one round."""
    spec, bulk, ledger = target.spec, target.bulk, target.ledger
    key = (spec.name, target.partition, target.fingerprint, slot)
    recorded = [j for j in ledger.submitted(*key) if _resumable(bulk, ledger, key, j)]
    stats.resumed_jobs += len(recorded)
    if recorded:
        log.info("%s %s: resuming %d recorded job(s) instead of uploading again", spec.name,
                 target.partition, len(recorded))
    jobs = list(recorded)
    for start, stop in (p for gap in _gaps(recorded, table.num_rows)
                        for p in _pieces(cuts, *gap)):
        def moved(job: SubmittedJob, offset: int = start) -> SubmittedJob:
            return SubmittedJob(job.job_id, job.start + offset, job.stop + offset, job.bytes)

        op, key_field = operation(spec)
        bulk.submit(spec.target, key_field, table.slice(start, stop - start), op,
                    on_created=lambda job, m=moved: ledger.record(*key, m(job), target.run_id),
                    on_abandoned=lambda job: ledger.forget_job(*key[:3], job.job_id),
                    on_submitted=lambda job, m=moved: jobs.append(m(job)),
                    before_each=target.before_job)
    jobs.sort(key=lambda j: j.start)
    outcome = bulk.collect(jobs, table, spec.target_key, target.progress)
    stats.jobs += outcome.jobs
    for info in filter(quota_failed, outcome.jobs):  # a later run sends its rows anew, not
        ledger.forget_job(*key[:3], str(info.get("id")))  # resumes a job that cannot succeed
    try:
        stop_on_quota(f"{spec.name} {target.partition}", outcome.jobs)
    except BudgetExceeded as stop:
        stop.outcome = outcome.rows  # the rows the org did load before it refused the job
        raise
    for info in outcome.jobs:
        message = str(info.get("errorMessage") or "")
        if info.get("state") == "Failed" and message.startswith("InvalidBatch"):
            raise JobRejectedError(f"{spec.target} rejected Bulk job {info.get('id')}: "
                                   f"{message}. Check the field mapping of sync {spec.name!r}")
    return outcome.rows


def _resumable(bulk: BulkApi, ledger: Ledger, key: tuple, job: SubmittedJob) -> bool:
    if _closed_job(bulk, job.job_id):
        return True
    log.warning("recorded job %s is gone from the org or was never closed; its rows will be "
                "sent again", job.job_id)
    ledger.forget_job(key[0], key[1], key[2], job.job_id)
    return False


def _gaps(jobs: list[SubmittedJob], n: int) -> list[tuple[int, int]]:
    """Row ranges of ``[0, n)`` no recorded job covers."""
    gaps, at = [], 0
    for j in sorted(jobs, key=lambda j: j.start):
        if j.start > at:
            gaps.append((at, j.start))
        at = max(at, j.stop)
    if at < n:
        gaps.append((at, n))
    return gaps


def transient(outcome: pa.Table, also: tuple[str, ...] = ()) -> pa.Array:
    """Indices of rows worth another try (``also``: more codes that may heal in order)."""
    status, code = outcome.column("status"), outcome.column("error_code")
    mask = pc.or_(pc.equal(status, UNPROCESSED),
                  pc.fill_null(pc.is_in(code, pa.array([*TRANSIENT_CODES, *also])), False))
    return pc.indices_nonzero(pc.fill_null(mask, False))


def repass(target: LoadTarget, ready: pa.Table, outcome: pa.Table, rounds: int,
           backoff_s: float, stats: LoadStats) -> pa.Table:
    """Resubmit transient failures, regrouped by parent, with exponential backoff; at most
    ``rounds`` rounds. Returns the updated outcome (aligned with ``ready``)."""
    with throttled(target.progress) as report:  # one pace for all the rounds
        return _repass(replace(target, progress=report), ready, outcome, rounds, backoff_s,
                       stats)


def _repass(target: LoadTarget, ready: pa.Table, outcome: pa.Table, rounds: int,
            backoff_s: float, stats: LoadStats) -> pa.Table:
    for r in range(1, rounds + 1):
        again = transient(outcome, heal_in_order(bool(target.spec.hierarchy_of)))
        if len(again) == 0:
            break
        wait = backoff_s * 2 ** (r - 1) * (0.75 + random.random() / 2)
        log.info("%s %s: re-pass %d of %d rows after %.1f s", target.spec.name,
                 target.partition, r, len(again), wait)
        target.sleep(wait)
        stats.rounds = r
        redo = load_round(target, ready.take(again), r, stats)
        outcome = _replace_rows(outcome, again, redo)
    return outcome


def _replace_rows(outcome: pa.Table, at: pa.Array, new: pa.Table) -> pa.Table:
    position = pc.index_in(pa.array(range(outcome.num_rows), pa.int64()), value_set=at)
    cols = {}
    for name in outcome.column_names:
        replaced = pc.take(new.column(name), position)
        cols[name] = pc.if_else(pc.is_valid(position), replaced, outcome.column(name))
    return pa.table(cols, schema=outcome.schema)
