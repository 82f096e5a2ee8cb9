"""Dry runs through the real pipeline: a run tagged dc_to_core/dry_run=true reports what the
night would do and leaves Core, the ledger and the sync state byte for byte as they were; the
real run then sends exactly the jobs and batches it forecast."""

from __future__ import annotations

import sqlite3

import dagster as dg

from dc_to_core.dry_run import run_preview
from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core.orchestration.preview import DRY_RUN_TAG
from dc_to_core_tests.pipeline_support import failure_messages, make_project, observation
from dc_to_core_tests.test_deletes import dc_delete

COLUMNS = ["ExternalId__c", "Name__c", "StageName__c", "CloseDate__c", "Amount__c",
           "AccountExternalId__c", "LastModifiedDate__c"]


def snapshot(server, ledger_db) -> dict:
    """Every row of Core's tables (the org's API usage counters aside) and of the ledger's
    database (jobs, leases, the sync state)."""
    core = server.org.storage.core
    tables = [r[0] for r in core.execute("SELECT name FROM sqlite_master WHERE type='table'")
              if r[0] not in ("usage", "token")]
    out = {f"core.{t}": sorted(map(repr, core.execute(f'SELECT * FROM "{t}"'))) for t in tables}
    with sqlite3.connect(ledger_db) as ledger:
        for (t,) in ledger.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            out[f"ledger.{t}"] = sorted(map(repr, ledger.execute(f'SELECT * FROM "{t}"')))
    return out


def files(root) -> dict:
    """Every file under ``root`` but the ledger's database, with its bytes."""
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith("ledger.db")}


def test_a_dry_run_writes_nothing_and_forecasts_what_the_run_sends(make_server, tmp_path):
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=5, opportunities=300, seed=4))
    project = make_project(server, tmp_path, partitions=1)
    dc = server.org.storage.dc
    with dg.instance_for_test() as instance:
        for sync in ("Account", "Opportunity"):
            assert project.run(sync, "p00", instance).success
        # the next night: 3 changed, 2 new, 1 removed, 1 the org would refuse
        keys = [r[0] for r in dc.execute('SELECT "ExternalId__c" FROM '
                                         '"Opportunity_Staging__dlm" ORDER BY 1 LIMIT 4')]
        dc.execute('UPDATE "Opportunity_Staging__dlm" SET "Name__c" = "Name__c" || \' v2\' '
                   'WHERE "ExternalId__c" IN (?, ?, ?)', keys[:3])
        assert dc_delete(server, "Opportunity_Staging__dlm", '"ExternalId__c" = ?', keys[3])
        server.org.storage.insert_dc_rows("Opportunity_Staging__dlm", COLUMNS, [
            [f"OPP-NEW-{i}", "new", "Prospecting", "2025-03-01", 5.0, "ACC-0000001",
             "2025-03-01T00:00:00Z"] for i in range(2)] + [
            ["OPP-NEW-BAD", "x" * 200, "Prospecting", "2025-03-01", 5.0, "ACC-0000001",
             "2025-03-01T00:00:00Z"]])
        before = snapshot(server, tmp_path / "state" / "ledger.db")
        kept = files(tmp_path / "state")
        dry = project.job("Opportunity").execute_in_process(
            partition_key="p00", instance=instance, raise_on_error=False,
            tags={DRY_RUN_TAG: "true"})
        assert dry.success, failure_messages(dry)
        assert not [e for e in dry.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
        printed: list[str] = []  # the CLI's table, from the same dry run
        rows = run_preview(["Opportunity"], "p00", printed.append, project.defs, instance,
                           project.live["core"].limits)
        assert snapshot(server, tmp_path / "state" / "ledger.db") == before
        assert files(tmp_path / "state") == kept  # no quarantine, extract or intermediate
        preview = observation(dry)
        real = project.run("Opportunity", "p00", instance)
        done = project.materialization(real)
    assert (preview["rows_would_create"], preview["rows_would_update"],
            preview["rows_would_delete"]) == (2, 3, 1)
    assert preview["rows_unchanged"] == done["rows_unchanged"]
    assert preview["rows_quarantined"] == done["rows_quarantined"] > 0
    assert (preview["bulk_jobs"], preview["bulk_batches"]) == (done["bulk_jobs"],
                                                               done["bulk_batches"]) == (2, 2)
    assert preview["budget"].startswith("fits")
    assert "forecast_load_s" in preview  # from the first night's pace
    assert done["rows_sent"] == 5 and done["rows_deleted"] == 1
    assert rows[0].values["rows_would_create"] == 2 and not rows[0].error
    head, _, line, total = printed[-2].splitlines()
    assert total.split()[:4] == ["total", "302", "2", "3"]  # 300 + 3 new - 1 removed
    assert total.split()[7:11] == ["2", "2", "34", "fits"]  # jobs, batches, API calls: all
                                                             # together within the budget
    assert head.split()[:6] == ["sync", "partition", "range", "extracted", "create", "update"]
    assert line.split()[:2] == ["Opportunity", "p00"] and " fits " in f" {line} "
