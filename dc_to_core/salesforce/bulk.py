"""``BulkApi``: Bulk API 2.0 ingest — job calls, and ``upsert`` of an Arrow table with
an outcome for every input row.

``upsert`` = ``submit`` (cut the table into jobs of ≤ 100 MB on the 10,000-row chunk grid,
create, upload gzipped, close) + ``collect`` (poll with capped exponential backoff, download
the three result files, join them back to the input). The two halves are separate so a caller
can record submitted jobs (a ledger) and resume collecting them after a crash.
"""

from __future__ import annotations

import gzip
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from .bulk_csv import CHUNK_ROWS, MAX_JOB_BYTES, JobPayload, bulk_table, split_jobs
from .bulk_query import read_query_csv, result_pages
from .bulk_results import (
    FAILED,
    LOADED,
    OUTCOME,
    UNPROCESSED,
    JobResults,
    join_outcomes,
    read_result_csv,
)
from .errors import BulkJobError, OrgUnreachableError, SalesforceApiError
from .rest import keys_soql, range_soql
from .sqltext import soql_literal
from .throttle import Progress, throttled
from .transport import SalesforceApi

log = logging.getLogger("dc_to_core.salesforce.bulk")
TERMINAL = ("JobComplete", "Failed", "Aborted")
RESULT_PATHS = {"successful": "successfulResults", "failed": "failedResults",
                "unprocessed": "unprocessedrecords"}


def jobs_line(infos: list[dict], shown: int = 3) -> str:
    """One progress line for Bulk jobs: each job's id and state (the first ``shown``), and
    the records processed and failed, summed over the jobs."""
    processed = sum(int(i.get("numberRecordsProcessed") or 0) for i in infos)
    failed = sum(int(i.get("numberRecordsFailed") or 0) for i in infos)
    first = infos[0] if infos else {}
    what = " ".join(str(first[k]) for k in ("object", "operation") if first.get(k))
    jobs = ", ".join(f"{i.get('id')} {i.get('state')}" for i in infos[:shown])
    rest = Counter(str(i.get("state")) for i in infos[shown:])
    more = (f" and {len(infos) - shown} more ("
            + ", ".join(f"{n} {state}" for state, n in rest.items()) + ")") if rest else ""
    return (f"Bulk {what + ' ' if what else ''}job{'s' * (len(infos) != 1)} {jobs}{more}: "
            f"{processed:,} records processed, {failed:,} failed")


@dataclass(frozen=True)
class SubmittedJob:
    """A job that holds rows ``[start, stop)`` of the input table."""

    job_id: str
    start: int
    stop: int
    bytes: int = 0


@dataclass
class LoadOutcome:
    """Per input row: status (loaded/failed/unprocessed), sf_id, created, error code/message,
    job id — plus the final job infos."""

    rows: pa.Table
    jobs: list[dict] = field(default_factory=list)

    def count(self, status: str) -> int:
        return int(pc.sum(pc.equal(self.rows.column("status"), status)).as_py() or 0)

    @property
    def loaded(self) -> int:
        return self.count(LOADED)

    @property
    def failed(self) -> int:
        return self.count(FAILED)

    @property
    def unprocessed(self) -> int:
        return self.count(UNPROCESSED)

    @property
    def created(self) -> int:
        return int(pc.sum(pc.fill_null(self.rows.column("created"), False)).as_py() or 0)

    @property
    def batches(self) -> int:
        """Bulk batches the jobs cost: ⌈rows / 10,000⌉ per job, at least one."""
        return sum(max(1, math.ceil(int(j.get("rows", 0)) / CHUNK_ROWS)) for j in self.jobs)


class BulkApi(SalesforceApi):
    """Bulk API 2.0 ingest for one org."""
    max_job_bytes: int = Field(default=MAX_JOB_BYTES, description="Raw CSV bytes per job.")
    chunk_rows: int = Field(default=CHUNK_ROWS, description="Jobs break on this row grid.")
    gzip_level: int = Field(default=1, ge=0, le=9, description="0 = upload uncompressed.")
    poll_initial_s: float = Field(default=1.0, description="First wait between job polls.")
    poll_max_s: float = Field(default=10.0, description="Longest wait between job polls.")
    job_timeout_s: float = Field(default=12 * 3600.0, description="Give up waiting after.")
    upload_attempts: int = Field(default=3, description="New jobs tried when an upload fails.")

    def _path(self, suffix: str = "", kind: str = "ingest") -> str:
        return self.client().data_path(f"jobs/{kind}{suffix}")

    # -- job calls ----------------------------------------------------------------------------
    def create_job(self, object_name: str, operation: str = "upsert",
                   external_id_field: str | None = None) -> dict:
        body = {"object": object_name, "operation": operation, "contentType": "CSV",
                "lineEnding": "LF", "columnDelimiter": "COMMA"}
        if operation == "upsert":
            body["externalIdFieldName"] = external_id_field or "Id"
        # safe to repeat: a job created twice leaves an empty Open job, which costs nothing
        return self.client().request("POST", self._path(), json=body).json()

    def upload(self, job_id: str, data: bytes) -> None:
        headers = {"Content-Type": "text/csv"}
        if self.gzip_level:
            data = gzip.compress(data, compresslevel=self.gzip_level)
            headers["Content-Encoding"] = "gzip"
        self.client().request("PUT", self._path(f"/{job_id}/batches"), content=data,
                              headers=headers, safe=False, ok=(201,))

    def close(self, job_id: str) -> dict:
        """Mark the upload complete. A repeated close (its first answer lost) is recognised by
        the job's state."""
        try:
            return self.client().request("PATCH", self._path(f"/{job_id}"),
                                         json={"state": "UploadComplete"}).json()
        except SalesforceApiError as exc:
            if exc.error_code != "INVALIDJOBSTATE":
                raise
            info = self.get_job(job_id)
            if info["state"] == "Open":
                raise
            return info

    def abort(self, job_id: str) -> dict:
        return self.client().request("PATCH", self._path(f"/{job_id}"),
                                     json={"state": "Aborted"}).json()

    def delete(self, job_id: str) -> None:
        self.client().request("DELETE", self._path(f"/{job_id}"))

    def get_job(self, job_id: str, kind: str = "ingest") -> dict:
        return self.client().request("GET", self._path(f"/{job_id}", kind)).json()

    def list_jobs(self) -> list[dict]:
        c = self.client()
        page = c.request("GET", self._path()).json()
        jobs = list(page.get("records", []))
        while not page.get("done", True) and page.get("nextRecordsUrl"):
            page = c.request("GET", page["nextRecordsUrl"]).json()
            jobs += page.get("records", [])
        return jobs

    def wait(self, job_ids: list[str], on_poll: Callable[[dict], None] | None = None,
             kind: str = "ingest", progress: Progress | None = None) -> dict[str, dict]:
        """Poll until every job (ingest or query) is terminal (capped exponential backoff).
        ``progress`` is told the jobs' states and records processed and failed (throttled)."""
        with throttled(progress) as report:
            return self._wait(job_ids, on_poll, kind, report)

    def _wait(self, job_ids: list[str], on_poll: Callable[[dict], None] | None, kind: str,
              report: Progress | None) -> dict[str, dict]:
        pending, done = list(job_ids), {}
        delay = self.poll_initial_s
        deadline = time.monotonic() + self.job_timeout_s
        latest: dict[str, dict] = {}
        while pending:
            for job_id in list(pending):
                info = latest[job_id] = self.get_job(job_id, kind)
                if on_poll:
                    on_poll(info)
                if info["state"] in TERMINAL:
                    done[job_id] = info
                    pending.remove(job_id)
            if report:
                report(jobs_line([latest[j] for j in job_ids]))
            if pending:
                if time.monotonic() > deadline:
                    raise BulkJobError(f"jobs {pending} not finished after "
                                       f"{self.job_timeout_s:.0f} s")
                time.sleep(delay)
                delay = min(self.poll_max_s, delay * 1.6)
        return done

    def results(self, job_id: str, key: str | None = None) -> JobResults:
        """The job's result files; with ``key``, parsed only as far as matching needs."""
        c = self.client()
        raw = {kind: c.request("GET", self._path(f"/{job_id}/{path}"),
                               headers={"Accept": "text/csv"}).content
               for kind, path in RESULT_PATHS.items()}
        if key is not None:
            return JobResults.parse(job_id, raw, key)
        return JobResults(job_id, *(read_result_csv(raw[k]) for k in (
            "successful", "failed", "unprocessed")))

    def query(self, soql: str, fields: list[str] | None = None,
              progress: Progress | None = None) -> pa.Table:
        """Every record of a SOQL query through a Bulk API 2.0 query job, as string columns
        (nulls where Salesforce wrote an empty cell); ``fields`` fixes the columns."""
        c = self.client()
        job_id = c.request("POST", self._path(kind="query"), json={
            "operation": "query", "query": soql, "contentType": "CSV",
            "columnDelimiter": "COMMA", "lineEnding": "LF"}).json()["id"]
        info = self.wait([job_id], kind="query", progress=progress)[job_id]
        if info["state"] != "JobComplete":
            raise BulkJobError(f"query job {job_id} ended {info['state']}: "
                               f"{info.get('errorMessage') or 'no message'} ({soql[:200]})")
        pages = [read_query_csv(page, fields) for page in result_pages(
            c, self._path(f"/{job_id}/results", "query"))]
        try:
            c.request("DELETE", self._path(f"/{job_id}", "query"))
        except SalesforceApiError as exc:  # results expire on their own; nothing is lost
            log.info("could not delete query job %s: %s", job_id, exc)
        return pa.concat_tables(pages) if len(pages) > 1 else pages[0]

    def read_range(self, object_name: str, fields: list[str], key: str, start: str | None,
                   end: str | None) -> pa.Table:
        """The given fields (as text) of the records in a key range, ordered by key."""
        return self.query(range_soql(object_name, fields, key, start, end), fields)

    def read_keys(self, object_name: str, fields: list[str], key: str, values: list[str],
                  soql_chars: int = 90_000, progress: Progress | None = None) -> pa.Table:
        """The given fields (as text) of the records whose ``key`` is one of ``values`` (as
        the org matches them: ignoring case unless the field is case-sensitive), one query
        job per statement of at most ``soql_chars`` characters (SOQL's limit is 100,000)."""
        parts, batch, size = [], [], 0
        base = len(keys_soql(object_name, fields, key, []))
        for v in values:
            cost = len(soql_literal(v)) + 2
            if batch and base + size + cost > soql_chars:
                parts.append(self.query(keys_soql(object_name, fields, key, batch), fields,
                                        progress))
                batch, size = [], 0
            batch.append(v)
            size += cost
        if batch:
            parts.append(self.query(keys_soql(object_name, fields, key, batch), fields,
                                    progress))
        if not parts:
            return pa.table({f: pa.array([], pa.string()) for f in fields})
        return pa.concat_tables(parts)

    # -- whole tables ---------------------------------------------------------------------------
    def submit(self, object_name: str, external_id_field: str | None, table: pa.Table,
               operation: str = "upsert",
               on_submitted: Callable[[SubmittedJob], None] | None = None,
               before_each: Callable[[int], None] | None = None,
               on_created: Callable[[SubmittedJob], None] | None = None,
               on_abandoned: Callable[[SubmittedJob], None] | None = None
               ) -> list[SubmittedJob]:
        """Create, upload and close the jobs that carry ``table`` (in its row order);
        ``before_each`` is called with each job's row count before the job is created (it
        may raise to send nothing more). ``on_created`` is told of each job as soon as the
        org has created it (before its upload: a process killed after the close still has
        it on record), ``on_abandoned`` of a job given up after a failed upload (aborted, or
        left open when the abort failed too: never processed; its rows go in a new job),
        ``on_submitted`` of each job once closed."""
        submitted = []
        for payload in split_jobs(table, self.max_job_bytes, self.chunk_rows):
            if before_each:
                before_each(payload.stop - payload.start)
            job = self._submit_one(object_name, operation, external_id_field, payload,
                                   on_created, on_abandoned)
            log.info("submitted %s job %s: rows %d-%d, %d bytes", object_name, job.job_id,
                     job.start, job.stop, job.bytes)
            if on_submitted:
                on_submitted(job)
            submitted.append(job)
        return submitted

    def _submit_one(self, object_name: str, operation: str, key: str | None,
                    payload: JobPayload,
                    on_created: Callable[[SubmittedJob], None] | None,
                    on_abandoned: Callable[[SubmittedJob], None] | None) -> SubmittedJob:
        for attempt in range(1, self.upload_attempts + 1):
            job = SubmittedJob(self.create_job(object_name, operation, key)["id"],
                               payload.start, payload.stop, len(payload.data))
            if on_created:
                on_created(job)
            try:
                self.upload(job.job_id, payload.data)
            except (OrgUnreachableError, SalesforceApiError) as exc:
                if isinstance(exc, SalesforceApiError) and exc.status < 500 and (
                        exc.error_code != "INVALIDJOBSTATE"):
                    raise  # the data or the job definition is wrong: a new job won't help
                log.warning("upload to job %s failed (%s); aborting it and starting a new job "
                            "(%d/%d)", job.job_id, exc, attempt, self.upload_attempts)
                try:
                    self.abort(job.job_id)
                except Exception as abort_error:  # the org may still be unreachable
                    log.warning("could not abort job %s: %s", job.job_id, abort_error)
                if on_abandoned:
                    on_abandoned(job)
                if attempt == self.upload_attempts:
                    raise
                continue
            self.close(job.job_id)
            return job
        raise AssertionError("unreachable")

    def collect(self, submitted: list[SubmittedJob], table: pa.Table,
                external_id_field: str | None, progress: Progress | None = None
                ) -> LoadOutcome:
        """Wait for the jobs (``progress``: see ``wait``), then one outcome per input row (in
        input order)."""
        infos = self.wait([j.job_id for j in submitted], progress=progress)
        key = external_id_field or "Id"
        keys = bulk_table(table.select([key])) if key in table.column_names else None
        parts = []
        for job in submitted:
            results = self.results(job.job_id, key)
            rows = (keys.slice(job.start, job.stop - job.start) if keys is not None else None)
            parts.append(join_outcomes(rows, key, results, lambda j=job: bulk_table(
                table.slice(j.start, j.stop - j.start))))
            infos[job.job_id] = {**infos[job.job_id], "unprocessed": results.unprocessed.num_rows,
                                 "rows": job.stop - job.start}
        rows = pa.concat_tables(parts) if parts else OUTCOME.empty_table()
        if rows.num_rows != table.num_rows:
            raise BulkJobError(f"the jobs cover {rows.num_rows} rows of a {table.num_rows}-row "
                               "table; submit and collect were given different tables")
        return LoadOutcome(rows, [infos[j.job_id] for j in submitted])

    def job_rows(self, table: pa.Table) -> list[int]:
        """The row count of each job :meth:`submit` would create for ``table``."""
        return [p.stop - p.start for p in split_jobs(table, self.max_job_bytes,
                                                     self.chunk_rows)]

    def upsert(self, object_name: str, external_id_field: str, table: pa.Table,
               progress: Progress | None = None) -> LoadOutcome:
        """Upsert every row of ``table``; the outcome has one row per input row."""
        return self.collect(self.submit(object_name, external_id_field, table), table,
                            external_id_field, progress)
