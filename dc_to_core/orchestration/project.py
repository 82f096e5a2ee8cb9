"""Builds the Dagster definitions from the sync file, the plan files and the environment."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from ..sync.plan import PartitionPlan, load_plan
from ..sync.spec import SyncSet, load_syncs
from . import dagster_fixes, runtime
from .assets import build_sync_asset
from .automation import (
    failed_checks,
    failed_runs,
    nightly_schedules,
    parents_loaded_sensor,
    source_changes_sensor,
    sync_jobs,
)
from .checks import build_checks
from .resources import resources_from_env

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # run config


def load_plans(syncs: SyncSet, plans_dir: Path | None = None) -> dict[str, PartitionPlan]:
    return {s.name: load_plan(s, plans_dir) for s in syncs.ordered()}


def build_definitions(syncs_path: str | Path | None = None, plans_dir: Path | None = None,
                      resources: dict[str, object] | None = None) -> dg.Definitions:
    syncs = load_syncs(syncs_path)
    plans = load_plans(syncs, plans_dir)
    assets, checks = [], []
    for spec in syncs.ordered():
        parts = dg.StaticPartitionsDefinition(plans[spec.name].keys)
        parent = syncs.syncs[spec.parent.sync] if spec.parent else None
        assets.append(build_sync_asset(spec, plans[spec.name], parts, parent))
        checks += build_checks(spec, plans[spec.name], parts)
    jobs = sync_jobs(syncs)
    cron = os.environ.get("DC_TO_CORE_NIGHTLY_CRON", "0 2 * * *")
    tz = os.environ.get("DC_TO_CORE_TIMEZONE", "UTC")
    sensors = [s for s in (parents_loaded_sensor(syncs, plans, jobs),
                           source_changes_sensor(syncs, plans, jobs, int(os.environ.get(
                               "DC_TO_CORE_CHANGE_INTERVAL_S", "300"))),
                           failed_runs, failed_checks) if s is not None]
    defs = dg.Definitions(
        assets=assets, asset_checks=checks, jobs=list(jobs.values()),
        schedules=nightly_schedules(syncs, plans, jobs, cron, tz), sensors=sensors,
        resources=resources if resources is not None else resources_from_env(),
        executor=dagster_fixes.in_process_executor)
    runtime.freeze_loaded_heap()  # the code location is loaded: keep the collector off it
    return defs
