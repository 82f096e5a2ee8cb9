"""A child's load waits for its parents' loads: the automation requests a child's partitions
while its parents are still being loaded (``conditions.py``), so its extract, prepare and
diff run meanwhile; only its Bulk jobs need the parents' records in Core.

The wait is on the parents' runs created before this one, until each has materialized its
partition (the checks, which come after every load step of a run, are not waited for). The
queue is first in, first out, so those runs got a run slot before this one did; a run
created later is never waited for, so waiting runs cannot hold every slot from the runs they
wait for. When one of them ends failed before loading its partition, this run stops at
once, before its first Bulk job (its slot is freed for the parent's retry), saying which
parent, and is tagged ``dc_to_core/parent_failed``: the automation requests the partition
again once its parents are loaded (``StoppedForParent``).
"""

import datetime as dt
import time
from collections.abc import Mapping, Sequence

import dagster as dg

PARENT_FAILED_TAG = "dc_to_core/parent_failed"
PARENT_POLL_S = 2.0
TELL_EVERY_S = 60.0


def _timestamp(value: dt.datetime | float | None) -> float:
    if value is None:
        return 0.0
    return value.timestamp() if isinstance(value, dt.datetime) else float(value)


def _materialized_by(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str,
                     run_id: str) -> bool:
    latest = instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=key, asset_partitions=[partition]), limit=1).records
    return bool(latest) and latest[0].run_id == run_id


def unfinished_parents(instance: dg.DagsterInstance, run_id: str, created: float,
                       parents: Mapping[dg.AssetKey, Sequence[str]]
                       ) -> tuple[list[str], list[str]]:
    """(parent partitions that a run created before ``created`` is loading: not materialized
    by it yet, the run not ended; those whose such run ended failed after ``created`` without
    materializing them), each as ``<asset> <partition> (run <id>)``. A parent materialized
    by its run is loaded: that run's checks, which come last, are not waited for."""
    pending, failed = [], []
    for key, partitions in parents.items():
        for partition in partitions:
            planned = instance.get_latest_planned_materialization_info(key, partition)
            if planned is None or planned.run_id == run_id:  # in this run: steps are ordered
                continue
            record = instance.get_run_record_by_id(planned.run_id)
            if record is None or _timestamp(record.create_timestamp) > created:
                continue
            run = record.dagster_run
            if run.status == dg.DagsterRunStatus.SUCCESS or _materialized_by(
                    instance, key, partition, run.run_id):
                continue
            what = f"{key.to_user_string()} {partition} (run {planned.run_id})"
            if not run.is_finished:
                pending.append(what)
            elif _timestamp(record.end_time) >= created:
                failed.append(what)
    return pending, failed


def await_parents(context: dg.OpExecutionContext, parents: Mapping[dg.AssetKey, Sequence[str]],
                  what: str, poll_s: float = PARENT_POLL_S) -> None:
    """Return once no parent partition is being loaded by a run created before this one;
    fail (without retries) if such a run failed before loading it. ``what``: the partition,
    for messages."""
    instance = context.instance
    me = instance.get_run_record_by_id(context.run_id)
    created = _timestamp(me.create_timestamp) if me else time.time()
    started, told = time.monotonic(), -TELL_EVERY_S
    while True:
        pending, failed = unfinished_parents(instance, context.run_id, created, parents)
        if failed:
            instance.add_run_tags(context.run_id, {PARENT_FAILED_TAG: "; ".join(failed)})
            raise dg.Failure(
                f"{what} waits for its parents' loads, and the run loading "
                f"{', '.join(failed)} failed: its records may be missing in Core, so this run "
                "stops before sending anything. The automation requests this partition again "
                "once its parents are loaded; or re-run it after them.", allow_retries=False)
        if not pending:
            if told >= 0:
                context.log.info(f"{what}: its parents are loaded after "
                                 f"{time.monotonic() - started:.0f} s; loading")
            return
        waited = time.monotonic() - started
        if waited - told >= TELL_EVERY_S:
            context.log.info(f"{what} is ready to load and waits for its parents' loads: "
                             f"{', '.join(pending)}")
            told = waited
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
            planned = instance.get_latest_planned_materialization_info(context.key, partition)
            run = instance.get_run_by_id(planned.run_id) if planned else None
            if run is not None and run.is_finished and PARENT_FAILED_TAG in run.tags:
                stopped.add(partition)
        return dg.AutomationResult(
            context=context, true_subset=candidates.compute_intersection_with_partition_keys(
                stopped))
