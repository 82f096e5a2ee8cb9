"""The chaos matrix: each fault, end to end, on real partition runs against the emulator.

Every scenario loads all Account and Opportunity partitions of a small org (with bad rows)
while the fault is on, then turns the faults off and checks the invariant: for each partition
extracted = loaded + quarantined = the Data Cloud count, no external id twice in Core, Core
holds exactly the loaded rows, and every quarantined row carries a code and a message.
The kill and restart scenarios are in test_chaos_process.py.
"""

from __future__ import annotations

import dagster as dg
import pytest

from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core_tests.pipeline_support import (
    assert_reconciled,
    load_everything,
    make_project,
    outcomes,
    run_apart,
    stored_outcomes,
)

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
