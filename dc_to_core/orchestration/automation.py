"""What drives the syncs: declarative automation, the Data Cloud observer, and the alerts.

- ``sync_automation`` (Dagster's automation condition sensor) evaluates each sync's
  condition (``conditions.py``): every partition of the root syncs at the nightly cron tick,
  a child's partitions once all its parents' partitions of the night are loaded or being
  loaded (its runs wait for their parents' before their first Bulk job; one-partition
  syncs of one key go in their parents' run), and a partition whose Data Cloud
  range changed; never a partition that a run is loading.
- ``source_changes`` observes every Data Cloud range (row count, latest last-modified) from
  the daemon and records a new data version on ``datacloud/<object>`` when one changed. It
  is a sensor rather than automated observation runs because those would be one run per
  range per look, each taking a run slot and a process; the sensor costs one query per range.
- ``load_<sync>`` jobs: a sync's asset and its checks, for operators and scripts.
- the alerts (``alerts.py``): failed runs, failed ERROR checks and quarantine shares above
  a threshold, by email and webhook, in the run's log and on the partition.
"""


import json
import os
from typing import Any

import dagster as dg

from ..salesforce.errors import SalesforceError
from ..sync.plan import PartitionPlan, load_plan, plans_dir
from ..sync.spec import SyncSet, SyncSpec
from .alerts import (
    AlertChannels,
    failed_checks,
    failed_runs,
    notification_sensors,
    stuck_queue,
)
from .assets import asset_key
from .component import project_syncs
from .parents import latest_planned_run
from .resources import DataCloudResource
from .settings import env_number
from .sources import range_state, source_key, source_owner

AssetJob = Any  # what dg.define_asset_job returns (its class is not exported)
TRIGGER = "dc_to_core/trigger"
DATA_VERSION = "dagster/data_version"  # the tag Dagster reads an observation's version from


def job_name(spec: SyncSpec) -> str:
    return f"load_{spec.name}"


def sync_jobs(syncs: SyncSet) -> dict[str, AssetJob]:
    """One job per sync: its asset and that asset's checks."""
    return {s.name: dg.define_asset_job(job_name(s), selection=dg.AssetSelection.assets(
        asset_key(s)), description=f"Load {s.target} from {s.source}, one run per partition.")
        for s in syncs.ordered()}


def sync_automation(syncs: SyncSet, interval_s: int = 10) -> dg.AutomationConditionSensorDefinition:
    """The automation condition sensor of every sync's asset and checks."""
    return dg.AutomationConditionSensorDefinition(
        "sync_automation", target=dg.AssetSelection.assets(*[asset_key(s) for s in
                                                              syncs.ordered()]),
        default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=interval_s,
        run_tags={TRIGGER: "sync_automation"},
        emit_backfills=False,  # one run per partition straight to the run queue: a backfill
                               # would wait for the backfill daemon's next iteration (up to
                               # 30 s) at every level of the object graph
        use_user_code_server=True,  # the limit budget is a custom condition (our code)
        description="Nightly loads in parent order, and loads of the ranges that changed in "
                    "Data Cloud (conditions.py).")


def _loading(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> bool:
    """Whether the latest run planned to load the partition has not ended."""
    run = latest_planned_run(instance, key, partition)
    return run is not None and not run.is_finished


def _recorded_version(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str
                      ) -> str | None:
    record = instance.get_latest_data_version_record(key, is_source=True,
                                                     partition_key=partition)
    entry = record.asset_observation if record else None
    return entry.tags.get(DATA_VERSION) if entry and entry.tags else None


def source_changes_sensor(syncs: SyncSet, plans: dict[str, PartitionPlan],
                          interval_s: int = 300) -> dg.SensorDefinition:
    """Observes each watched Data Cloud range; records a data version only when it changed,
    and for a partition being loaded only once its run has ended (the run may have read the
    range before the change: the version recorded after it makes the automation load it)."""
    observed = [s for s in syncs.ordered() if s.modified and source_owner(syncs, s) == s]

    @dg.sensor(name="source_changes", minimum_interval_seconds=interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Observes every Data Cloud range (row count, latest last-modified) "
                           "and records a new data version on datacloud/<object> when it "
                           "changed; sync_automation then loads that partition.")
    def sensor(context: dg.SensorEvaluationContext, datacloud: DataCloudResource
               ) -> dg.SensorResult:
        seen: dict[str, str] = json.loads(context.cursor or "{}")
        events, problems, deferred = [], [], []
        for spec in observed:
            key = source_key(spec)
            for r in plans[spec.name].ranges:
                try:  # one bad range is reported and skipped; the others are still observed
                    version, meta = range_state(datacloud, spec, r)
                except SalesforceError as exc:
                    problems.append(f"{spec.name} {r.key}: {exc}")
                    context.log.warning(f"source_changes cannot read {spec.source} {r.key}: "
                                        f"{exc}")
                    continue
                slot = f"{key.to_user_string()}/{r.key}"
                known = seen.get(slot) or _recorded_version(context.instance, key, r.key)
                if known == version:
                    seen[slot] = version
                    continue
                if _loading(context.instance, asset_key(spec), r.key):
                    deferred.append(f"{spec.name} {r.key}")  # look again once it has ended
                    continue
                seen[slot] = version
                events.append(dg.AssetObservation(key, partition=r.key, metadata=meta,
                                                  tags={DATA_VERSION: version}))
        skip = None if events else "; ".join([
            "no range changed" if not deferred else
            f"changed while being loaded, recorded once the run ends: {', '.join(deferred)}",
            *problems])
        return dg.SensorResult(asset_events=events, cursor=json.dumps(seen), skip_reason=skip)

    return sensor


class SyncAutomation(dg.Component, dg.Model, dg.Resolvable):
    """How the project's syncs are driven: a job per sync, the ``sync_automation`` sensor
    (declarative automation; each sync's nightly cron is its ``nightly_cron``), the
    ``source_changes`` observer and the failure alerts. Unset attributes come from
    ``DC_TO_CORE_CHANGE_INTERVAL_S`` and ``DC_TO_CORE_AUTOMATION_INTERVAL_S``."""

    change_interval_s: int | None = None
    automation_interval_s: int | None = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        syncs = project_syncs(context)
        plans = {s.name: load_plan(s, plans_dir()) for s in syncs.ordered()}
        change = self.change_interval_s or max(1, int(env_number(
            os.environ, "DC_TO_CORE_CHANGE_INTERVAL_S", "300")))
        every = self.automation_interval_s or max(1, int(env_number(
            os.environ, "DC_TO_CORE_AUTOMATION_INTERVAL_S", "10")))
        sensors = [sync_automation(syncs, every), source_changes_sensor(syncs, plans, change),
                   failed_runs, failed_checks, stuck_queue,
                   *notification_sensors(AlertChannels.from_env())]
        return dg.Definitions(jobs=list(sync_jobs(syncs).values()), sensors=sensors)
