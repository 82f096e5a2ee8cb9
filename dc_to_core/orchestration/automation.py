"""What drives the syncs: the nightly schedule, the sensors, and failure alerts.

- ``nightly_<sync>`` schedules (02:00, configurable cron and timezone) request every partition
  of each sync that has no parent, tagged with the night.
- ``parents_loaded`` requests every partition of a child sync once each partition of its parent
  has materialized since that night began — dependency order without idle run slots.
- ``source_changes`` watches each source range (row count, latest last-modified) and requests
  only the partitions whose range changed; children wait while a parent run is in progress.
- the alerts (``alerts.py``): failed runs, failed ERROR checks and quarantine shares above
  a threshold, by email and webhook, in the run's log and on the partition.
"""


import json
import os
from collections.abc import Iterator
from typing import Any

import dagster as dg

from ..salesforce.errors import SalesforceError
from ..sync.plan import PartitionPlan, load_plan, plans_dir
from ..sync.spec import SyncSet, SyncSpec
from .alerts import AlertChannels, failed_checks, failed_runs, notification_sensors
from .assets import asset_key
from .component import project_syncs
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
        requests, events, busy, baselined, problems = [], [], set(), False, []
        deferred: list[str] = []
        for spec in watched:
            plan = plans[spec.name]
            if spec.parent and _in_progress(context.instance, syncs.syncs[spec.parent.sync]):
                busy.add(spec.name)  # parents are loading: look again next tick
                continue
            loading = _loading_partitions(context.instance, spec)
            for r in plan.ranges:
                if r.key in loading or "*" in loading:  # never a second run of a partition:
                    deferred.append(f"{spec.name} {r.key}")   # look again once it is done
                    continue
                try:  # one bad range is reported and skipped; the others are still watched
                    count, latest = datacloud.range_stats(spec.source, spec.source_key,
                                                          r.start, r.end, spec.modified or "")
                except SalesforceError as exc:
                    problems.append(f"{spec.name} {r.key}: {exc}")
                    context.log.warning(f"source_changes cannot read {spec.name} {r.key}: "
                                        f"{exc}")
                    continue
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
        if deferred and not requests:
            skip = "; ".join([skip or "", f"partitions loading now, deferred: "
                              f"{', '.join(deferred)}"]).lstrip("; ")
        if problems and not requests:
            skip = "; ".join([skip or "", *problems]).lstrip("; ")
        return dg.SensorResult(run_requests=requests, asset_events=events,
                               cursor=json.dumps(seen), skip_reason=skip)

    return sensor


LOADING = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED,
           dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
           dg.DagsterRunStatus.CANCELING]


def _loading_runs(instance: dg.DagsterInstance, spec: SyncSpec) -> list[dg.DagsterRun]:
    """The runs not yet ended that load ``spec``'s asset: its own job, or any run that
    selects the asset (a backfill launched from the UI runs as ``__ASSET_JOB``); runs of its
    checks alone load nothing and do not count."""
    key = asset_key(spec)
    runs = [*instance.get_runs(dg.RunsFilter(job_name=job_name(spec), statuses=LOADING)),
            *instance.get_runs(dg.RunsFilter(job_name="__ASSET_JOB", statuses=LOADING))]
    return [r for r in runs if (r.asset_selection is None and r.job_name == job_name(spec))
            or key in (r.asset_selection or ())]


def _in_progress(instance: dg.DagsterInstance, spec: SyncSpec) -> bool:
    return bool(_loading_runs(instance, spec))


def _loading_partitions(instance: dg.DagsterInstance, spec: SyncSpec) -> set[str]:
    """Partitions of ``spec`` a run is loading now; ``*`` for a run of a range or of every
    partition."""
    keys = set()
    for run in _loading_runs(instance, spec):
        single = run.tags.get("dagster/partition")
        keys.add(single if single and "dagster/asset_partition_range_start" not in run.tags
                 else "*")
    return keys


class SyncAutomation(dg.Component, dg.Model, dg.Resolvable):
    """When the project's syncs run: a job per sync, the nightly schedule of the root syncs,
    ``parents_loaded``, ``source_changes`` and the failure alerts. Unset attributes come from
    ``DC_TO_CORE_NIGHTLY_CRON`` and ``DC_TO_CORE_CHANGE_INTERVAL_S``; the timezone is
    ``DC_TO_CORE_TIMEZONE`` (shared with the syncs' freshness deadlines)."""

    cron: str | None = None
    change_interval_s: int | None = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        syncs = project_syncs(context)
        plans = {s.name: load_plan(s, plans_dir()) for s in syncs.ordered()}
        jobs = sync_jobs(syncs)
        cron = self.cron or os.environ.get("DC_TO_CORE_NIGHTLY_CRON", "0 2 * * *")
        tz = os.environ.get("DC_TO_CORE_TIMEZONE", "UTC")  # the freshness deadlines' too
        interval = self.change_interval_s or int(os.environ.get("DC_TO_CORE_CHANGE_INTERVAL_S",
                                                                "300"))
        sensors = [s for s in (parents_loaded_sensor(syncs, plans, jobs),
                               source_changes_sensor(syncs, plans, jobs, interval),
                               failed_runs, failed_checks) if s is not None]
        sensors += notification_sensors(AlertChannels.from_env())
        return dg.Definitions(jobs=list(jobs.values()), sensors=sensors,
                              schedules=nightly_schedules(syncs, plans, jobs, cron, tz))
