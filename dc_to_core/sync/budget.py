"""The limit budget: what a load needs of the org's daily allocations, and whether it fits.

Salesforce counts ``DailyBulkApiBatches`` (each 10,000-row chunk of an ingest job is one
batch) and ``DailyApiRequests`` (every HTTP call) over a rolling 24 hours. dc_to_core works
only while the org's usage stays at most ``share`` (default 80 %) of each daily maximum, so
the rest stays for the org's other integrations and its users: a partition whose forecast
would take the usage past it sends nothing, and a load stops before the job that would.
The forecast is exact for jobs and batches (the rows to send are known before anything is
sent); API calls add the calls every job makes and an estimate of its status polls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa

from ..salesforce.bulk_csv import CHUNK_ROWS
from ..salesforce.errors import SalesforceError

BATCHES, API = "DailyBulkApiBatches", "DailyApiRequests"
CALLS_PER_JOB = 7       # create, upload, close, three result files, the /limits look first
POLLS_PER_JOB = 10      # an estimate: status polls while the org processes the job
DEFAULT_SHARE = 0.8


class BudgetExceeded(SalesforceError):
    """Work that would take the org's usage past the budget; nothing more is sent.
    ``short`` says it in a table cell."""

    def __init__(self, message: str, short: str = "refused") -> None:
        super().__init__(message)
        self.short = short
        self.outcome: pa.Table | None = None  # what the org did before the stop (OUTCOME
        self.rows: pa.Array | None = None     # rows), for these rows of the load's table


@dataclass(frozen=True)
class Need:
    jobs: int = 0
    batches: int = 0
    api_calls: int = 0

    def __add__(self, other: Need) -> Need:
        return Need(self.jobs + other.jobs, self.batches + other.batches,
                    self.api_calls + other.api_calls)


def job_need(rows: int, chunk_rows: int = CHUNK_ROWS) -> Need:
    """One ingest job of ``rows`` rows: ⌈rows / 10,000⌉ batches (at least one)."""
    return Need(1, max(1, -(-rows // chunk_rows)), CALLS_PER_JOB + POLLS_PER_JOB)


def forecast(job_rows: Iterable[int], chunk_rows: int = CHUNK_ROWS) -> Need:
    total = Need()
    for rows in job_rows:
        total += job_need(rows, chunk_rows)
    return total


@dataclass(frozen=True)
class Budget:
    """``share`` of each daily maximum that dc_to_core may bring the org's usage to."""

    share: float = DEFAULT_SHARE

    def check(self, limits: dict, need: Need, what: str) -> None:
        """Raise :class:`BudgetExceeded` naming the limit and the numbers when ``need`` does
        not fit (``limits``: the body of ``/limits``)."""
        for kind, n in ((BATCHES, need.batches), (API, need.api_calls)):
            entry = limits.get(kind)
            if not entry or not n:
                continue
            most, remaining = int(entry["Max"]), int(entry["Remaining"])
            used, allowed = most - remaining, int(self.share * most)
            if used + n > allowed:
                raise BudgetExceeded(refusal(what, kind, n, used, most, allowed, self.share),
                                     f"refused: {kind} {used:,} used + {n:,} needed > "
                                     f"{allowed:,} ({self.share:.0%} of {most:,})")

    def guard(self, read_limits: Callable[[], dict], what: str) -> Callable[[int], None]:
        """A check to call before each job of ``rows`` rows (reads ``/limits`` each time)."""
        def before_job(rows: int) -> None:
            self.check(read_limits(), job_need(rows), what)
        return before_job


def refusal(what: str, kind: str, n: int, used: int, most: int, allowed: int, share: float
            ) -> str:
    frees = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=24)).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{what} needs {n:,} {kind} but the org has used {used:,} of {most:,} in the last "
            f"24 h and dc_to_core stops at {share:.0%} of it ({allowed:,}): nothing more is "
            f"sent. Salesforce counts a rolling 24 h window, so the allocation frees as the "
            f"usage of the last 24 h ages out (all of it by {frees}). Re-run the partition "
            "then, or raise DC_TO_CORE_LIMIT_SHARE (or the org's allocation)")


def quota_exhausted(what: str, message: str) -> BudgetExceeded:
    """The org itself refused a job for its allocation (``ExceededQuota``)."""
    return BudgetExceeded(f"{what}: the org refused a Bulk job for its daily allocation "
                          f"({message}). Nothing more is sent and nothing is re-passed: "
                          "Salesforce counts a rolling 24 h window, so re-run the partition "
                          "once usage has aged out, or raise the org's allocation",
                          "refused by the org: ExceededQuota")


def quota_failed(info: dict) -> bool:
    """Whether the org failed the job for its daily allocation (``ExceededQuota``)."""
    return info.get("state") == "Failed" and str(info.get("errorMessage") or "").startswith(
        "ExceededQuota")


def stop_on_quota(what: str, jobs: list[dict]) -> None:
    """A job the org failed for its allocation stops the load: its rows are not transient, a
    re-pass would only spend more."""
    for info in filter(quota_failed, jobs):
        raise quota_exhausted(what, str(info.get("errorMessage")))
