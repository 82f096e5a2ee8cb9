"""The limit budget before loads are requested: a custom automation condition, last in each
sync's condition (``conditions.py``), evaluated in the code server.

The partitions due (the night's, or ranges changed in Data Cloud) are requested only if their
forecast fits the budget (``sync.budget``): each partition needs what its latest load sent
(the ``forecast_bulk_jobs`` / ``_batches`` of its latest materialization), or, never loaded,
one batch per started 10,000 of its share of the source's rows. The org's usage comes from
``/limits``, read with one attempt and at most once per ``LOOK_EVERY_S`` of evaluation time
per sync and forecast. What does not fit is not requested: the evaluation is false with the
numbers in its metadata (the asset's Automation tab) and a warning in the sensor's log; it is
evaluated again on later ticks and requested once the rolling window has freed enough. An
org whose limits cannot be read does not hold the loads back: each run checks the budget
again before its first job.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import dagster as dg

from ..salesforce.bulk_csv import CHUNK_ROWS
from ..salesforce.errors import SalesforceError
from ..sync.budget import Budget, BudgetExceeded, Need, forecast, job_need
from ..sync.loading import small_load_jobs
from .settings import limit_share

log = logging.getLogger("dc_to_core.orchestration.budget_condition")
LOOK_EVERY_S = 300.0
_seen: dict[str, tuple[float, str | None, Need]] = {}  # sync -> the last look's (evaluation
                                                       # time, refusal, need)


_orgs: dict = {}  # login URL -> the one REST client of this process for that org


def _default_limits() -> dict:
    """``/limits`` of the pipeline's org (the code server's environment), one attempt: an org
    that does not answer must not hold the sensor's tick for minutes."""
    from ..salesforce.rest import RestApi
    from .resources import salesforce_auth

    auth = salesforce_auth(os.environ, resolve=True)
    if auth.login_url not in _orgs:
        _orgs[auth.login_url] = RestApi(auth=auth, retry_attempts=1)
    return _orgs[auth.login_url].limits()


def night_need(instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str],
               rows_per_partition: int) -> Need:
    """What the given partitions will need tonight, from their last nights."""
    total = Need()
    for p in partitions:
        found = instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=key, asset_partitions=[p]), limit=1).records
        meta = found[0].asset_materialization.metadata if found else {}
        jobs, batches = meta.get("forecast_bulk_jobs"), meta.get("forecast_bulk_batches")
        if jobs is None or batches is None:
            jobs = small_load_jobs(rows_per_partition, CHUNK_ROWS)  # as a load cuts it
            total += forecast([rows_per_partition // jobs] * jobs) if rows_per_partition else (
                Need())
        else:
            per_job = job_need(0).api_calls
            total += Need(int(jobs.value), int(batches.value), int(jobs.value) * per_job)
    return total


class WithinLimitBudget(dg.AutomationCondition):
    """True for the candidate partitions when tonight's forecast fits the limit budget."""

    def __init__(self, sync: str, rows_per_partition: int,
                 read_limits: Callable[[], dict] | None = None) -> None:
        self.sync = sync
        self.rows_per_partition = rows_per_partition
        self.read_limits = read_limits or _default_limits

    @property
    def description(self) -> str:
        return "the forecast of what is due fits the limit budget (DC_TO_CORE_LIMIT_SHARE)"

    @property
    def name(self) -> str:
        return "within_limit_budget"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        candidates = context.candidate_subset
        if candidates.is_empty:
            return dg.AutomationResult(context=context, true_subset=candidates)
        keys = sorted(candidates.expensively_compute_partition_keys())
        need = night_need(context.asset_graph_view.instance, context.key, keys,
                          self.rows_per_partition)
        refusal = self._refusal(need, len(keys), context.evaluation_time.timestamp())
        metadata = {"forecast_bulk_jobs": dg.MetadataValue.int(need.jobs),
                    "forecast_bulk_batches": dg.MetadataValue.int(need.batches),
                    "forecast_api_calls": dg.MetadataValue.int(need.api_calls)}
        if refusal is None:
            return dg.AutomationResult(context=context, true_subset=candidates,
                                       metadata=metadata)
        context.log.warning(f"not starting the {self.sync} load due now: {refusal}")
        return dg.AutomationResult(context=context, true_subset=context.get_empty_subset(),
                                   metadata={**metadata, "refused": dg.MetadataValue.text(
                                       refusal)})

    def _refusal(self, need: Need, partitions: int, now: float) -> str | None:
        seen = _seen.get(self.sync)
        if seen is not None and seen[2] == need and 0 <= now - seen[0] < LOOK_EVERY_S:
            return seen[1]
        refusal = None
        try:
            share = limit_share(os.environ)
            if need.jobs:
                Budget(share).check(self.read_limits(), need, f"the {self.sync} load due now "
                                    f"({partitions} partition(s), {need.jobs} job(s))")
        except BudgetExceeded as exc:
            refusal = str(exc)
        except (SalesforceError, ValueError) as exc:  # the runs check again before each job
            log.warning("cannot check the limit budget of the %s load due now (%s); starting "
                        "it anyway: each run checks the budget before its first job",
                        self.sync, exc)
        _seen[self.sync] = (now, refusal, need)
        return refusal
