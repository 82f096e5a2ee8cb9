"""``dc-to-core bench``: every strategy against one freshly seeded emulated org, in turn.

Each strategy runs in a child process of its own (so its client CPU and peak RSS are its own)
against a fresh emulator on the same seeded Data Cloud, with Core emptied and the Accounts
pre-loaded. The org's profile is fixed before anything is measured.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing as mp
import os
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..emulator import load_profile
from ..emulator.seed import SeedSpec
from ..progress import progress
from .org import OPPORTUNITIES_DMO, BenchOrg, OrgSnapshot, SeededOrg
from .report import StrategyResult, peak_rss_mb, write
from .watch import OrgWatch

if TYPE_CHECKING:
    import dagster as dg

INCREMENTAL = "dc_to_core incremental"
IN_PROCESS = "dc_to_core in-process"
ALL = ["ceiling", "dc_to_core", "seed Test3", "seed Test4", "seed Test7", "seed Test8",
       "plain script", INCREMENTAL]
OPTIONAL = [IN_PROCESS]  # by --only: what the deployment adds, by difference
BUSY = ("ceiling", "dc_to_core", IN_PROCESS, "plain script", INCREMENTAL)  # never wait
PARTITION_ROWS = 250_000  # dc_to_core's partition size in the bench, whatever N (README):
                          # a run worker's memory is bounded by its partition, not the night,
                          # and the first load starts after one such extract


@dataclass
class BenchConfig:
    rows: int = 2_000_000
    accounts: int = 1000
    profile: str = "default"
    rows_per_partition: int = PARTITION_ROWS
    overrides: tuple[str, ...] = ()     # profile KEY=VALUE, fixed for every strategy
    busy_time_scale: float | None = 1.0  # the clock of BUSY strategies (None: the profile's)
    strategies: tuple[str, ...] = tuple(ALL)
    out: Path = Path("results")
    work: Path | None = None
    next_night: bool = True             # the incremental strategy also runs the night after
    bad_share: float = 0.0              # rows the org must refuse, over the seed's bad kinds
    defs: Path | None = None            # dc_to_core's syncs: this defs folder, not the project's
    target: str = "Opportunity"         # the Core object measured (records, core/<target>)
    daemon_lead_s: float = 45.0         # the deployed night's cron tick: this long after start
    night_quiet_s: float = 120.0        # nothing ran this long and some partition failed: over
    night_timeout_s: float = 6 * 3600.0


def _client(name: str, org: BenchOrg, seeded: SeededOrg, cfg: BenchConfig, work: Path,
            measured: Measured, tick: dt.datetime | None = None) -> dict:
    """The client side of one strategy (runs in the child process)."""
    from . import strategies

    if name == "dc_to_core":
        return _deployed(org, work, cfg, measured)
    if name in (IN_PROCESS, INCREMENTAL):  # the incremental one: its second night
        return _dc_to_core(org, work, cfg, tick)
    if name in ("ceiling", "plain script"):  # every row in memory, as their clients hold them
        source = seeded.read(OPPORTUNITIES_DMO, strategies.SOURCE_COLUMNS)
        run = strategies.ceiling if name == "ceiling" else strategies.plain_script
        return run(org, source)
    seed = next(s for s in strategies.SEEDS if s.name == name)
    from ..salesforce.datacloud import DataCloud

    bounds = DataCloud(auth=org.auth).quantiles(OPPORTUNITIES_DMO, "ExternalId__c",
                                                         seed.partitions)
    return strategies.seed_replay(org, seed, cfg.rows, bounds)


COUNTED = ("rows_sent", "rows_unchanged", "rows_created", "rows_updated", "rows_retried",
           "rows_drifted", "rows_deleted", "rows_adopted", "rows_lock_failed_first_round",
           "rows_lock_failed")


def _dc_to_core(org: BenchOrg, work: Path, cfg: BenchConfig, tick: dt.datetime | None = None
                ) -> dict:
    """One night of the pipeline in this process's pool of run workers (the automation's
    conditions evaluated here, no daemon): the first (planning the partitions), or with
    ``tick`` a next night on the same instance and sync state."""
    from . import nightly

    started = time.process_time()
    os.environ.update(nightly.environment(org, work, tick))
    plans = nightly.plan_partitions(org, work, cfg.rows_per_partition, cfg.defs) if (
        tick is None) else work / "plans"
    defs = nightly.definitions(org, work, plans, tick, cfg.defs)
    with nightly.local_instance(work / "dagster_home") as instance:
        runs = nightly.run_night(defs, instance, tick=tick, defs_dir=cfg.defs)
    totals = night_totals(runs, cfg)
    totals["run_workers"] = "CPU and RSS include the run worker processes"
    totals["run_peak_rss_mb"] = round(max(r["worker_peak_rss_mb"] for r in runs), 1)
    last = {r["worker_pid"]: r["worker_cpu_s"] for r in runs}  # each worker's final total
    totals["run_workers_cpu_s"] = round(sum(last.values()), 2)
    totals["run_worker_processes"] = len(last)
    totals["client_cpu_s_outside_run_workers"] = round(time.process_time() - started, 2)
    return totals


def _deployed(org: BenchOrg, work: Path, cfg: BenchConfig, measured: Measured) -> dict:
    """One night as production runs it (``deployment``): planned here, then the daemon's
    automation from the cron tick on; measured from the tick."""
    from . import deployment, nightly

    tick = deployment.next_tick(lead_s=cfg.daemon_lead_s)
    env = nightly.environment(org, work, tick)
    os.environ.update(env)
    plans = nightly.plan_partitions(org, work, cfg.rows_per_partition)
    expected = nightly.night_partitions(plans)
    settings = {**env, "DC_TO_CORE_PLANS": str(plans)}
    pg = deployment.postgres_settings()
    with deployment.throwaway_database(pg) as db, \
            deployment.Deployment(work, settings, db) as deployed:
        deployed.wait_ready(tick)
        measured.start()
        assert deployed.tree is not None
        deployed.tree.mark()
        status = ["no runs yet"]
        measured.watch.status = lambda: status[0]
        records = deployed.wait_for_night(
            expected, tick - dt.timedelta(minutes=1), quiet_s=cfg.night_quiet_s,
            timeout_s=cfg.night_timeout_s,
            on_poll=lambda rs: status.__setitem__(0, deployment.run_status(rs)))
        with deployed.instance() as instance:
            runs = [deployment_run(instance, r) for r in records]
    totals = night_totals(runs, cfg)
    totals |= deployed.tree.summary()
    totals["run_workers"] = ("launched by dagster-daemon (queued run coordinator, "
                             "PostgreSQL instance); CPU of every process of the deployment "
                             "from the cron tick on")
    return totals


def deployment_run(instance: dg.DagsterInstance, record: dg.RunRecord) -> dict:
    """A run of the deployment as ``night_totals`` reads it (its events from the instance)."""
    import dagster as dg

    from . import nightly

    run = record.dagster_run
    logs = instance.all_logs(run.run_id, of_type={
        dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION})
    return {"job": run.job_name, "partition": run.tags.get("dagster/partition"),
            "success": run.status == dg.DagsterRunStatus.SUCCESS,
            **nightly.summarize(e.dagster_event for e in logs if e.dagster_event)}


def night_totals(runs: list[dict], cfg: BenchConfig) -> dict:
    """What a night's runs did to the measured target, summed from their materializations."""
    totals: dict = {"runs": len(runs), "failed_runs": sum(not r["success"] for r in runs),
                    "quarantined": 0, "bulk_jobs": 0, "repass_rounds": 0,
                    **dict.fromkeys(COUNTED, 0), "state_cpu_s_max_per_partition": 0.0}
    for run in runs:
        for meta in run["materializations"]:
            if meta["asset"] == f"core/{cfg.target}":
                totals["quarantined"] += int(meta.get("rows_quarantined", 0))
                totals["bulk_jobs"] += int(meta.get("bulk_jobs", 0))
                totals["repass_rounds"] = max(totals["repass_rounds"],
                                              int(meta.get("repass_rounds", 0)))
                for k in COUNTED:
                    totals[k] += int(meta.get(k, 0))
                totals["state_cpu_s_max_per_partition"] = max(
                    totals["state_cpu_s_max_per_partition"], float(meta.get("state_cpu_s", 0)))
    totals |= quarantine_stages([meta.get("quarantine_path") for run in runs
                                 for meta in run["materializations"]])
    totals["rows_per_partition"] = cfg.rows_per_partition
    totals["failed_error_checks"] = sum(len(r["failed_checks"]) for r in runs)
    totals["failed_checks"] = sorted({c for r in runs for c in r["failed_checks"]})
    return totals


def quarantine_stages(paths: list[str | None]) -> dict:
    """Of the rows quarantined, how many were caught before upload (the pre-flight's
    describe, prepare) and how many the org refused, by code."""
    import pyarrow.parquet as pq

    before, refused = 0, Counter()
    for path in filter(None, paths):
        table = pq.read_table(path, columns=["stage", "error_code"]).to_pylist()
        before += sum(r["stage"] == "prepare" for r in table)
        refused.update(r["error_code"] for r in table if r["stage"] != "prepare")
    return {"quarantined_before_upload": before, "refused_by_org": sum(refused.values()),
            "refused_by_org_by_code": dict(refused.most_common())}


def _child(name: str, seeded_dir: str, cfg: BenchConfig, work: str, org_info: dict,
           queue: mp.Queue) -> None:
    from ..emulator.server import SpawnedEmulator

    emulator = SpawnedEmulator(None, org_info["url"], org_info["ca_file"],  # type: ignore[arg-type]
                               Path(seeded_dir))
    org = BenchOrg(emulator)
    seeded = SeededOrg(Path(seeded_dir))
    day: dict = {}
    first_night: dict = {}
    tick = None
    if name == INCREMENTAL:  # not measured: the first night, then a day of changes
        from .incremental import change_a_day
        from .nightly import next_tick

        try:
            start, cpu0 = org.snapshot(cfg.target), _cpu()
            first = _dc_to_core(org, Path(work), cfg)
            org.wait_until_idle()
            end = org.snapshot(cfg.target)
            first_night = {  # for ratios within this one run
                "emulated_s": round(max(end.last_job_end_s, start.emulated_s)
                                    - start.emulated_s, 1),
                "bulk_batches": end.bulk_batches - start.bulk_batches,
                "api_requests": end.api_requests - start.api_requests,
                "client_cpu_s": round(_cpu() - cpu0, 2), "rows_sent": first["rows_sent"]}
            day = change_a_day(org, Path(seeded_dir))
            tick = next_tick()
        except Exception as exc:  # said, never a bench that waits for ever
            queue.put({"extra": {}, "error": f"before the measured night: "
                       f"{type(exc).__name__}: {exc}", "wall_s": 0.0, "cpu_s": 0.0,
                       "peak_rss_mb": 0.0, "org_busy_s": 0.0, "records_after": 0,
                       "delta": OrgSnapshot(0, 0, 0, 0, 0, 0).__dict__})
            return
    measured = Measured(org, name, cfg.target, cfg.rows)
    measured.start()
    try:
        extra = _client(name, org, seeded, cfg, Path(work), measured, tick)
        org.wait_until_idle()
        error = None
    except Exception as exc:  # reported, not hidden: the row counts show the damage
        extra, error = {}, f"{type(exc).__name__}: {exc}"
    cpu, wall = time.process_time() - measured.cpu, time.perf_counter() - measured.wall
    extra["timeline"] = measured.watch.stop()
    after = org.snapshot(cfg.target)
    before = measured.before
    if "deployment_cpu_s" in extra:  # the client is the deployment's processes, sampled;
        extra["bench_process_cpu_s"] = round(cpu, 2)  # this one only watched them and the org
        cpu = extra["deployment_cpu_s"]
    else:  # dc_to_core's run workers
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu += (children.ru_utime + children.ru_stime) - (measured.children.ru_utime
                                                          + measured.children.ru_stime)
    if day:
        extra["day_of_changes"], extra["first_night"] = day, first_night
        extra["rows"] = day["rows_after"]
    if day and cfg.next_night:
        try:  # the night after: the rows the checks found edited in Core are sent back
            third = _dc_to_core(org, Path(work), cfg, next_tick())
            extra["next_night"] = {k: third[k] for k in (
                "rows_sent", "rows_drifted", "failed_error_checks", "failed_runs")}
        except Exception as exc:
            extra["next_night"] = {"error": f"{type(exc).__name__}: {exc}"}
    rss = max(peak_rss_mb(), extra.get("run_peak_rss_mb") or 0.0)  # its largest run worker
    queue.put({"extra": extra, "error": error, "wall_s": wall, "cpu_s": cpu,
               "peak_rss_mb": rss,
               # org time from the start until the org finished its last job
               "org_busy_s": max(after.last_job_end_s, before.emulated_s) - before.emulated_s,
               "delta": (after - before).__dict__, "records_after": after.records})


class Measured:
    """The measured part of a strategy: from ``start`` (before its client runs, and again
    when the client says its night begins: the deployed pipeline's cron tick) to the end;
    the org watched meanwhile."""

    def __init__(self, org: BenchOrg, name: str, target: str, rows: int) -> None:
        self.org, self.target = org, target
        self.watch = OrgWatch(org, name, target, rows)

    def start(self) -> None:
        self.before = self.org.snapshot(self.target)
        self.children = resource.getrusage(resource.RUSAGE_CHILDREN)  # earlier run workers
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.watch.start()


def _cpu() -> float:
    """CPU of this process and of its ended children (the run workers) so far."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def run_strategy(name: str, seeded: SeededOrg, cfg: BenchConfig, work: Path,
                 echo: Callable[[str], None]) -> StrategyResult:
    ctx = mp.get_context("spawn")
    from .incremental import preserved

    keep = preserved(seeded.data_dir) if name == INCREMENTAL else contextlib.nullcontext()
    with keep, seeded.fresh(cfg.profile, *cfg.overrides, *_clock(name, cfg)) as org:
        queue: mp.Queue = ctx.Queue()
        child = ctx.Process(target=_child, args=(name, str(seeded.data_dir), cfg,
                                                 str(work / name.replace(" ", "_")),
                                                 {"url": org.url, "ca_file": org.ca_file},
                                                 queue))
        child.start()
        got = queue.get()
        child.join()
        got["extra"]["time_scale"] = org.time_scale
        org_workers = int(org.profile["workers"])
    d = OrgSnapshot(**got["delta"])
    busy = got["org_busy_s"] * org_workers
    extra = {**got["extra"], "emulated_until_client_done_s": round(d.emulated_s, 1),
             # how much of the org's worker capacity the strategy kept busy, and lock waits
             "org_utilization": round(d.worker_busy_s / busy, 3) if busy else 0.0,
             "lock_wait_s": round(d.lock_wait_s, 1)}
    if got["error"]:
        extra["error"] = got["error"]
        echo(f"  {name}: {got['error']}")
    from .strategies import SEEDS

    description = {"ceiling": "every row in one submission, pre-sorted by parent, no faults",
                   "dc_to_core": "the pipeline as deployed: PostgreSQL instance, "
                                 "dagster-daemon's automation and queued run coordinator "
                                 "from the nightly cron tick",
                   IN_PROCESS: "the pipeline's automation evaluated by the bench, runs in "
                               "its own pool of worker processes (no daemon, SQLite)",
                   INCREMENTAL: "dc_to_core's next night, after a day of changes (1 % "
                                "updated, 0.5 % added, 0.2 % removed, 0.1 % edited in Core)",
                   "plain script": "one upsert of all rows in source "
                                                         "order, no retries",
                   **{s.name: s.description for s in SEEDS}}[name]
    return StrategyResult(
        name=name, description=description, rows=int(extra.get("rows", cfg.rows)),
        loaded=got["records_after"],  # what Core holds of the target (before: none)
        quarantined=int(extra.get("quarantined", 0)), emulated_s=round(got["org_busy_s"], 1),
        wall_s=round(got["wall_s"], 1), api_requests=d.api_requests,
        bulk_batches=d.bulk_batches, bulk_jobs=int(extra.get("bulk_jobs", 0)),
        lock_timeouts=d.lock_timeouts, client_cpu_s=round(got["cpu_s"], 2),
        peak_rss_mb=round(got["peak_rss_mb"], 1), extra=extra)


def _clock(name: str, cfg: BenchConfig) -> tuple[str, ...]:
    """A strategy's clock: no faster than its client can follow. A seed replay keeps to its
    schedule on this machine; a strategy whose client never waits runs at ``busy_time_scale``
    (real time by default), or every second of client work would count as ``time_scale``
    seconds of org time, which no real org does."""
    from .strategies import SEEDS

    seed = next((s for s in SEEDS if s.name == name), None)
    cap = seed.max_time_scale if seed else cfg.busy_time_scale if name in BUSY else None
    scale = load_profile(cfg.profile, **_overrides(cfg.overrides)).time_scale
    if cap is None or scale <= cap:
        return ()
    return (f"time_scale={cap:g}",)


def _overrides(pairs: tuple[str, ...]) -> dict[str, object]:
    """``KEY=VALUE`` pairs as profile fields; ``faults.KEY=VALUE`` nests."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        *parents, leaf = key.split(".")
        target = out
        for name in parents:
            target = target.setdefault(name, {})  # type: ignore[assignment]
        target[leaf] = value  # type: ignore[index]
    return out


def run_bench(cfg: BenchConfig, echo: Callable[[str], None] = print) -> dict[str, Path]:
    work = cfg.work or Path(tempfile.mkdtemp(prefix="dc_to_core_bench_"))
    started = time.perf_counter()
    spec = SeedSpec(accounts=cfg.accounts, opportunities=cfg.rows, bad_share=cfg.bad_share)
    with progress("seeding Data Cloud", spec.rows, "rows") as bar:
        seeded = SeededOrg.seed(work / "org", spec, bar.update)
    echo(f"seeded {cfg.rows:,} opportunities over {cfg.accounts:,} accounts in "
         f"{time.perf_counter() - started:.1f} s ({work})")
    if cfg.overrides:
        echo(f"org profile {cfg.profile} with {', '.join(cfg.overrides)}")
    results = []
    with progress("running strategies", len(cfg.strategies), "strategies") as bar:
        for name in cfg.strategies:
            bar.update(detail=name)
            echo(f"running {name} ...")
            r = run_strategy(name, seeded, cfg, work, echo)
            echo(f"  {name}: {r.loaded:,}/{r.rows:,} loaded ({r.success_rate:.2%}), "
                 f"{r.emulated_s / 60:.1f} emulated min, {r.wall_s:.0f} s wall, "
                 f"{r.bulk_batches} batches")
            results.append(r)
            bar.advance()
    p = load_profile(cfg.profile, **_overrides(cfg.overrides))
    meta = {"rows": cfg.rows, "accounts": cfg.accounts, "profile": cfg.profile,
            "time_scale": p.time_scale, "workers": p.workers,
            "lock_timeout_s": p.lock_timeout_s, "row_ms": p.row_ms,
            "profile_values": p.model_dump()}
    return write(results, meta, cfg.out)
