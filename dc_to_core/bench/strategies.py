"""What the benchmark compares: the org's ceiling, the seeds' strategies replayed, and the
plain script a user would write. (dc_to_core itself is in ``nightly.py``.)

The seed replays follow ../shared/seeds (read in the README's benchmark section): one Bulk
API 2.0 job per page of ``job_rows`` rows read from Data Cloud by keyset, partitions as
threads started ``stagger`` apart, a gap between a partition's jobs, and a retry that resubmits
the same rows as a new job only when an API call fails. The seeds never read job results and
never wait for a job to finish; success is the Core count at the end.

Each partition keeps to its own timeline in *org* time (``Pacer``): a job is due one modelled
job's work (``JOB_WORK_S``: the Data Cloud page and three Bulk calls, as the platform answers
them) plus the seed's gap after the previous one was due. So how close together the jobs land
is the seed's design, not this machine's speed: at time scale 50 a client's few milliseconds
of CPU would otherwise be seconds of org time. The replay reports how late it ran.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ..salesforce.bulk_csv import split_jobs
from ..salesforce.datacloud import DataCloud
from ..salesforce.errors import OrgUnreachableError, SalesforceApiError
from .org import OPPORTUNITIES_DMO, BenchOrg

SOURCE_COLUMNS = ["ExternalId__c", "Name__c", "StageName__c", "CloseDate__c", "Amount__c",
                  "Probability__c", "LeadSource__c", "AccountExternalId__c"]
TARGET_COLUMNS = ["External_Id__c", "Name", "StageName", "CloseDate", "Amount", "Probability",
                  "LeadSource", "Account.External_Id__c"]
SEED_ROWS = 2_000_000   # the seeds' runs; staggers scale with rows / SEED_ROWS
API_CALL_S = 0.3        # a real org's answer to one callout (~100-500 ms), in org seconds
JOB_WORK_S = 4 * API_CALL_S   # one seed job: Data Cloud page, create, upload, close


@dataclass(frozen=True)
class SeedStrategy:
    name: str
    description: str
    job_rows: int
    partitions: int
    stagger_s: float                 # between partition starts, at 2 M rows
    gap_s: tuple[float, float]       # between a partition's jobs (uniform)
    retries: int = 0                 # resubmissions after a failed API call
    retry_delays_s: tuple[float, ...] = ()
    # The fastest clock at which a 2-core machine keeps this replay on its org-time schedule
    # (its JSON reports paced_steps_late): ten partitions a 500-row job every ~16 s need 20
    # (2,000-row jobs: 10), five partitions a job every ~26 s keep up at 50. Emulated results
    # do not depend on it.
    max_time_scale: float = 20.0


SEEDS = [
    SeedStrategy("seed Test3", "2,000-row jobs, 10 partitions at once, no retry", 2000, 10,
                 0, (10, 20), max_time_scale=10.0),
    SeedStrategy("seed Test4", "500-row jobs, 10 partitions at once, no retry", 500, 10,
                 0, (10, 20)),
    SeedStrategy("seed Test7", "500-row jobs, 10 partitions at once, immediate retry x3",
                 500, 10, 0, (10, 20), retries=3),
    SeedStrategy("seed Test8", "500-row jobs, 5 partitions 1.5 h apart, 20-30 s between "
                 "jobs, retry x3", 500, 5, 5400, (20, 30), retries=3, max_time_scale=50.0),
]


def to_target(source: pa.Table) -> pa.Table:
    """Source columns renamed to the Opportunity upload columns (no reordering)."""
    return source.select(SOURCE_COLUMNS).rename_columns(TARGET_COLUMNS)


def by_parent(table: pa.Table) -> pa.Table:
    return table.take(pc.sort_indices(table, [("Account.External_Id__c", "ascending")]))


def ceiling(org: BenchOrg, source: pa.Table) -> dict:
    """Every row pre-sorted by parent, submitted at once (split only at 100 MB): the org's
    capacity. Reading Data Cloud is not part of it."""
    bulk = org.bulk()
    outcome = bulk.upsert("Opportunity", "External_Id__c", by_parent(to_target(source)))
    return {"bulk_jobs": len(outcome.jobs)}


def plain_script(org: BenchOrg, source: pa.Table) -> dict:
    """What a user writes with simple-salesforce's bulk2: one upsert of every row in source
    order, results fetched, no retry of failed rows."""
    outcome = org.bulk().upsert("Opportunity", "External_Id__c", to_target(source))
    return {"bulk_jobs": len(outcome.jobs)}


def pages(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Record batches regrouped into tables of exactly ``rows`` rows (the last may be short):
    one seed job per ``LIMIT rows`` page, however the client split the page into batches."""
    buffer: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        buffer.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(buffer)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            buffer, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(buffer)


class Pacer:
    """One partition's timeline in org time: ``advance`` moves its next due time on and
    sleeps until the org's clock reaches it. A client that falls behind catches up (no sleep)
    rather than stretching the schedule; how far behind it fell is recorded."""

    def __init__(self, org: BenchOrg, start_s: float) -> None:
        self.org = org
        self.due = start_s
        self.steps = 0
        self.late_s: list[float] = []

    def advance(self, emulated_s: float, counted: bool = True) -> None:
        self.steps += counted
        self.due += emulated_s
        now = self.org.emulated_now()
        if now >= self.due and counted:
            self.late_s.append(now - self.due)
        while now < self.due:  # again after waking: the org's clock may have been held back
            time.sleep((self.due - now) / self.org.time_scale)
            now = self.org.emulated_now()


def seed_replay(org: BenchOrg, strategy: SeedStrategy, rows: int, boundaries: list[str],
                seed: int = 0) -> dict:
    """Replay one seed strategy; returns job, retry and pacing counts once every job ran."""
    datacloud = DataCloud(auth=org.auth)
    bulk = org.bulk()
    stagger = strategy.stagger_s * rows / SEED_ROWS
    ranges = list(zip([None, *boundaries], [*boundaries, None], strict=True))
    counters = {"bulk_jobs": 0, "api_retries": 0, "abandoned_pages": 0}
    lock = threading.Lock()
    pacers: list[Pacer] = []

    def count(key: str) -> None:
        with lock:
            counters[key] += 1

    def submit(page: pa.Table, pacer: Pacer) -> None:
        data = next(iter(split_jobs(to_target(page)))).data
        for attempt in range(strategy.retries + 1):
            if attempt:  # the failed attempt's calls, then the seed's backoff
                count("api_retries")
                delays = strategy.retry_delays_s
                pacer.advance(JOB_WORK_S + (delays[min(attempt, len(delays)) - 1]
                                            if delays else 0.0))
            try:
                job_id = bulk.create_job("Opportunity", "upsert", "External_Id__c")["id"]
                count("bulk_jobs")
                bulk.upload(job_id, data)
                bulk.close(job_id)
                return
            except (OrgUnreachableError, SalesforceApiError):
                continue
        count("abandoned_pages")

    def partition(i: int, start: str | None, end: str | None, pacer: Pacer) -> None:
        rng = random.Random(seed * 100 + i)
        pacer.advance(i * stagger, counted=False)  # thread start-up is not the seed's lag
        for page in pages(datacloud.read_range(OPPORTUNITIES_DMO, SOURCE_COLUMNS[1:],
                                               "ExternalId__c", start, end, strategy.job_rows),
                          strategy.job_rows):
            submit(page, pacer)
            pacer.advance(JOB_WORK_S + rng.uniform(*strategy.gap_s))

    t0 = org.emulated_now()
    threads = []
    for i, (s, e) in enumerate(ranges):
        pacers.append(Pacer(org, t0))
        threads.append(threading.Thread(target=partition, args=(i, s, e, pacers[-1]),
                                        daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    org.wait_until_idle()
    late = [s for p in pacers for s in p.late_s]
    steps = sum(p.steps for p in pacers)
    return {**counters, "paced_steps": steps, "paced_steps_late": len(late),
            "paced_max_late_s": round(max(late, default=0.0), 1),
            "paced_mean_late_s": round(sum(late) / max(1, len(late)), 2)}
