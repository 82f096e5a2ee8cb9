"""The chaos matrix: each fault, end to end, on real partition runs against the emulator.

Every scenario loads all Account and Opportunity partitions of a small org (with bad rows)
while the fault is on, then turns the faults off and checks the invariant: for each partition
extracted = loaded + quarantined = the Data Cloud count, no external id twice in Core, Core
holds exactly the loaded rows, and every quarantined row carries a code and a message.
The kill and restart scenarios are in test_chaos_process.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core_tests.pipeline_support import Project, make_project

FAULTS: dict[str, dict] = {
    "500/503 on any endpoint (10 %)": {"error_rate": 0.1},
    "429 with Retry-After (10 %)": {"throttle_rate": 0.1, "retry_after_s": 0.2},
    "REQUEST_LIMIT_EXCEEDED (5 %)": {"request_limit_rate": 0.05},
    "connection reset mid-upload": {"reset_rate": 0.5, "path_pattern": r"/batches$"},
    "connection reset mid-results-download": {
        "reset_rate": 0.3, "path_pattern": r"(?i)(results|unprocessedrecords)$"},
    "slow responses beyond the client timeout": {"slow_rate": 0.05, "slow_s": 3.0},
    "Core and Data Cloud tokens expire every 7 calls": {"expire_token_every": 7},
    "ingest jobs turn Failed (30 %)": {"job_fail_rate": 0.3},
    "chunks die leaving rows unprocessed (30 %)": {"chunk_die_rate": 0.3},
}
SLOW_TIMEOUT_S = "1.0"


def load_everything(project: Project, instance: dg.DagsterInstance, sync: str
                    ) -> list[dg.ExecuteInProcessResult]:
    return [project.run(sync, p, instance) for p in project.partitions(sync)]


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """What the operator reads: each failed step's error message."""
    return [e.step_failure_data.error.message for e in result.all_events
            if e.is_step_failure and e.step_failure_data.error]


def outcomes(project: Project, results: list[dg.ExecuteInProcessResult]
             ) -> list[tuple[str, dict]]:
    """(sync, materialization metadata) of successful runs; a failed run fails the test with
    what its operator would read."""
    out = []
    for result in results:
        assert result.success, failure_messages(result)
        out.append((result.job_def.name.removeprefix("load_"), project.materialization(result)))
    return out


def stored_outcomes(instance: dg.DagsterInstance, project: Project, sync: str
                    ) -> list[tuple[str, dict]]:
    """(sync, metadata) of each partition's latest materialization in the instance."""
    out = []
    for p in project.partitions(sync):
        records = instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(["core", sync]), asset_partitions=[p]), limit=1).records
        assert records, f"{sync} {p} was not materialized"
        meta = records[0].asset_materialization.metadata  # type: ignore[union-attr]
        out.append((sync, {k: v.value for k, v in meta.items()}))
    return out


def assert_reconciled(project: Project, outcomes: list[tuple[str, dict]]) -> None:
    """The chaos invariant over every partition of both syncs."""
    datacloud, bulk = project.live["datacloud"], project.live["bulk"]
    loaded = {"Account": 0, "Opportunity": 0}
    for sync, meta in outcomes:
        start, end = meta["range_start"] or None, meta["range_end"] or None
        dc = datacloud.count_range(f"{sync}_Staging__dlm", "ExternalId__c", start, end)
        assert meta["rows_extracted"] == meta["rows_loaded"] + meta["rows_quarantined"] == dc
        for row in pq.read_table(meta["quarantine_path"]).to_pylist():
            assert row["error_code"] and row["error_message"], row
        loaded[sync] += meta["rows_loaded"]
    for obj, n in loaded.items():
        keys = bulk.query(f"SELECT External_Id__c FROM {obj}").column(0).to_pylist()
        assert len(keys) == n, f"Core holds {len(keys)} {obj} records, runs loaded {n}"
        assert not [k for k, c in Counter(keys).items() if c > 1], "duplicate external ids"


def run_apart(project: Project, home: Path, sync: str, partitions: list[str]) -> None:
    """Partition runs in processes of their own, at the same time (as the run launcher
    starts them); their events go to the instance in ``home``."""
    env = {**os.environ, **project.env, "DAGSTER_HOME": str(home)}
    children = [subprocess.Popen([sys.executable, "-m", "dc_to_core_tests.pipeline_support",
                                  str(project.root / "plans"), sync, p], env=env)
                for p in partitions]
    codes = [c.wait(timeout=600) for c in children]
    assert codes == [0] * len(children), f"partition runs exited with {codes}"


@pytest.fixture
def small_org(make_server, tmp_path):
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=20, opportunities=2_000,
                                                bad_share=0.02, seed=3))
    return server, tmp_path


@pytest.mark.parametrize("name", list(FAULTS))
def test_chaos_matrix(name, small_org):
    server, root = small_org
    env = {"DC_TO_CORE_HTTP_TIMEOUT_S": SLOW_TIMEOUT_S} if "slow" in name else {}
    project = make_project(server, root, partitions=2, **env)
    server.org.update_profile({"faults": {"seed": 7, **FAULTS[name]}})
    with dg.instance_for_test() as instance:
        results = load_everything(project, instance, "Account")
        results += load_everything(project, instance, "Opportunity")
    server.org.update_profile({"faults": {k: 0 for k in FAULTS[name] if k != "path_pattern"}})
    assert_reconciled(project, outcomes(project, results))


def test_lock_storm_of_a_giant_parent_with_concurrent_partitions(make_server, tmp_path):
    """One account with 50,000 children spread over every partition; both partitions load at
    the same time, in two processes, while the org's lock deadline is short."""
    server = make_server(time_scale=400.0, lock_timeout_s=2.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=50, opportunities=60_000,
                                                skew="giant", giant_children=50_000, seed=4))
    project = make_project(server, tmp_path, partitions=2)
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        accounts = outcomes(project, load_everything(project, instance, "Account"))
    run_apart(project, home, "Opportunity", project.partitions("Opportunity"))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        loaded = stored_outcomes(instance, project, "Opportunity")
    assert_reconciled(project, accounts + loaded)
    assert server.org.engine.stats().lock_waits > 0  # the storm did happen
