"""The org's Bulk ingest processor, as a discrete-event simulation in emulated time.

A closed job's rows are cut into ``chunk_rows`` chunks that join one org-wide FIFO queue; ``W``
workers take chunks from every job and run them as consecutive ``txn_rows`` transactions. Each
transaction locks parents and updated rows (``locks.py``), commits what it could lock, and holds
its locks for ``txn_base_ms + row_ms * rows``. A chunk with more than ``requeue_lock_failures``
lock failures has its remaining rows re-queued (``retries``), up to ``max_requeues`` times.

The simulation never runs ahead of the emulated clock: an event is processed only once its time
has come, so a job submitted later joins the timeline exactly where a real org would see it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from .clock import EmulatedClock
from .dml import TxnPlan, commit_txn, plan_txn
from .ids import IdGenerator
from .limits import BATCH, RECORDS, Limits
from .locks import LockManager, LockRequest
from .profile import FaultProfile, OrgProfile
from .storage import Storage
from .validation import HeaderPlan, JobError, RowBlock, find_duplicates, plan_header, validate_rows

log = logging.getLogger("dc_to_core.emulator.engine")
ARRIVE, WORKER, DEADLINE, END = range(4)
SLICE_SECONDS = 0.02  # release the engine and write locks at least this often
LAG_TOLERANCE_S = 1.0  # emulated seconds the clock may run ahead of unprocessed events


@dataclass(eq=False)
class ActiveJob:
    id: str
    plan: HeaderPlan | None
    table: pa.Table
    duplicates: frozenset[str] = frozenset()
    failure: str | None = None
    aborted: bool = False
    pending: int = 0
    first_start: float | None = None
    api_ms: float = 0.0
    apex_ms: float = 0.0


@dataclass(eq=False)
class Chunk:
    job: ActiveJob
    rows: Sequence[int]
    attempt: int = 0
    block: RowBlock | None = None
    pos: int = 0
    txns: int = 0
    lock_failures: int = 0
    die_after: int | None = None
    parents: dict = field(default_factory=dict)  # parent key -> Id, resolved by this chunk


@dataclass(eq=False)
class Txn:
    worker: int
    chunk: Chunk
    plan: TxnPlan
    req: LockRequest
    start: float
    duration: float = 0.0
    lock_failed: int = 0


@dataclass
class EngineStats:
    queued_chunks: int = 0
    busy_workers: int = 0
    active_jobs: int = 0
    held_locks: int = 0
    lock_waits: int = 0
    lock_timeouts: int = 0
    lag_s: float = 0.0
    held_wall_s: float = 0.0
    transactions: int = 0
    worker_busy_s: float = 0.0   # emulated seconds workers held a chunk, summed over workers
    lock_wait_s: float = 0.0     # emulated seconds transactions waited for their locks
    extra: dict = field(default_factory=dict)


class Engine:
    def __init__(self, profile: OrgProfile, clock: EmulatedClock, storage: Storage,
                 limits: Limits, ids: dict[str, IdGenerator], running_user: str | None = None
                 ) -> None:
        self.profile = profile
        self.running_user = running_user
        self.clock = clock
        self.storage = storage
        self.limits = limits
        self.ids = ids
        self.locks = LockManager()
        self.rng = random.Random(profile.faults.seed)
        self._heap: list[tuple[float, int, int, object]] = []
        self._seq = itertools.count()
        self._queue: deque[Chunk] = deque()
        self._busy: list[Chunk | None] = [None] * profile.workers
        self._idle: set[int] = set(range(profile.workers))
        self._since = [0.0] * profile.workers
        self._busy_s = self._lock_wait_s = 0.0
        self._jobs: dict[str, ActiveJob] = {}
        self._cv = threading.Condition()
        self._stop = False
        self._txns = 0
        self._frontier = 0.0
        self._thread = threading.Thread(target=self._run, name="org-engine", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cv:
                if self._stop:
                    return
                try:
                    caught_up = self._advance(self.clock.peek())
                except Exception:  # the org must keep running; the job is marked Failed
                    log.exception("engine event failed")
                    caught_up = True
                if not caught_up and self._heap:  # behind: emulated time waits for us
                    self.clock.hold(self._heap[0][0] + LAG_TOLERANCE_S)
                if caught_up:
                    wait = 1.0
                    if self._heap:
                        ahead = self._heap[0][0] - self.clock.peek()
                        wait = min(wait, self.clock.wall_delay(ahead))
                    self._cv.wait(timeout=max(wait, 0.0005))

    def _advance(self, now: float) -> bool:
        """Process due events in one SQLite transaction; False if it stopped early to let
        other threads in (a slice lasts at most SLICE_SECONDS)."""
        if not self._heap or self._heap[0][0] > now:
            return True
        started = time.monotonic()
        conn = self.storage.core
        with self.storage.write_lock:
            conn.execute("BEGIN")
            try:
                while self._heap and self._heap[0][0] <= now:
                    t, _, kind, obj = heapq.heappop(self._heap)
                    self._frontier = t
                    self._dispatch(kind, obj, t)
                    if time.monotonic() - started > SLICE_SECONDS:
                        return False
                return True
            finally:
                conn.execute("COMMIT")

    def _push(self, t: float, kind: int, obj: object) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), kind, obj))

    def _dispatch(self, kind: int, obj: object, t: float) -> None:
        if kind == ARRIVE:
            self._arrive(*obj, t)  # type: ignore[misc]
        elif kind == WORKER:
            self._worker_step(obj, t)  # type: ignore[arg-type]
        elif kind == DEADLINE:
            txn: Txn = obj  # type: ignore[assignment]
            if self.locks.expire(txn.req, t):
                self._finish(txn, t)
        else:
            self._end(obj, t)  # type: ignore[arg-type]

    # -- API for the HTTP layer ------------------------------------------------------------------
    def submit(self, job_id: str, plan_args: tuple, table: pa.Table,
               rows: Sequence[int] | None = None) -> None:
        """A closed job (or a recovered one): its chunks join the queue after the start latency."""
        job = ActiveJob(job_id, None, table)
        try:
            job.plan = plan_header(*plan_args, table.column_names)
            job.duplicates = find_duplicates(table, job.plan)
        except JobError as exc:
            job.failure = str(exc)
        if job.failure is None and (self.rng.random() < self.profile.faults.job_fail_rate or (
                rows is None and _poisoned(table, job.plan, self.profile.faults))):
            job.failure = "InternalServerError : the job failed while processing (fault)"
        rows = range(table.num_rows) if rows is None else rows
        with self._cv:
            self._jobs[job_id] = job
            at = max(self.clock.now(), self._frontier) + self.profile.job_start_latency_s
            self._push(at, ARRIVE, (job, rows))
            self._cv.notify_all()

    def abort(self, job_id: str) -> None:
        with self._cv:
            job = self._jobs.get(job_id)
            if job is not None:
                job.aborted = True
                self._purge(job, self.clock.now())

    def stats(self) -> EngineStats:
        with self._cv:
            lag = max(0.0, self.clock.peek() - self._heap[0][0]) if self._heap else 0.0
            return EngineStats(
                queued_chunks=len(self._queue), active_jobs=len(self._jobs),
                busy_workers=self.profile.workers - len(self._idle), held_locks=len(self.locks),
                lock_waits=self.locks.waits, lock_timeouts=self.locks.timeouts, lag_s=lag,
                held_wall_s=self.clock.held_wall_s, transactions=self._txns,
                worker_busy_s=self._busy_s + sum(self.clock.peek() - self._since[w] for w, c in
                                                 enumerate(self._busy) if c is not None),
                lock_wait_s=self._lock_wait_s)

    # -- events ---------------------------------------------------------------------------------
    def _arrive(self, job: ActiveJob, rows: Sequence[int], t: float) -> None:
        if job.aborted:
            return self._finalize(job, t)
        if job.failure is not None:
            return self._finalize(job, t)
        if not rows:  # an empty job still costs one batch
            self.limits.take(BATCH)
            self._set_batches(job.id)
            return self._finalize(job, t)
        self._set(job.id, state="InProgress", started_emu=t)
        size = self.profile.chunk_rows
        for i in range(0, len(rows), size):
            self._queue.append(Chunk(job, rows[i:i + size]))
            job.pending += 1
        for w in sorted(self._idle):
            self._next_chunk(w, t)

    def _next_chunk(self, w: int, t: float) -> None:
        if self._busy[w] is not None:
            self._busy_s += t - self._since[w]
        self._busy[w] = None
        while self._queue:
            chunk = self._queue.popleft()
            job = chunk.job
            if job.aborted or job.failure is not None:
                self._chunk_done(chunk, t)
                continue
            first = chunk.attempt == 0  # a re-queued chunk is the same batch, not a new one
            if first and (not self.limits.take(BATCH)
                          or not self.limits.take(RECORDS, len(chunk.rows))):
                self._fail(job, "ExceededQuota : the org's daily Bulk API batch or record "
                           "allocation is used up", t)
                self._chunk_done(chunk, t)
                continue
            if first:
                self._set_batches(job.id)
            assert job.plan is not None
            chunk.block = validate_rows(job.plan, job.table, chunk.rows, job.duplicates)
            if self.rng.random() < self.profile.faults.chunk_die_rate:
                chunk.die_after = self.rng.randrange(
                    max(1, -(-len(chunk.rows) // self.profile.txn_rows)))
            if job.first_start is None:
                job.first_start = t
            self._busy[w], self._since[w] = chunk, t
            self._idle.discard(w)
            self._push(t + self.profile.chunk_start_ms / 1000, WORKER, w)
            return
        self._idle.add(w)

    def _worker_step(self, w: int, t: float) -> None:
        chunk = self._busy[w]
        if chunk is None:
            return self._next_chunk(w, t)
        job, block = chunk.job, chunk.block
        assert block is not None and job.plan is not None
        if job.aborted or chunk.pos >= len(block.rows):  # a failing job's running chunks finish
            self._chunk_done(chunk, t)
            return self._next_chunk(w, t)
        if chunk.die_after is not None and chunk.txns >= chunk.die_after:
            self._fail(job, f"InternalServerError : a batch of job {job.id} died while "
                       "processing; its remaining rows were not processed", t)
            self._chunk_done(chunk, t)
            return self._next_chunk(w, t)
        end = min(chunk.pos + self.profile.txn_rows, len(block.rows))
        plan = plan_txn(self.storage.core, job.plan, block, range(chunk.pos, end), chunk.parents)
        req = LockRequest(plan.lock_keys, deadline=t + self.profile.lock_timeout_s)
        txn = Txn(w, chunk, plan, req, t)
        req.owner = txn
        if self.locks.acquire(req, t):
            self._finish(txn, t)
        else:
            self._push(req.deadline, DEADLINE, txn)

    def _finish(self, txn: Txn, t: float) -> None:
        """Locks settled at ``t``: commit, then hold the locks for the transaction's duration."""
        chunk = txn.chunk
        job = chunk.job
        assert job.plan is not None and chunk.block is not None
        self._lock_wait_s += t - txn.start
        out = commit_txn(self.storage, self.ids[job.plan.obj.name], job.id, job.plan,
                         chunk.block, txn.plan, txn.req.failed, self.running_user)
        p = self.profile
        apex = p.row_ms * out.committed
        txn.duration = (p.txn_base_ms + apex + p.failed_row_ms * out.failed) / 1000
        txn.lock_failed = out.lock_failed
        job.apex_ms += apex
        job.api_ms += txn.duration * 1000 + (t - txn.start) * 1000
        self._txns += 1
        self._push(t + txn.duration, END, txn)

    def _end(self, txn: Txn, t: float) -> None:
        for granted in self.locks.release(txn.req):
            if self.locks.acquire(granted, t):
                self._finish(granted.owner, t)  # type: ignore[arg-type]
        chunk, w = txn.chunk, txn.worker
        chunk.pos += len(txn.plan.positions)
        chunk.txns += 1
        chunk.lock_failures += txn.lock_failed
        assert chunk.block is not None
        remaining = chunk.block.rows[chunk.pos:]
        if remaining and chunk.lock_failures > self.profile.requeue_lock_failures:
            self._requeue(chunk, remaining, t)
            self._chunk_done(chunk, t)
            return self._next_chunk(w, t)
        self._worker_step(w, t)

    def _requeue(self, chunk: Chunk, remaining: Sequence[int], t: float) -> None:
        job = chunk.job
        if chunk.attempt + 1 > self.profile.max_requeues:
            return self._fail(job, "TooManyLockFailure : too many lock failures while "
                              f"processing a batch of job {job.id}; rows not processed", t)
        self._queue.append(Chunk(job, list(remaining), attempt=chunk.attempt + 1))
        job.pending += 1
        with self.storage.write_lock:
            self.storage.core.execute(
                "UPDATE ingest_job SET retries=retries+1 WHERE id=?", (job.id,))

    # -- job bookkeeping -----------------------------------------------------------------------
    def _chunk_done(self, chunk: Chunk, t: float) -> None:
        job = chunk.job
        job.pending -= 1
        if job.pending <= 0:
            self._finalize(job, t)

    def _fail(self, job: ActiveJob, message: str, t: float) -> None:
        if job.failure is None:
            job.failure = message
        self._purge(job, t)

    def _purge(self, job: ActiveJob, t: float) -> None:
        """Drop the job's queued chunks; finalize when nothing of it is running."""
        kept = deque()
        for c in self._queue:
            if c.job is job:
                job.pending -= 1
            else:
                kept.append(c)
        self._queue = kept
        if job.pending <= 0:
            self._finalize(job, t)

    def _finalize(self, job: ActiveJob, t: float) -> None:
        if self._jobs.pop(job.id, None) is None:
            return
        state = "Aborted" if job.aborted else "Failed" if job.failure else "JobComplete"
        started = job.first_start if job.first_start is not None else t
        values = dict(state=state, ended_emu=t, total_ms=int((t - started) * 1000),
                      api_ms=int(job.api_ms), apex_ms=int(job.apex_ms))
        if job.failure and not job.aborted:
            values["error_message"] = job.failure
        self._set(job.id, **values)

    def _set(self, job_id: str, **values: object) -> None:
        """Update a job row; an Aborted job keeps its state (the user's abort wins)."""
        values["system_modstamp"] = EmulatedClock.stamp()
        sets = ", ".join(
            "state=CASE WHEN state='Aborted' THEN state ELSE ? END" if k == "state" else f"{k}=?"
            for k in values)
        with self.storage.write_lock:
            self.storage.core.execute(
                f"UPDATE ingest_job SET {sets} WHERE id=?", (*values.values(), job_id))

    def _set_batches(self, job_id: str) -> None:
        with self.storage.write_lock:
            self.storage.core.execute(
                "UPDATE ingest_job SET batches=batches+1 WHERE id=?", (job_id,))


def _poisoned(table: pa.Table, plan: HeaderPlan | None, faults: FaultProfile) -> bool:
    """Whether the job holds a row whose upsert key matches the ``job_fail_key`` fault."""
    if not faults.job_fail_key or plan is None or not plan.key_field:
        return False
    column = next((c for c in table.column_names if c.lower() == plan.key_field.lower()), None)
    if column is None:
        return False
    keys = pc.cast(table[column], pa.string())
    return bool(pc.any(pc.match_substring_regex(keys, faults.job_fail_key)).as_py())
