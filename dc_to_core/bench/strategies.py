"""What the benchmark compares: the org's ceiling, the seeds' strategies replayed, and the
plain script a user would write. (dc_to_core itself is in ``nightly.py``.)

The seed replays follow ../shared/seeds (read in the README's benchmark section): one Bulk
API 2.0 job per page of ``job_rows`` rows read from Data Cloud by keyset, partitions as
threads started ``stagger`` apart, a gap between a partition's jobs, and a retry that resubmits
the same rows as a new job only when an API call fails. The seeds never read job results and
never wait for a job to finish; success is the Core count at the end. Waits are in emulated
seconds, divided by the org's time scale.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ..bulk_csv import split_jobs
from ..datacloud import DataCloudResource
from ..errors import OrgUnreachableError, SalesforceApiError
from .org import OPPORTUNITIES_DMO, BenchOrg

SOURCE_COLUMNS = ["ExternalId__c", "Name__c", "StageName__c", "CloseDate__c", "Amount__c",
                  "Probability__c", "LeadSource__c", "AccountExternalId__c"]
TARGET_COLUMNS = ["External_Id__c", "Name", "StageName", "CloseDate", "Amount", "Probability",
                  "LeadSource", "Account.External_Id__c"]
SEED_ROWS = 2_000_000   # the seeds' runs; staggers scale with rows / SEED_ROWS


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


SEEDS = [
    SeedStrategy("seed Test3", "2,000-row jobs, 10 partitions at once, no retry", 2000, 10,
                 0, (10, 20)),
    SeedStrategy("seed Test4", "500-row jobs, 10 partitions at once, no retry", 500, 10,
                 0, (10, 20)),
    SeedStrategy("seed Test7", "500-row jobs, 10 partitions at once, immediate retry x3",
                 500, 10, 0, (10, 20), retries=3),
    SeedStrategy("seed Test8", "500-row jobs, 5 partitions 1.5 h apart, 20-30 s between "
                 "jobs, retry x3", 500, 5, 5400, (20, 30), retries=3),
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


def seed_replay(org: BenchOrg, strategy: SeedStrategy, rows: int, boundaries: list[str],
                seed: int = 0) -> dict:
    """Replay one seed strategy; returns job and retry counts once every job is finished."""
    scale = org.time_scale
    datacloud = DataCloudResource(auth=org.auth)
    bulk = org.bulk()
    stagger = strategy.stagger_s * rows / SEED_ROWS
    ranges = list(zip([None, *boundaries], [*boundaries, None], strict=True))
    counters = {"bulk_jobs": 0, "api_retries": 0, "abandoned_pages": 0}
    lock = threading.Lock()

    def submit(page: pa.Table) -> None:
        data = next(iter(split_jobs(to_target(page)))).data
        for attempt in range(strategy.retries + 1):
            if attempt:
                with lock:
                    counters["api_retries"] += 1
                delays = strategy.retry_delays_s
                if delays:
                    time.sleep(delays[min(attempt, len(delays)) - 1] / scale)
            try:
                job_id = bulk.create_job("Opportunity", "upsert", "External_Id__c")["id"]
                with lock:
                    counters["bulk_jobs"] += 1
                bulk.upload(job_id, data)
                bulk.close(job_id)
                return
            except (OrgUnreachableError, SalesforceApiError):
                continue
        with lock:
            counters["abandoned_pages"] += 1

    def partition(i: int, start: str | None, end: str | None) -> None:
        rng = random.Random(seed * 100 + i)
        time.sleep(i * stagger / scale)
        for page in pages(datacloud.read_range(OPPORTUNITIES_DMO, SOURCE_COLUMNS[1:],
                                               "ExternalId__c", start, end, strategy.job_rows),
                          strategy.job_rows):
            submit(page)
            time.sleep(rng.uniform(*strategy.gap_s) / scale)

    threads = [threading.Thread(target=partition, args=(i, s, e), daemon=True)
               for i, (s, e) in enumerate(ranges)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    org.wait_until_idle()
    return counters
