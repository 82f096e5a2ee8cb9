"""Bulk API 2.0 ingest jobs: creation, upload, the state machine, job info and result CSVs."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .clock import EmulatedClock
from .csvio import DELIMITERS, CsvError, read_upload, write_csv
from .errors import ApiError, invalid_state, not_found
from .ids import IdGenerator
from .profile import OrgProfile
from .schema import OrgSchema
from .storage import Storage

OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
TERMINAL = ("JobComplete", "Failed", "Aborted")
DELETABLE = ("UploadComplete", "JobComplete", "Aborted", "Failed")
LIST_PAGE = 1000
COLUMNS = (
    "id, seq, object, operation, external_id_field, state, line_ending, column_delimiter, "
    "api_version, created_date, system_modstamp, upload_bytes, rows_total, processed, failed, "
    "retries, total_ms, api_ms, apex_ms, error_message, batches"
)


def _version(api_version: float) -> str:
    return f"v{api_version:.1f}"


class JobStore:
    """Job rows live in ``core.db``; uploaded CSVs in ``<data dir>/jobs/<id>.csv``."""

    def __init__(self, storage: Storage, clock: EmulatedClock, schema: OrgSchema,
                 profile: OrgProfile, user_id: str) -> None:
        self.storage = storage
        self.clock = clock
        self.schema = schema
        self.profile = profile
        self.user_id = user_id
        last = storage.reader().execute("SELECT max(seq) FROM ingest_job").fetchone()[0] or 0
        self._ids = IdGenerator("750", start=last)
        self._tables: dict[str, pa.Table] = {}
        self._tables_lock = threading.Lock()

    # -- rows --------------------------------------------------------------------------------
    def row(self, job_id: str) -> dict:
        cur = self.storage.reader().execute(
            f"SELECT {COLUMNS} FROM ingest_job WHERE id=? AND deleted=0", (job_id,))
        found = cur.fetchone()
        if found is None:
            raise not_found()
        return dict(zip([d[0] for d in cur.description], found, strict=True))

    def _update(self, job_id: str, **values: object) -> None:
        values["system_modstamp"] = self.clock.stamp()
        sets = ", ".join(f"{k}=?" for k in values)
        with self.storage.write_lock:
            self.storage.core.execute(
                f"UPDATE ingest_job SET {sets} WHERE id=?", (*values.values(), job_id))

    def csv_path(self, job_id: str) -> Path:
        return self.storage.data_dir / "jobs" / f"{job_id}.csv"

    # -- API operations ------------------------------------------------------------------------
    def create(self, body: dict, api_version: float) -> dict:
        obj = self.schema.object(str(body.get("object", "")))
        if obj is None:
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid object: {body.get('object')}")
        op = body.get("operation")
        if op not in OPERATIONS:
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {op}")
        ext = body.get("externalIdFieldName")
        if op == "upsert":
            names = {f.lower(): f for f in [*obj.external_ids, "Id"]}
            if not ext or str(ext).lower() not in names:
                raise ApiError(400, "INVALIDJOB", (
                    f"InvalidJob : Field name provided, {ext} does not match an External ID, "
                    f"Salesforce Id, or indexed field for {obj.name}"))
            ext = names[str(ext).lower()]
        if body.get("contentType", "CSV") != "CSV":
            raise ApiError(400, "INVALIDJOB", "InvalidJob : contentType must be CSV")
        line_ending = body.get("lineEnding", "LF")
        delimiter = body.get("columnDelimiter", "COMMA")
        if line_ending not in ("LF", "CRLF") or delimiter not in DELIMITERS:
            raise ApiError(400, "INVALIDJOB", "InvalidJob : invalid lineEnding or columnDelimiter")
        job_id = self._ids.next()
        seq = IdGenerator.sequence_of(job_id)
        stamp = self.clock.stamp()
        with self.storage.write_lock:
            self.storage.core.execute(
                "INSERT INTO ingest_job (id, seq, object, operation, external_id_field, state, "
                "line_ending, column_delimiter, api_version, created_date, system_modstamp) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (job_id, seq, obj.name, op, ext if op == "upsert" else None, "Open",
                 line_ending, delimiter, api_version, stamp, stamp))
        return self.info(job_id)

    def upload(self, job_id: str, data: bytes) -> None:
        row = self.row(job_id)
        if row["state"] != "Open":
            raise invalid_state(f"Job {job_id} is {row['state']}: data can be uploaded only "
                                "while the job is Open")
        if row["upload_bytes"]:
            raise invalid_state(f"Job {job_id} already has its data: one upload per job")
        if len(data) > self.profile.max_upload_bytes:
            raise ApiError(400, "API_ERROR", (
                f"ClientInputError : upload of {len(data)} bytes exceeds the job limit of "
                f"{self.profile.max_upload_bytes} bytes raw (150 MB after base64)"))
        self.csv_path(job_id).write_bytes(data)
        self._update(job_id, upload_bytes=max(1, len(data)))

    def transition(self, job_id: str, state: str) -> dict:
        """PATCH state: ``UploadComplete`` (close) or ``Aborted``."""
        row = self.row(job_id)
        current = row["state"]
        if state == "UploadComplete":
            if current != "Open":
                raise invalid_state(f"Closing already {current} Job not allowed")
            self._update(job_id, state="UploadComplete", closed_emu=self.clock.now())
        elif state == "Aborted":
            if current in TERMINAL:
                raise invalid_state(f"Aborting already {current} Job not allowed")
            self._update(job_id, state="Aborted",
                         error_message=row["error_message"] or "Job aborted by the user")
        else:
            raise invalid_state(f"Invalid state {state!r}: use UploadComplete or Aborted")
        return self.info(job_id, full=False)

    def fail(self, job_id: str, message: str) -> None:
        """End a closed job as Failed before any row is processed (an unreadable upload)."""
        now = self.clock.now()
        self._update(job_id, state="Failed", error_message=message, ended_emu=now)

    def delete(self, job_id: str) -> None:
        row = self.row(job_id)
        if row["state"] not in DELETABLE:
            raise ApiError(400, "API_ERROR", f"Job {job_id} is {row['state']} and cannot be "
                           "deleted until it is UploadComplete, JobComplete, Aborted or Failed")
        with self.storage.write_lock:
            self.storage.core.execute("BEGIN")
            self.storage.core.execute("UPDATE ingest_job SET deleted=1 WHERE id=?", (job_id,))
            self.storage.core.execute("DELETE FROM ingest_result WHERE job_id=?", (job_id,))
            self.storage.core.execute("COMMIT")
        self.csv_path(job_id).unlink(missing_ok=True)
        with self._tables_lock:
            self._tables.pop(job_id, None)

    def info(self, job_id: str, full: bool = True) -> dict:
        return self.render(self.row(job_id), full)

    def render(self, row: dict, full: bool = True) -> dict:
        version = _version(row["api_version"])
        out: dict = {
            "id": row["id"], "operation": row["operation"], "object": row["object"],
            "createdById": self.user_id, "createdDate": row["created_date"],
            "systemModstamp": row["system_modstamp"], "state": row["state"],
        }
        if row["external_id_field"]:
            out["externalIdFieldName"] = row["external_id_field"]
        out.update(concurrencyMode="Parallel", contentType="CSV", apiVersion=row["api_version"])
        if row["state"] == "Open":
            out["contentUrl"] = f"services/data/{version}/jobs/ingest/{row['id']}/batches"
        out.update(lineEnding=row["line_ending"], columnDelimiter=row["column_delimiter"])
        if full:
            out.update(
                jobType="V2Ingest", numberRecordsProcessed=row["processed"],
                numberRecordsFailed=row["failed"], retries=row["retries"],
                totalProcessingTime=row["total_ms"], apiActiveProcessingTime=row["api_ms"],
                apexProcessingTime=row["apex_ms"])
            if row["error_message"]:
                out["errorMessage"] = row["error_message"]
        return out

    def list(self, api_version: float, locator: str | None = None) -> dict:
        if locator is not None and not (locator.isdigit() and int(locator) < 10**9):
            raise ApiError(400, "INVALID_QUERY_LOCATOR", f"invalid query locator: {locator[:40]}"
                           " (take it from the previous page's nextRecordsUrl)")
        offset = int(locator) if locator else 0
        rows = self.storage.reader().execute(
            f"SELECT {COLUMNS} FROM ingest_job WHERE deleted=0 ORDER BY seq LIMIT ? OFFSET ?",
            (LIST_PAGE + 1, offset)).fetchall()
        names = [c.strip() for c in COLUMNS.split(",")]
        records = [self.render(dict(zip(names, r, strict=True))) for r in rows[:LIST_PAGE]]
        more = len(rows) > LIST_PAGE
        next_url = (f"/services/data/{_version(api_version)}/jobs/ingest?queryLocator="
                    f"{offset + LIST_PAGE}") if more else None
        return {"done": not more, "records": records, "nextRecordsUrl": next_url}

    # -- data and results ----------------------------------------------------------------------
    def table(self, job_id: str) -> pa.Table:
        """The uploaded rows as string columns (parsed once, kept while the job is recent)."""
        with self._tables_lock:
            if job_id in self._tables:
                return self._tables[job_id]
        row = self.row(job_id)
        path = self.csv_path(job_id)
        data = path.read_bytes() if path.exists() else b""
        table = read_upload(data, row["column_delimiter"]) if data else pa.table({})
        with self._tables_lock:
            if len(self._tables) >= 8:
                self._tables.pop(next(iter(self._tables)))
            self._tables[job_id] = table
        return table

    def forget_table(self, job_id: str) -> None:
        with self._tables_lock:
            self._tables.pop(job_id, None)

    def results(self, job_id: str, kind: str) -> bytes:
        """``successfulresults``, ``failedresults`` or ``unprocessedrecords`` as CSV bytes."""
        row = self.row(job_id)
        if row["state"] not in TERMINAL:
            raise invalid_state(f"Job {job_id} is {row['state']}: results are available once "
                                "it is JobComplete, Failed or Aborted")
        try:
            data = self.table(job_id)
        except CsvError:  # an upload the job could not read: it failed with no row processed
            return b""
        return _result_csv(data, self._result_arrays(job_id), kind)

    def _result_arrays(self, job_id: str) -> pa.Table:
        rows = self.storage.read_results(job_id)
        cols = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
        return pa.table({
            "row": pa.array(cols[0], pa.int64()), "sf_id": pa.array(cols[1], pa.string()),
            "created": pa.array(cols[2], pa.int64()), "error": pa.array(cols[3], pa.string())})


def _result_csv(data: pa.Table, results: pa.Table, kind: str) -> bytes:
    if data.num_columns == 0:
        return b""
    n = data.num_rows
    if kind == "unprocessedrecords":
        done = pc.is_in(pa.array(range(n), pa.int64()), value_set=results.column("row"))
        return write_csv(data.filter(pc.invert(done)))
    ok = pc.is_null(results.column("error"))
    picked = results.filter(ok if kind == "successfulresults" else pc.invert(ok))
    rows = data.take(picked.column("row"))
    sf_id = pc.fill_null(picked.column("sf_id"), "")
    if kind == "successfulresults":
        created = pc.if_else(pc.equal(picked.column("created"), 1), "true", "false")
        head = {"sf__Id": sf_id, "sf__Created": created}
    else:
        head = {"sf__Id": sf_id, "sf__Error": picked.column("error")}
    table = pa.table({**head, **{c: rows.column(c) for c in rows.column_names}})
    return write_csv(table)
