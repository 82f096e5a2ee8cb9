"""dc_to_core as the nightly automation runs it, without a daemon: the syncs' automation
conditions are evaluated just after the nightly cron tick (``evaluate_automation_conditions``,
what the ``sync_automation`` sensor does) and the requested partitions executed, each run in a
worker process (at most ``max_concurrent_runs`` at once, like the queued run coordinator; the
``bulk_api`` pool is enforced by the instance); then the conditions are evaluated again
(children whose parents are all loaded) until nothing is requested.
"""

from __future__ import annotations

import datetime as dt
import importlib
import multiprocessing as mp
import os
import resource
import shutil
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import dagster as dg
import yaml

from ..emulator.credentials import DEFAULT_CLIENT_SECRET
from ..orchestration import dagster_fixes
from ..orchestration.assets import asset_key
from ..orchestration.automation import TRIGGER, job_name
from ..orchestration.project import QUIET, build_definitions
from ..orchestration.resources import resources_from_env
from ..sync.plan import compute_plan, load_plan, save_plan
from ..sync.spec import CONFIG_DIR, load_syncs
from .report import peak_rss_mb

if TYPE_CHECKING:  # the run workers import this module: not the emulator behind BenchOrg
    from .org import BenchOrg

DEFS_SETTING = "DC_TO_CORE_BENCH_DEFS"  # the run workers' defs folder, when not the project's


def environment(org: BenchOrg, work: Path, tick: dt.datetime | None = None
                ) -> dict[str, str]:
    """The DC_TO_CORE_* settings of a pipeline pointed at ``org``, its night at 02:00 or at
    ``tick``'s hour and minute; its lock groups sized to the org's chunk."""
    cron = f"{tick.minute} {tick.hour} * * *" if tick else "0 2 * * *"
    return {"DC_TO_CORE_LOGIN_URL": org.url, "DC_TO_CORE_CA_BUNDLE": str(org.ca_file),
            "DC_TO_CORE_CHUNK_ROWS": str(org.profile["chunk_rows"]),
            "DC_TO_CORE_STATE_DIR": str(work / "state"),
            "DC_TO_CORE_TIME_SCALE": str(org.time_scale),
            "DC_TO_CORE_NIGHTLY_CRON": cron, "DC_TO_CORE_TIMEZONE": "UTC",
            "DC_TO_CORE_CLIENT_SECRET": DEFAULT_CLIENT_SECRET}


def plan_partitions(org: BenchOrg, work: Path, rows_per_partition: int,
                    defs_dir: Path | None = None) -> Path:
    """Plan files for every sync (of ``defs_dir``, else the project's): partitions of about
    ``rows_per_partition`` rows."""
    live = resources_from_env(environment(org, work), resolve=True)
    datacloud = live["datacloud"]
    for spec in load_syncs(defs_dir).planned():
        rows = datacloud.count_range(spec.source, spec.source_key, None, None)  # type: ignore[attr-defined]
        n = max(1, -(-rows // rows_per_partition))
        save_plan(compute_plan(datacloud, spec, n), work / "plans")  # type: ignore[arg-type]
    return work / "plans"


def max_concurrent_runs() -> int:
    """The shipped embedded instance's run limit (what the queued run coordinator allows)."""
    config = yaml.safe_load((CONFIG_DIR / "dagster_local.yaml").read_text())
    return int(config["concurrency"]["runs"]["max_concurrent_runs"])


def next_tick() -> dt.datetime:
    """The next minute, once it has passed: the tick of a next night on an instance that
    has loaded one (its records are in real time, so the tick must be behind them)."""
    tick = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    time.sleep(max(0.0, (tick - dt.datetime.now(dt.UTC)).total_seconds()) + 0.5)
    return tick


def run_night(defs: dg.Definitions, instance: dg.DagsterInstance, max_runs: int | None = None,
              tick: dt.datetime | None = None, defs_dir: Path | None = None) -> list[dict]:
    """Evaluate the automation conditions from before the night's tick on (the last 02:00,
    or ``tick``, which ``environment`` made the cron's), executing what they request, until
    they request nothing more. ``defs_dir``: the defs folder ``defs`` was built from."""
    max_runs = max_runs or max_concurrent_runs()
    night = tick or dt.datetime.now(dt.UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    if night > dt.datetime.now(dt.UTC):  # the last tick of the cron ``environment`` sets
        night -= dt.timedelta(days=1)
    jobs = {asset_key(s): job_name(s) for s in load_syncs(defs_dir).ordered()}
    at, cursor, results = night - dt.timedelta(minutes=1), None, []
    while True:
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor,
                                                   evaluation_time=at)
        cursor, at = result.cursor, at + dt.timedelta(minutes=1)
        requests = [(job, p) for key, job in jobs.items()  # a sync's job: its asset + checks
                    for p in sorted(result.get_requested_partitions(key))]
        if requests:
            results += _execute(defs, instance, requests, max_runs)
        elif at > night + dt.timedelta(minutes=1):  # the tick has been evaluated
            return results


def _execute(defs: dg.Definitions, instance: dg.DagsterInstance,
             requests: list[tuple[str, str | None]], max_runs: int) -> list[dict]:
    """Each run in a worker process of its own, like the run launcher's run workers."""
    home = instance.root_directory
    args = [(job, partition, {TRIGGER: "sync_automation"}, home)
            for job, partition in requests]
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max_runs, mp_context=ctx,
                             initializer=_worker_init, initargs=(dict(_SETTINGS),)) as pool:
        return list(pool.map(_run_one, args))


_SETTINGS: dict[str, str] = {}
_DEFS: list[dg.Definitions] = []


def _worker_init(settings: dict[str, str]) -> None:
    os.environ.update(settings)
    dagster_fixes.apply()  # execute_in_process runs in-process without the job's executor
    folder = settings.get(DEFS_SETTING)
    _DEFS.append(build_definitions(plans_dir=Path(settings["DC_TO_CORE_PLANS"]),
                                   resources=resources_from_env(settings),
                                   defs_module=defs_package(Path(folder)) if folder else None))


def _run_one(args: tuple[str, str | None, dict, str]) -> dict:
    job_name, partition, tags, home = args
    with dg.DagsterInstance.from_config(home) as instance:
        result = _DEFS[0].resolve_job_def(job_name).execute_in_process(
            partition_key=partition, tags=tags, instance=instance, raise_on_error=False,
            run_config=QUIET)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"job": job_name, "partition": partition, "success": result.success,
            **summarize(result.all_events),  # the worker's peak so far: one run at a time
            "worker_peak_rss_mb": peak_rss_mb(), "worker_pid": os.getpid(),
            "worker_cpu_s": usage.ru_utime + usage.ru_stime}  # so far, all its runs


def summarize(events: Iterable[dg.DagsterEvent]) -> dict:
    """A run's materializations (their numeric and text metadata) and the error-severity
    checks that failed, from its events."""
    out: dict = {"materializations": [], "failed_checks": []}
    for event in events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            m = event.event_specific_data.materialization  # type: ignore[union-attr]
            out["materializations"].append({
                "asset": m.asset_key.to_user_string(),
                **{k: v.value for k, v in m.metadata.items()
                   if isinstance(v.value, int | float | str)}})
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            e = event.event_specific_data
            if not e.passed and e.check_name != "no_quarantined_rows":  # type: ignore[union-attr]
                out["failed_checks"].append(
                    f"{e.asset_key.to_user_string()}:{e.check_name}")  # type: ignore[union-attr]
    out["failed_checks"].sort()
    return out


def night_partitions(plans: Path, defs_dir: Path | None = None) -> set[tuple[str, str]]:
    """Every (asset, partition) a night materializes: each sync's asset (hierarchy passes
    too) over its plan's partitions."""
    return {(asset_key(s).to_user_string(), r.key) for s in load_syncs(defs_dir).ordered()
            for r in load_plan(s, plans).ranges}


def local_instance(home: Path) -> dg.DagsterInstance:
    """The embedded instance (SQLite, run limits, pool default 2) in ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIG_DIR / "dagster_local.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def defs_package(folder: Path) -> ModuleType:
    """A defs folder outside the project (holding an ``__init__.py``) as the module its
    components are loaded from."""
    sys.path.insert(0, str(folder.parent))
    try:
        return importlib.import_module(folder.name)
    finally:
        sys.path.remove(str(folder.parent))


def definitions(org: BenchOrg, work: Path, plans: Path, tick: dt.datetime | None = None,
                defs_dir: Path | None = None) -> dg.Definitions:
    """The definitions (and, for the run workers, the settings) of the benchmarked pipeline:
    the components of ``defs_dir`` (a package), else the project's."""
    _SETTINGS.clear()
    _SETTINGS.update({**environment(org, work, tick), "DC_TO_CORE_PLANS": str(plans)})
    if defs_dir is not None:
        _SETTINGS[DEFS_SETTING] = str(defs_dir)
    return build_definitions(plans_dir=plans, resources=resources_from_env(_SETTINGS),
                             defs_module=defs_package(defs_dir) if defs_dir else None)
