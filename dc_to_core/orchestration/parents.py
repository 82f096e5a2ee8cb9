"""A child's load waits for its parents' loads: the automation requests a child's partitions
while its parents are still being loaded (``conditions.py``), so its extract, prepare and
diff run meanwhile; only its Bulk jobs need the parents' records in Core.

The wait is on each parent partition's latest load planned before this run's (the order of
the instance's event storage ids), until its run has materialized it (the checks, which come
after every load step of a run, are not waited for). The queue is first in, first out, so
those runs got a run slot before this one did; a run planned later (a parent's run retry
too) is never waited for, so waiting runs cannot hold every slot from the runs they wait
for. When one of them has ended without loading its partition (or has not started within
``DC_TO_CORE_LEASE_WAIT_S``), this run stops at once, before its first Bulk job (its slot
is freed for the parent's retry), saying which parent, and is tagged
``dc_to_core/parent_failed``: the automation requests the partition again once its parents
are loaded (``StoppedForParent``).
"""

import time
from collections.abc import Mapping, Sequence

import dagster as dg

PARENT_FAILED_TAG = "dc_to_core/parent_failed"
PARENT_POLL_S = 2.0
TELL_EVERY_S = 60.0


UNSTARTED = (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED)


def latest_planned_run(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str,
                       before: int | None = None) -> dg.DagsterRun | None:
    """The run of the latest planned materialization of ``key``'s ``partition`` (planned
    before the event storage id ``before``, if given)."""
    found = instance.fetch_planned_materializations(dg.AssetRecordsFilter(
        asset_key=key, asset_partitions=[partition], before_storage_id=before), limit=1).records
    return instance.get_run_by_id(found[0].run_id) if found else None


def _planned_at(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str, run_id: str
                ) -> int | None:
    """The storage id of ``run_id``'s planned materialization of ``key``'s ``partition``."""
    found = instance.fetch_planned_materializations(dg.AssetRecordsFilter(
        asset_key=key, asset_partitions=[partition]), limit=20).records
    return next((r.storage_id for r in found if r.run_id == run_id), None)


def _materialized_by(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str,
                     run_id: str) -> bool:
    latest = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=key, asset_partitions=[partition]), limit=1).records
    return bool(latest) and latest[0].run_id == run_id


def parent_runs(instance: dg.DagsterInstance, run_id: str, before: int | None,
                parents: Mapping[dg.AssetKey, Sequence[str]]
                ) -> tuple[dict[str, dg.DagsterRun], list[str]]:
    """Of each parent partition's latest load planned before this run's (event storage ids:
    one sequence, no clocks; a retry or any later run of it is not looked at): those still
    loading (not materialized by their run, the run not ended), by ``<asset> <partition>
    (run <id>)``, and those whose run ended without materializing them. A parent
    materialized by its run is loaded: that run's checks, which come last, are not waited
    for."""
    pending, failed = {}, []
    for key, partitions in parents.items():
        for partition in partitions:
            run = latest_planned_run(instance, key, partition, before)
            if run is None or run.run_id == run_id:  # in this run: its steps are ordered
                continue
            if run.status == dg.DagsterRunStatus.SUCCESS or _materialized_by(
                    instance, key, partition, run.run_id):
                continue
            what = f"{key.to_user_string()} {partition} (run {run.run_id})"
            if run.is_finished:
                failed.append(what)
            else:
                pending[what] = run
    return pending, failed


def await_parents(context: dg.OpExecutionContext, key: dg.AssetKey,
                  parents: Mapping[dg.AssetKey, Sequence[str]], what: str, start_limit_s: float,
                  poll_s: float = PARENT_POLL_S) -> None:
    """Return once no parent partition is being loaded by a run planned before this one
    (``key``'s partition); fail (without retries) if such a run ended without loading it, or
    has not started after ``start_limit_s``. ``what``: the partition, for messages."""
    instance = context.instance
    before = _planned_at(instance, key, context.partition_key, context.run_id)
    started, told = time.monotonic(), -TELL_EVERY_S
    unstarted_since: dict[str, float] = {}
    while True:
        pending, failed = parent_runs(instance, context.run_id, before, parents)
        now = time.monotonic()
        for name, run in pending.items():
            if run.status not in UNSTARTED:
                unstarted_since.pop(name, None)
            elif now - unstarted_since.setdefault(name, now) > start_limit_s:
                failed.append(f"{name}, not started after {start_limit_s:.0f} s")
        if failed:
            instance.add_run_tags(context.run_id, {PARENT_FAILED_TAG: "; ".join(failed)})
            raise dg.Failure(
                f"{what} waits for its parents' loads, and the run loading "
                f"{', '.join(failed)} ended without loading it: its records may be missing "
                "in Core, so this run stops before sending anything. The automation requests "
                "this partition again once its parents are loaded; or re-run it after them.",
                allow_retries=False)
        if not pending:
            if told >= 0:
                context.log.info(f"{what}: its parents are loaded after {now - started:.0f} s; "
                                 "loading")
            return
        if now - started - told >= TELL_EVERY_S:
            context.log.info(f"{what} is ready to load and waits for its parents' loads: "
                             f"{', '.join(pending)}")
            told = now - started
        time.sleep(poll_s)


class StoppedForParent(dg.AutomationCondition):
    """True for the candidate partitions whose latest run ended stopped by ``await_parents``
    (a parent's run failed while it waited): once the parents are loaded, it is due again."""

    @property
    def description(self) -> str:
        return "its latest run stopped because a parent's run failed"

    @property
    def name(self) -> str:
        return "stopped_for_a_failed_parent"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        candidates = context.candidate_subset
        if candidates.is_empty:
            return dg.AutomationResult(context=context, true_subset=candidates)
        instance = context.asset_graph_view.instance
        stopped = set()
        for partition in candidates.expensively_compute_partition_keys():
            run = latest_planned_run(instance, context.key, partition)
            if run is not None and run.is_finished and PARENT_FAILED_TAG in run.tags:
                stopped.add(partition)
        return dg.AutomationResult(
            context=context, true_subset=candidates.compute_intersection_with_partition_keys(
                stopped))
