"""The org profile: every physical constant and fault switch of the emulated org in one object.

Durations are *emulated* seconds or milliseconds, i.e. what a real org would take. The emulator
divides them by ``time_scale`` to get wall time, so a 2 M row night runs in minutes. Values
reported to clients that they use for their own wall-clock caches (a Data Cloud token's
``expires_in``) are converted back to wall seconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator


class FaultProfile(BaseModel):
    """Fault injection switches. All off by default; rates are probabilities per request."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, description="Seed of the fault random generator (deterministic runs).")
    path_pattern: str = Field(
        "", description="Regex; faults apply only to request paths matching it ('' = all)."
    )
    error_rate: float = Field(0.0, ge=0, le=1, description="Random 500/503 on an API call.")
    error_statuses: list[int] = Field(default_factory=lambda: [500, 503])
    throttle_rate: float = Field(0.0, ge=0, le=1, description="429 with Retry-After.")
    retry_after_s: float = Field(1.0, ge=0, description="Retry-After value (wall seconds).")
    request_limit_rate: float = Field(
        0.0, ge=0, le=1, description="403 REQUEST_LIMIT_EXCEEDED although quota remains."
    )
    reset_rate: float = Field(
        0.0, ge=0, le=1, description="Connection dropped mid-request or mid-response body."
    )
    slow_rate: float = Field(0.0, ge=0, le=1, description="Response delayed by slow_s.")
    slow_s: float = Field(0.0, ge=0, description="Delay of a slow response (wall seconds).")
    expire_token_every: int = Field(
        0, ge=0, description="Invalidate the calling token after every N authenticated calls."
    )
    job_fail_rate: float = Field(
        0.0, ge=0, le=1, description="A closed ingest job turns Failed before any row is written."
    )
    job_fail_key: str = Field(
        "", description="Regex: a closed ingest job holding a row whose upsert key matches "
        "turns Failed, whatever job_fail_rate says (a poison record; '' = off)."
    )
    chunk_die_rate: float = Field(
        0.0, ge=0, le=1, description="A chunk dies part-way; its rest is unprocessed, job Failed."
    )
    dc_truncate_rows: int = Field(
        0, ge=0, description="A Data Cloud query with a LIMIT returns at most this many rows, "
        "as if its result were cut short: a truncated read, which must never look like rows "
        "removed (0 = off)."
    )

    @field_validator("job_fail_key")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"job_fail_key is not a regular expression: {exc}") from None
        return value


class OrgProfile(BaseModel):
    """Physical model of the org. Defaults are the benchmark profile (see README, calibration)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "default"
    time_scale: float = Field(
        50.0, gt=0, description="Emulated seconds per wall second (50 = a 7 h night in 8.4 min)."
    )
    workers: int = Field(
        32, ge=1, description="Org-wide Bulk workers taking 10,000-row chunks from one queue "
        "(calibrated against the seeds' runs, see README)."
    )
    chunk_rows: int = Field(10_000, ge=1, description="Rows per internal Bulk chunk (batch).")
    txn_rows: int = Field(200, ge=1, description="Rows per DML transaction inside a chunk.")
    txn_base_ms: float = Field(40.0, ge=0, description="Fixed cost of one DML transaction.")
    row_ms: float = Field(
        6.0, ge=0, description="Per committed row: DML plus triggers/flows on the object "
        "(calibrated, see README)."
    )
    failed_row_ms: float = Field(0.5, ge=0, description="Per row that fails inside a txn.")
    chunk_start_ms: float = Field(250.0, ge=0, description="Worker overhead to start a chunk.")
    job_start_latency_s: float = Field(
        2.0, ge=0, description="From UploadComplete until the job's chunks join the queue."
    )
    lock_timeout_s: float = Field(
        5.0, ge=0, description="One deadline for all lock waits of one DML statement "
        "(calibrated, see README; the platform waits 'a few seconds' up to about 10)."
    )
    requeue_lock_failures: int = Field(
        100, ge=0, description="A chunk with more lock failures than this is re-queued."
    )
    max_requeues: int = Field(10, ge=0, description="Re-queues of one chunk before job Failed.")
    token_ttl_s: float = Field(7200.0, gt=0, description="Core session lifetime (emulated).")
    dc_token_ttl_s: float = Field(7200.0, gt=0, description="Data Cloud token lifetime.")
    daily_api_requests: int = Field(1_000_000, ge=0, description="DailyApiRequests Max.")
    daily_bulk_batches: int = Field(15_000, ge=0, description="DailyBulkApiBatches Max.")
    max_upload_bytes: int = Field(
        100 * 1024 * 1024, ge=1, description="Raw CSV bytes per job (150 MB after base64)."
    )
    dc_v2_batch_rows: int = Field(49_999, ge=1, description="Query API v2 rows per batch.")
    dc_sql_max_rows: int = Field(
        100_000, ge=1, description="ssot/query-sql rows per response page (8 MB-ish cap)."
    )
    dc_query_latency_ms: float = Field(
        50.0, ge=0, description="Emulated time until a Data Cloud query has results."
    )
    dc_sync_wait_ms: float = Field(
        5000.0, ge=0, description="How long a query-sql POST waits before answering Running."
    )
    rest_page_rows: int = Field(2000, ge=1, description="REST query records per page.")
    query_job_base_s: float = Field(
        2.0, ge=0, description="Emulated seconds before any Bulk API 2.0 query job completes."
    )
    query_job_ms_per_1k_rows: float = Field(
        20.0, ge=0, description="Emulated ms a Bulk query job adds per thousand records."
    )
    faults: FaultProfile = Field(default_factory=FaultProfile)

    def wall(self, emulated_seconds: float) -> float:
        """Wall seconds that ``emulated_seconds`` take in this org."""
        return emulated_seconds / self.time_scale


PROFILES: dict[str, dict] = {
    "default": {},
    # Tests: a smaller org (8 workers, 8 ms/row, 10 s lock wait: the pre-calibration physics
    # the tests were written against) on a faster clock.
    "fast": {"name": "fast", "time_scale": 200.0, "job_start_latency_s": 1.0, "workers": 8,
             "row_ms": 8.0, "lock_timeout_s": 10.0},
}


def load_profile(spec: str | Path | None = None, **overrides: object) -> OrgProfile:
    """A profile by name (``default``, ``fast``) or from a YAML/JSON file, with overrides."""
    base: dict = {}
    if spec is None or str(spec) in PROFILES:
        base = dict(PROFILES[str(spec or "default")])
    else:
        path = Path(spec)
        if not path.exists():
            known = ", ".join(PROFILES)
            raise ValueError(f"profile {spec!r} is neither a known name ({known}) nor a file")
        text = path.read_text()
        base = json.loads(text) if path.suffix == ".json" else (yaml.safe_load(text) or {})
    base.update(overrides)
    return OrgProfile.model_validate(base)
