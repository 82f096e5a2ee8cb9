"""The emulated org: storage, clock, limits, tokens, jobs and the Bulk engine, wired together."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pyarrow as pa

from .clock import EmulatedClock
from .csvio import CsvError
from .dcquery import DataCloudQueries
from .engine import Engine
from .errors import ApiError
from .ids import IdGenerator
from .jobs import JobStore
from .limits import Limits
from .profile import FaultProfile, OrgProfile
from .queryjobs import QueryJobStore
from .schema import SYSTEM_FIELDS, OrgSchema, load_schema
from .storage import Storage, quote_ident
from .tokens import AppCredentials, TokenStore

log = logging.getLogger("dc_to_core.emulator")
# Physical constants that shape the running engine; the rest of the profile may change live.
FROZEN = ("time_scale", "workers", "name")


class Org:
    """One org in one data dir. ``start()`` resumes any job a previous run left in progress."""

    def __init__(self, data_dir: str | Path, profile: OrgProfile, app: AppCredentials,
                 schema: OrgSchema | None = None) -> None:
        self.schema = schema or load_schema()
        self.profile = profile
        self.app = app
        self.storage = Storage(data_dir, self.schema)
        self.clock = EmulatedClock(profile.time_scale, self.storage)
        self.org_id = self._identity("org_id", "00D")
        self.user_id = self._identity("user_id", "005")
        self._running_user_record(app.username)
        self.limits = Limits(profile, self.clock, self.storage)
        self.tokens = TokenStore(self.storage, self.clock, profile, app, self.org_id,
                                 self.user_id)
        self.jobs = JobStore(self.storage, self.clock, self.schema, profile, self.user_id)
        self.queries = QueryJobStore(self.storage, self.clock, self.schema, profile,
                                     self.limits, self.user_id)
        self.ids = {name: self.storage.ids(name) for name in self.schema.core}
        self.engine = Engine(profile, self.clock, self.storage, self.limits, self.ids,
                             self.user_id)
        self.datacloud = DataCloudQueries(self.storage.dc_path, self.clock,
                                          profile.dc_query_latency_ms, profile.faults)

    def _identity(self, key: str, prefix: str) -> str:
        value = self.storage.get_meta(key)
        if value is None:
            value = IdGenerator(prefix, start=secrets.randbelow(10**6)).next()
            self.storage.set_meta(key, value)
        return value

    def _running_user_record(self, username: str) -> None:
        """The running user is a User record, as in any org (what ``OwnerId`` defaults to)."""
        user = self.schema.core.get("User")
        if user is None:
            return
        values = {k: v for k, v in (("Username", username), ("LastName", "Integration"),
                                    ("Email", username)) if k in user.fields}
        stamp = EmulatedClock.stamp()
        names = ", ".join(quote_ident(c) for c in [*SYSTEM_FIELDS, *values])
        with self.storage.write_lock:
            self.storage.core.execute(
                f'INSERT OR IGNORE INTO "User" ({names}) VALUES '
                f"({', '.join('?' * (len(SYSTEM_FIELDS) + len(values)))})",
                (self.user_id, stamp, stamp, stamp, *values.values()))

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.engine.start()
        self._resume_jobs()

    def stop(self) -> None:
        self.engine.stop()
        self.storage.close()

    def _resume_jobs(self) -> None:
        rows = self.storage.reader().execute(
            "SELECT id FROM ingest_job WHERE deleted=0 AND state IN "
            "('UploadComplete', 'InProgress') ORDER BY seq").fetchall()
        for (job_id,) in rows:
            done = {r[0] for r in self.storage.read_results(job_id)}
            table = self._readable(job_id)
            if table is None:
                continue
            remaining = [i for i in range(table.num_rows) if i not in done]
            log.info("resuming job %s: %d rows not yet processed", job_id, len(remaining))
            self.engine.submit(job_id, self._plan_args(job_id), table, remaining)

    def _plan_args(self, job_id: str) -> tuple:
        row = self.jobs.row(job_id)
        obj = self.schema.core[row["object"]]
        return (self.schema, obj, row["operation"], row["external_id_field"])

    # -- job operations that involve the engine ------------------------------------------------
    def close_job(self, job_id: str) -> dict:
        info = self.jobs.transition(job_id, "UploadComplete")
        table = self._readable(job_id)
        if table is not None:
            self.engine.submit(job_id, self._plan_args(job_id), table)
        return info

    def _readable(self, job_id: str) -> pa.Table | None:
        """The job's rows; a CSV that cannot be read fails the job with Salesforce's
        ``InvalidBatch`` message (no row processed), as the org does after a close."""
        try:
            return self.jobs.table(job_id)
        except CsvError as exc:
            log.info("job %s failed: %s", job_id, exc)
            self.jobs.fail(job_id, str(exc))
            return None

    def abort_job(self, job_id: str) -> dict:
        info = self.jobs.transition(job_id, "Aborted")
        self.engine.abort(job_id)
        return info

    # -- profile -----------------------------------------------------------------------------
    def update_profile(self, changes: dict) -> OrgProfile:
        """Change live settings (faults, costs, limits); the clock and worker pool are fixed."""
        frozen = [k for k in changes if k in FROZEN and changes[k] != getattr(self.profile, k)]
        if frozen:
            raise ApiError(400, "INVALID_FIELD", f"{', '.join(frozen)} can only be set when the "
                           "emulator starts")
        merged = self.profile.model_dump() | {k: v for k, v in changes.items() if k != "faults"}
        if "faults" in changes:
            merged["faults"] = self.profile.faults.model_dump() | dict(changes["faults"] or {})
        try:
            checked = OrgProfile.model_validate(merged)
        except ValueError as exc:
            raise ApiError(400, "INVALID_FIELD", str(exc)) from None
        for key in OrgProfile.model_fields:
            if key != "faults":
                setattr(self.profile, key, getattr(checked, key))
        for key in FaultProfile.model_fields:
            setattr(self.profile.faults, key, getattr(checked.faults, key))
        self.engine.rng.seed(self.profile.faults.seed)
        return self.profile
