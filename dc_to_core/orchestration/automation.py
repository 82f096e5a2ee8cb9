"""What drives the syncs: the nightly schedule, the sensors, and failure alerts.

- ``nightly_<sync>`` schedules (02:00, configurable cron and timezone) request every partition
  of each sync that has no parent, tagged with the night.
- ``parents_loaded`` requests every partition of a child sync once each partition of its parent
  has materialized since that night began — dependency order without idle run slots.
- ``source_changes`` watches each source range (row count, latest last-modified) and requests
  only the partitions whose range changed; children wait while a parent run is in progress.
- ``failed_runs`` and ``failed_checks`` report failures in the run's log and as an asset
  observation on the affected partition.
"""


import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import dagster as dg

from ..sync.plan import PartitionPlan
from ..sync.spec import SyncSet, SyncSpec
from .assets import asset_key
from .resources import DataCloudResource

AssetJob = Any  # what dg.define_asset_job returns (its class is not exported)
NIGHT = "dc_to_core/night"
TRIGGER = "dc_to_core/trigger"


def job_name(spec: SyncSpec) -> str:
    return f"load_{spec.name}"


def sync_jobs(syncs: SyncSet) -> dict[str, AssetJob]:
    """One job per sync: its asset and that asset's checks."""
    return {s.name: dg.define_asset_job(job_name(s), selection=dg.AssetSelection.assets(
        asset_key(s)), description=f"Load {s.target} from {s.source}, one run per partition.")
        for s in syncs.ordered()}


def nightly_schedules(syncs: SyncSet, plans: dict[str, PartitionPlan],
                      jobs: dict[str, AssetJob], cron: str,
                      timezone: str) -> list[dg.ScheduleDefinition]:
    schedules = []
    for spec in syncs.ordered():
        if spec.parent:
            continue
        plan = plans[spec.name]

        def requests(context: dg.ScheduleEvaluationContext, spec: SyncSpec = spec,
                     plan: PartitionPlan = plan) -> Iterator[dg.RunRequest]:
            night = context.scheduled_execution_time.isoformat()
            for p in plan.keys:
                yield dg.RunRequest(partition_key=p, run_key=f"{night}:{spec.name}:{p}",
                                    tags={NIGHT: night, TRIGGER: "nightly"})

        schedules.append(dg.ScheduleDefinition(
            name=f"nightly_{spec.name}", cron_schedule=cron, execution_timezone=timezone,
            job=jobs[spec.name], execution_fn=requests,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"Every night: every partition of {spec.name}; its child syncs "
                        "follow through the parents_loaded sensor."))
    return schedules


def _latest_night(instance: dg.DagsterInstance, roots: list[str]) -> tuple[str, float] | None:
    """(night tag, when its first run was created) of the most recent nightly load."""
    best: tuple[str, float] | None = None
    for name in roots:
        for run in instance.get_runs(dg.RunsFilter(job_name=name), limit=200):
            night = run.tags.get(NIGHT)
            if night and (best is None or night > best[0]):
                best = (night, 0.0)
    if best is None:
        return None
    records = instance.get_run_records(dg.RunsFilter(tags={NIGHT: best[0]}))
    return best[0], min(r.create_timestamp.timestamp() for r in records)


def _materialized_since(instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str],
                        since: float) -> list[str]:
    """The partitions with no materialization after ``since``."""
    return [p for p in partitions if not instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[p], after_timestamp=since),
        limit=1).records]


def parents_loaded_sensor(syncs: SyncSet, plans: dict[str, PartitionPlan],
                          jobs: dict[str, AssetJob]
                          ) -> dg.SensorDefinition | None:
    children = [s for s in syncs.ordered() if s.parent]
    if not children:
        return None
    roots = [job_name(s) for s in syncs.ordered() if not s.parent]

    @dg.sensor(name="parents_loaded", jobs=[jobs[s.name] for s in children],
               minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Tonight's child syncs start once all their parents are loaded.")
    def sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        done = json.loads(context.cursor or "{}")
        latest = _latest_night(context.instance, roots)
        if latest is None:
            return dg.SensorResult(skip_reason="no nightly load has run yet")
        night, started = latest
        requests, waiting = [], []
        for spec in children:
            if done.get(spec.name) == night:
                continue
            parent = syncs.syncs[spec.parent.sync]  # type: ignore[union-attr]
            missing = _materialized_since(context.instance, asset_key(parent),
                                          plans[parent.name].keys, started)
            if missing:
                waiting.append(f"{spec.name} waits for {parent.name} {', '.join(missing)}")
                continue
            done[spec.name] = night
            requests += [dg.RunRequest(partition_key=p, job_name=job_name(spec),
                                       run_key=f"{night}:{spec.name}:{p}",
                                       tags={NIGHT: night, TRIGGER: "parents_loaded"})
                         for p in plans[spec.name].keys]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(done),
                               skip_reason="; ".join(waiting) if not requests and waiting
                               else None)

    return sensor


def source_changes_sensor(syncs: SyncSet, plans: dict[str, PartitionPlan],
                          jobs: dict[str, AssetJob],
                          interval_s: int = 300) -> dg.SensorDefinition:
    watched = [s for s in syncs.ordered() if s.modified]

    @dg.sensor(name="source_changes", jobs=[jobs[s.name] for s in watched],
               minimum_interval_seconds=interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Requests only the partitions whose Data Cloud range changed "
                           "(row count or latest last-modified).")
    def sensor(context: dg.SensorEvaluationContext, datacloud: DataCloudResource
               ) -> dg.SensorResult:
        seen = json.loads(context.cursor or "{}")
        requests, events, busy, baselined = [], [], set(), False
        for spec in watched:
            plan = plans[spec.name]
            if spec.parent and _in_progress(context.instance, syncs.syncs[spec.parent.sync]):
                busy.add(spec.name)  # parents are loading: look again next tick
                continue
            for r in plan.ranges:
                count, latest = datacloud.range_stats(spec.source, spec.source_key, r.start,
                                                      r.end, spec.modified or "")
                state = [count, latest.isoformat() if latest else None]
                key = f"{spec.name}/{r.key}"
                if key not in seen:  # the first look at a range only records its baseline
                    seen[key], baselined = state, True
                    continue
                if seen[key] == state:
                    continue
                seen[key] = state
                events.append(dg.AssetObservation(asset_key(spec), partition=r.key, metadata={
                    "source_rows": count, "source_last_modified": state[1] or ""}))
                requests.append(dg.RunRequest(
                    partition_key=r.key, job_name=job_name(spec),
                    run_key=f"change:{spec.name}:{r.key}:{count}:{state[1]}",
                    tags={TRIGGER: "source_changes"}))
        skip = None if requests else ("baseline recorded" if baselined else "no range changed")
        if busy and not requests:
            skip = f"children of loading parents deferred: {', '.join(sorted(busy))}"
        return dg.SensorResult(run_requests=requests, asset_events=events,
                               cursor=json.dumps(seen), skip_reason=skip)

    return sensor


def _in_progress(instance: dg.DagsterInstance, spec: SyncSpec) -> bool:
    """Whether a run loading ``spec`` is queued or running: its own job, or any run that
    selects its asset (a backfill launched from the UI runs as ``__ASSET_JOB``)."""
    key = asset_key(spec)
    runs = instance.get_runs(dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.STARTING]), limit=500)
    return any(r.job_name == job_name(spec) or key in (r.asset_selection or ()) for r in runs)


def _alert(instance: dg.DagsterInstance, run: dg.DagsterRun, message: str,
           keys: list[tuple[dg.AssetKey, str | None]]) -> None:
    instance.report_engine_event(f"dc_to_core alert: {message}", dagster_run=run)
    for key, partition in keys:
        instance.report_runless_asset_event(dg.AssetObservation(
            key, partition=partition, metadata={"alert": message, "run_id": run.run_id,
                                                "at": dt.datetime.now(dt.UTC).isoformat()}))


def _run_assets(instance: dg.DagsterInstance, run: dg.DagsterRun
                ) -> list[tuple[dg.AssetKey, str | None]]:
    """The (asset, partition) pairs a run set out to materialize."""
    partition = run.tags.get("dagster/partition")
    planned = {entry.dagster_event.event_specific_data.asset_key  # type: ignore[union-attr]
               for entry in instance.all_logs(
                   run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)}
    return [(k, partition) for k in sorted(planned or set(run.asset_selection or []),
                                           key=lambda k: k.to_string())]


@dg.run_failure_sensor(name="failed_runs", default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Reports every failed run (UI backfills included).")
def failed_runs(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    reason = context.failure_event.message or "run failed"
    message = f"run {run.run_id} ({run.job_name}, partition " \
              f"{run.tags.get('dagster/partition', '-')}) failed: {reason}"
    context.log.error(message)
    _alert(context.instance, run, message, _run_assets(context.instance, run))


@dg.run_status_sensor(name="failed_checks", run_status=dg.DagsterRunStatus.SUCCESS,
                      default_status=dg.DefaultSensorStatus.RUNNING,
                      description="Reports ERROR-severity asset checks that failed in a run.")
def failed_checks(context: dg.RunStatusSensorContext) -> None:
    run = context.dagster_run
    failed = []
    for entry in context.instance.all_logs(run.run_id,
                                           of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            failed.append((evaluation.asset_key, evaluation.check_name, evaluation.partition))
    if not failed:
        return
    names = ", ".join(f"{k.to_user_string()}:{c}" for k, c, _ in failed)
    message = f"run {run.run_id}: ERROR checks failed: {names}"
    context.log.error(message)
    _alert(context.instance, run, message, [(k, p) for k, _, p in failed])
