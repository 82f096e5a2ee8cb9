"""``dc-to-core bench-locks`` at a small scale: two locking parents, ordered by the plan and by
the Account alone, on both graphs. Correctness and the structured result only, never timings.

One partition, so one Bulk job at a time: the org's simulation of it does not depend on when
the client reaches it, and the plan's chunks (whole components) share no parent by
construction. Ordered by Account alone, the chunks processed at once share their cluster's
warehouses, and a lock timeout shorter than one transaction fails every row that meets a
held warehouse. On the random graph every row is accounted; which ordering fails fewer rows
there is the heuristic's business, not asserted.
"""

from __future__ import annotations

import json

import pytest

from dc_to_core.bench.locks import LocksConfig, markdown, run_locks, write_defs
from dc_to_core.sync.spec import load_syncs

ROWS = 2_000


def test_the_defs_folder_declares_the_warehouse_locking_only_for_the_plan(tmp_path):
    plan = load_syncs(write_defs(tmp_path / "defs_plan", True)).syncs["Allocation"]
    one = load_syncs(write_defs(tmp_path / "defs_one", False)).syncs["Allocation"]
    assert [lk.relationship for lk in plan.locking] == ["Account__r.External_Id__c",
                                                        "Warehouse__r.External_Id__c"]
    assert [lk.relationship for lk in one.locking] == ["Account__r.External_Id__c"]
    assert {lk.relationship for lk in one.lookups} == {lk.relationship for lk in plan.lookups}


@pytest.mark.bench
def test_the_plan_locks_nothing_on_structured_allocations_and_every_row_is_accounted(tmp_path):
    cfg = LocksConfig(
        rows=ROWS, accounts=100, cluster_accounts=5, warehouses_per_account=2,
        rows_per_partition=ROWS, profile="fast", busy_time_scale=None,
        # 10 chunks of 200 rows, 8 at once; a lock wait fails sooner than a transaction ends
        overrides=("chunk_rows=200", "txn_rows=10", "workers=8", "lock_timeout_s=0.05"),
        out=tmp_path / "out", work=tmp_path / "work")
    paths = run_locks(cfg, echo=lambda _: None)
    body = json.loads(paths["json"].read_text())
    runs = {(r["extra"]["graph"], r["extra"]["ordering"]): r for r in body["results"]}
    assert list(runs) == [(g, o) for g in ("structured", "random")
                          for o in ("plan", "one parent")]
    for r in runs.values():  # every row accounted, every run and ERROR check passed
        assert "error" not in r["extra"], r["extra"]
        assert r["rows"] == ROWS and r["loaded"] == ROWS and r["lost"] == 0, r
        assert r["extra"]["failed_runs"] == 0 and r["extra"]["failed_error_checks"] == 0
    assert runs["structured", "plan"]["extra"]["components"] == 20  # a cluster of 5 each
    assert runs["random", "plan"]["extra"]["components"] == 1
    plan, one = runs["structured", "plan"], runs["structured", "one parent"]
    assert plan["extra"]["rows_lock_failed"] == 0 and plan["lock_timeouts"] == 0
    assert one["extra"]["rows_lock_failed_first_round"] > 0
    assert one["extra"]["repass_rounds"] >= 1  # which healed them: every row is loaded
    assert "| structured | plan | 2,000 | 2,000 | 0 | 0 | 0 | 0 |" in paths[
        "markdown"].read_text()


def test_markdown_names_graph_ordering_and_lock_failures():
    extra = {"graph": "random", "ordering": "plan", "rows_lock_failed_first_round": 12,
             "rows_lock_failed": 15, "repass_rounds": 2, "lock_wait_s": 30.4,
             "org_utilization": 0.5, "failed_runs": 0, "failed_error_checks": 0,
             "components": 1, "largest_component_rows": 1000}
    table = markdown([{"rows": 1000, "loaded": 1000, "quarantined": 0, "lost": 0,
                       "lock_timeouts": 40, "emulated_s": 90.0, "extra": extra}],
                     {"rows": 1000, "accounts": 10, "cluster_accounts": 5,
                      "warehouses_per_account": 3, "rows_per_partition": 250,
                      "profile": "fast", "time_scale": 200, "workers": 8, "chunk_rows": 200,
                      "txn_rows": 10, "lock_timeout_s": 0.05, "row_ms": 8})
    assert ("| random | plan | 1,000 | 1,000 | 0 | 0 | 12 | 15 | 2 | 40 | 30 | 1.5 min | 50 % "
            "| 0 / 0 | 1 | 1,000 |") in table
    assert "clusters of 5 accounts" in table
