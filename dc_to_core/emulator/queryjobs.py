"""Bulk API 2.0 query jobs: a SOQL query run once, its records served as CSV pages.

A job snapshots its records when it is created (as Salesforce does, the result set is fixed
at that moment) and reports ``InProgress`` until its emulated processing time has passed:
``query_job_base_s`` plus ``query_job_ms_per_1k_rows`` per thousand records. Results are kept
in memory for the most recent ``KEPT_JOBS`` jobs (a restarted emulator has forgotten them:
their ids answer 404, and a client creates a new job).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import pyarrow as pa

from .clock import EmulatedClock
from .csvio import DELIMITERS, write_csv
from .errors import ApiError, not_found
from .ids import IdGenerator
from .limits import QUERY_JOBS, Limits
from .profile import OrgProfile
from .schema import CoreField, OrgSchema
from .soql import Compiled, compile_soql
from .storage import Storage

OPERATIONS = ("query", "queryAll")
KEPT_JOBS = 64
DEFAULT_PAGE = 1_000_000


@dataclass
class QueryJob:
    id: str
    operation: str
    soql: str
    object: str
    api_version: float
    created_date: str
    created_s: float          # emulated
    ready_s: float            # emulated time at which the job completes
    records: pa.Table         # string columns, named as in the CSV header
    delimiter: str = "COMMA"
    line_ending: str = "LF"
    aborted: bool = False


def _csv_columns(compiled: Compiled) -> list[str]:
    return [f"{rel}.{name}" if rel else name for rel, _, name in compiled.columns]


def _cells(values: tuple, fdef: CoreField | None) -> pa.Array:
    """One CSV column: booleans as true/false, numbers as plain text, nulls as nulls."""
    kind = fdef.type if fdef else "string"
    if kind == "boolean":
        return pa.array([None if v is None else ("true" if v else "false") for v in values],
                        pa.string())
    return pa.array([None if v is None else str(v) for v in values], pa.string())


class QueryJobStore:
    def __init__(self, storage: Storage, clock: EmulatedClock, schema: OrgSchema,
                 profile: OrgProfile, limits: Limits, user_id: str) -> None:
        self.storage, self.clock, self.schema = storage, clock, schema
        self.profile, self.limits, self.user_id = profile, limits, user_id
        self._ids = IdGenerator("750", start=10**8)
        self._jobs: OrderedDict[str, QueryJob] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, body: dict, api_version: float) -> dict:
        op = body.get("operation", "query")
        if op not in OPERATIONS:
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {op}")
        soql = body.get("query")
        if not isinstance(soql, str) or not soql.strip():
            raise ApiError(400, "INVALIDJOB", "InvalidJob : The query field is required")
        delimiter = body.get("columnDelimiter", "COMMA")
        if delimiter not in DELIMITERS or body.get("lineEnding", "LF") not in ("LF", "CRLF"):
            raise ApiError(400, "INVALIDJOB", "InvalidJob : Invalid columnDelimiter or "
                           "lineEnding")
        compiled = compile_soql(soql, self.schema)
        if compiled.count_only:
            raise ApiError(400, "INVALIDJOB", "InvalidJob : Aggregate queries are not "
                           "supported by Bulk API 2.0 query; use the REST query resource")
        if not self.limits.take(QUERY_JOBS):
            raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded: "
                           "DailyBulkV2QueryJobs")
        rows = self.storage.reader().execute(compiled.sql, compiled.params).fetchall()
        names = _csv_columns(compiled)
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
        table = pa.table({n: _cells(col, fdef) for n, col, (_, fdef, _) in
                          zip(names, columns, compiled.columns, strict=True)})
        now = self.clock.now()
        cost = self.profile.query_job_base_s + len(rows) / 1000 * (
            self.profile.query_job_ms_per_1k_rows / 1000)
        job = QueryJob(self._ids.next(), op, soql, compiled.obj.name, api_version,
                       self.clock.stamp(), now, now + cost, table, delimiter,
                       body.get("lineEnding", "LF"))
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > KEPT_JOBS:
                self._jobs.popitem(last=False)
        return self.info(job.id)

    def job(self, job_id: str) -> QueryJob:
        with self._lock:
            found = self._jobs.get(job_id)
        if found is None:
            raise not_found()
        return found

    def state(self, job: QueryJob) -> str:
        if job.aborted:
            return "Aborted"
        return "JobComplete" if self.clock.now() >= job.ready_s else "InProgress"

    def info(self, job_id: str) -> dict:
        job = self.job(job_id)
        state = self.state(job)
        elapsed = max(0.0, min(self.clock.now(), job.ready_s) - job.created_s)
        return {"id": job.id, "operation": job.operation, "object": job.object,
                "createdById": self.user_id, "createdDate": job.created_date,
                "systemModstamp": self.clock.stamp(), "state": state,
                "concurrencyMode": "Parallel", "contentType": "CSV",
                "apiVersion": job.api_version, "jobType": "V2Query",
                "lineEnding": job.line_ending, "columnDelimiter": job.delimiter,
                "numberRecordsProcessed": job.records.num_rows if state == "JobComplete" else 0,
                "retries": 0, "totalProcessingTime": int(elapsed * 1000)}

    def abort(self, job_id: str) -> dict:
        job = self.job(job_id)
        if self.state(job) != "InProgress":
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {job_id} is {self.state(job)}; only "
                           "a job in progress can be aborted")
        job.aborted = True
        return self.info(job_id)

    def delete(self, job_id: str) -> None:
        self.job(job_id)
        with self._lock:
            self._jobs.pop(job_id, None)

    def list(self, api_version: float) -> dict:
        with self._lock:
            ids = list(self._jobs)
        return {"done": True, "records": [self.info(i) for i in ids], "nextRecordsUrl": None}

    def results(self, job_id: str, locator: str | None, max_records: int | None
                ) -> tuple[bytes, str, int]:
        """One page of results: (CSV, next locator or "null", records in the page)."""
        job = self.job(job_id)
        if self.state(job) != "JobComplete":
            raise ApiError(400, "INVALIDJOBSTATE", f"Job {job_id} is {self.state(job)}: "
                           "results are available once it is JobComplete")
        try:
            start = int(locator, 36) if locator not in (None, "", "null") else 0
        except ValueError:
            raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None
        size = max_records or DEFAULT_PAGE
        if size <= 0 or start < 0 or start > job.records.num_rows:
            raise ApiError(400, "INVALIDLOCATOR", "Invalid locator or maxRecords")
        page = job.records.slice(start, size)
        stop = start + page.num_rows
        data = write_csv(page, DELIMITERS[job.delimiter], job.line_ending)
        return data, (_b36(stop) if stop < job.records.num_rows else "null"), page.num_rows


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
