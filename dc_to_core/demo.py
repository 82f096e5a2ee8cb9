"""``dc-to-core demo``: the whole product on the embedded emulator, in one command.

Starts an emulated org, seeds its Data Cloud, plans the partitions, materializes every
partition of every sync (parents first) on an embedded SQLite Dagster instance, and prints a
per-partition summary: extracted / loaded / quarantined / checks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
import dagster as dg

from .emulator import EmulatorConfig, EmulatorServer, load_profile
from .emulator.credentials import DEFAULT_CLIENT_SECRET
from .emulator.seed import SeedSpec, seed_datacloud
from .orchestration.project import QUIET, build_definitions
from .orchestration.resources import resources_from_env
from .progress import progress
from .sync.plan import compute_plan, save_plan
from .sync.spec import CONFIG_DIR, load_syncs


@dataclass
class PartitionRow:
    sync: str
    partition: str
    range: str = ""
    extracted: int = 0
    loaded: int = 0
    quarantined: int = 0
    checks_failed: list[str] = field(default_factory=list)
    checks_warned: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


def _row(sync: str, partition: str, result: dg.ExecuteInProcessResult, seconds: float
         ) -> PartitionRow:
    row = PartitionRow(sync, partition, seconds=seconds)
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            meta = event.event_specific_data.materialization.metadata  # type: ignore[union-attr]
            row.range = str(meta["range"].value)
            row.extracted, row.loaded = meta["rows_extracted"].value, meta["rows_loaded"].value
            row.quarantined = meta["rows_quarantined"].value
        elif event.event_type_value == "STEP_FAILURE" and not row.error:
            row.error = (event.message or "").split("\n")[0][:160]
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            target = row.checks_failed if evaluation.severity == dg.AssetCheckSeverity.ERROR \
                else row.checks_warned
            target.append(evaluation.check_name)
    return row


def summary_table(rows: list[PartitionRow]) -> str:
    head = ["sync", "partition", "range", "extracted", "loaded", "quarantined", "checks", "s"]
    body = [[r.sync, r.partition, r.range, f"{r.extracted:,}", f"{r.loaded:,}",
             f"{r.quarantined:,}", _checks(r), f"{r.seconds:.1f}"] for r in rows]
    total = ["total", "", "", f"{sum(r.extracted for r in rows):,}",
             f"{sum(r.loaded for r in rows):,}", f"{sum(r.quarantined for r in rows):,}", "",
             f"{sum(r.seconds for r in rows):.1f}"]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, total, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 3 or i == 6 else f"{{:>{w}}}"
                    for i, w in enumerate(widths))
    lines = [fmt.format(*head), fmt.format(*["-" * w for w in widths])]
    lines += [fmt.format(*b) for b in body] + [fmt.format(*total)]
    return "\n".join(lines)


def _checks(r: PartitionRow) -> str:
    if r.error:
        return "run failed"
    if r.checks_failed:
        return "FAILED: " + ",".join(r.checks_failed)
    return "passed" + (f" (warn: {','.join(r.checks_warned)})" if r.checks_warned else "")


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the demo's runs and restore them afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def materialize_all(defs: dg.Definitions, syncs: list[str], instance: dg.DagsterInstance
                    ) -> list[PartitionRow]:
    """Materialize every partition of each sync in order, with a progress bar."""
    todo = [(sync, p) for sync in syncs
            for p in defs.resolve_job_def(f"load_{sync}").partitions_def.get_partition_keys()]
    rows: list[PartitionRow] = []
    with progress("materializing partitions", len(todo), "partitions") as bar:
        for sync, partition in todo:
            bar.update(detail=f"{sync} {partition}")
            started = time.perf_counter()
            result = defs.resolve_job_def(f"load_{sync}").execute_in_process(
                partition_key=partition, instance=instance, raise_on_error=False,
                run_config=QUIET)
            rows.append(_row(sync, partition, result, time.perf_counter() - started))
            bar.advance()
    return rows


def run_demo(work: Path, spec: SeedSpec, partitions: int,
             echo: Callable[[str], None] = click.echo) -> list[PartitionRow]:
    """Run the demo in ``work`` (data dir, plans, state, DAGSTER_HOME)."""
    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIG_DIR / "dagster_local.yaml", home / "dagster.yaml")
    profile = load_profile("default")
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(EmulatorServer(EmulatorConfig(work / "org",
                                                                   profile=profile)))
        assert server.org is not None and server.ca_file is not None
        started = time.perf_counter()
        with progress("seeding Data Cloud", spec.rows, "rows") as bar:
            report = seed_datacloud(server.org.storage, spec, bar.update)
        echo(f"emulated org at {server.url}: seeded {report.accounts:,} accounts and "
             f"{report.opportunities:,} opportunities in {time.perf_counter() - started:.1f} s "
             f"({sum(len(v) for v in report.bad_rows.values()):,} bad rows on purpose)")
        env = {"DC_TO_CORE_LOGIN_URL": server.url, "DC_TO_CORE_CA_BUNDLE": str(server.ca_file),
               "DC_TO_CORE_STATE_DIR": str(work / "state"),
               "DC_TO_CORE_TIME_SCALE": str(profile.time_scale),
               "DC_TO_CORE_CLIENT_SECRET": DEFAULT_CLIENT_SECRET}
        stack.enter_context(_environment(env))  # EnvVars are read from the process env
        live = resources_from_env(env, resolve=True)
        syncs = load_syncs()
        with progress("planning partitions", len(syncs.planned()), "syncs") as bar:
            for s in syncs.planned():
                bar.update(detail=s.name)
                save_plan(compute_plan(live["datacloud"], s, partitions), work / "plans")
                bar.advance()
        defs = build_definitions(plans_dir=work / "plans", resources=resources_from_env(env))
        instance = stack.enter_context(dg.DagsterInstance.from_config(str(home)))
        rows = materialize_all(defs, [s.name for s in syncs.ordered()], instance)
    echo(summary_table(rows))
    echo(f"Dagster instance (SQLite): {home}; quarantine files: {work / 'state' / 'quarantine'}")
    return rows
