"""The limit budget at the start of a night: a custom automation condition in the nightly
branch of each sync's condition (``conditions.py``).

When the sync's nightly tick has passed and its parents are loaded, the partitions due
tonight are requested only if their forecast fits the budget (``sync.budget``): each
partition needs what its last night sent (the ``forecast_bulk_jobs`` / ``_batches`` of its
latest materialization), or, never loaded, one batch per started 10,000 of its share of the
source's rows. The org's usage comes from ``/limits`` (read at most once per
``LOOK_EVERY_S`` per sync while the night waits). A night that does not fit is not started:
the evaluation is false with the numbers in its metadata (the asset's Automation tab) and a
warning in the sensor's log; it is evaluated again on later ticks, and starts once the rolling
window has freed enough. An org whose limits cannot be read does not hold the night back:
each run checks the budget again before its first job.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import dagster as dg

from ..salesforce.errors import SalesforceError
from ..sync.budget import Budget, BudgetExceeded, Need, forecast, job_need
from .settings import env_number

log = logging.getLogger("dc_to_core.orchestration.budget_condition")
LOOK_EVERY_S = 300.0
_seen: dict[str, tuple[float, str | None]] = {}  # sync -> (when, refusal) of the last look


def _default_limits() -> dict:
    from .resources import resources_from_env  # the daemon's environment: the pipeline's org

    return resources_from_env(resolve=True)["core"].limits()  # type: ignore[attr-defined]


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
            total += forecast([rows_per_partition]) if rows_per_partition else Need()
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
        return "tonight's forecast fits the limit budget (DC_TO_CORE_LIMIT_SHARE)"

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
        refusal = self._refusal(need, len(keys))
        metadata = {"forecast_bulk_jobs": dg.MetadataValue.int(need.jobs),
                    "forecast_bulk_batches": dg.MetadataValue.int(need.batches),
                    "forecast_api_calls": dg.MetadataValue.int(need.api_calls)}
        if refusal is None:
            return dg.AutomationResult(context=context, true_subset=candidates,
                                       metadata=metadata)
        context.log.warning(f"not starting tonight's {self.sync} load: {refusal}")
        return dg.AutomationResult(context=context, true_subset=context.get_empty_subset(),
                                   metadata={**metadata, "refused": dg.MetadataValue.text(
                                       refusal)})

    def _refusal(self, need: Need, partitions: int) -> str | None:
        seen = _seen.get(self.sync)
        if seen is not None and time.monotonic() - seen[0] < LOOK_EVERY_S:
            return seen[1]
        share = env_number(os.environ, "DC_TO_CORE_LIMIT_SHARE", "0.8")
        try:
            Budget(share).check(self.read_limits(), need, f"tonight's {self.sync} load "
                                f"({partitions} partition(s), {need.jobs} job(s))")
            refusal = None
        except BudgetExceeded as exc:
            refusal = str(exc)
        except (SalesforceError, ValueError) as exc:  # the runs check again before each job
            log.warning("cannot read the org's limits for tonight's %s load (%s); starting it "
                        "anyway: each run checks the budget before its first job", self.sync,
                        exc)
            refusal = None
        _seen[self.sync] = (time.monotonic(), refusal)
        return refusal
