"""Materializing partitions in-process against the emulator: the invariant, the checks,
quarantine, lock-storm healing, idempotent re-runs, and runs on PostgreSQL storage."""

from __future__ import annotations

import random
import time
import uuid

import dagster as dg
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from dc_to_core.emulator.csvio import read_upload
from dc_to_core.emulator.schema import DEMO_SCHEMA
from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core.sync.plan import load_plan
from dc_to_core.sync.spec import load_syncs
from dc_to_core_tests.conftest import postgres_storage
from dc_to_core_tests.pipeline_support import (
    assert_reconciled,
    defs_package,
    failure_messages,
    make_project,
    outcomes,
)
from dc_to_core_tests.support import OrgClient, V, csv_text, set_faults


@pytest.fixture
def project(make_server, tmp_path):
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=30, opportunities=3000, bad_share=0.02,
                                                seed=11))
    return make_project(server, tmp_path)


def dc_count(project, obj: str, start, end) -> int:
    return project.live["datacloud"].count_range(obj, "ExternalId__c", start, end, fold=True)


def test_partitions_account_for_every_row_and_checks_pass(project):
    with dg.instance_for_test() as instance:
        for sync, obj in (("Account", "Account_Staging__dlm"),
                          ("Opportunity", "Opportunity_Staging__dlm")):
            for p in project.partitions(sync):
                result = project.run(sync, p, instance)
                assert result.success
                meta = project.materialization(result)
                start, end = meta["range_start"] or None, meta["range_end"] or None
                assert meta["rows_extracted"] == meta["rows_loaded"] + meta["rows_quarantined"]
                assert meta["rows_extracted"] == dc_count(project, obj, start, end)
                checks = project.checks(result)
                assert checks["counts_reconcile"] and checks["fields_match"]
                assert checks["no_duplicate_external_ids"]
                assert checks["no_quarantined_rows"] == (meta["rows_quarantined"] == 0)
        status = instance.get_status_by_partition(dg.AssetKey(["core", "Opportunity"]),
                                                  project.partitions("Opportunity"),
                                                  project.job("Opportunity").partitions_def)
        assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}
    core = project.live["core"]
    assert core.count("SELECT COUNT() FROM Account") == 30
    intermediates = project.root / "state" / "intermediate"
    assert not any(intermediates.glob("*/*/*"))  # cleaned after success


def test_a_bad_row_is_quarantined_with_its_code_and_the_check_warns(project):
    org = OrgClient(project.server)
    with dg.instance_for_test() as instance:
        for p in project.partitions("Account"):
            assert project.run("Account", p, instance).success
        first = project.partitions("Opportunity")[0]
        result = project.run("Opportunity", first, instance)
    meta = project.materialization(result)
    q = pq.read_table(meta["quarantine_path"]).to_pylist()
    codes = {r["error_code"] for r in q}
    assert codes >= {"MISSING_EXTERNAL_ID", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"}
    assert all(r["error_message"] and r["row"].startswith("{") for r in q)
    assert meta["rows_quarantined"] == len(q) > 0
    evaluation = next(e for e in result.get_asset_check_evaluations()
                      if e.check_name == "no_quarantined_rows")
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert org.query("SELECT COUNT() FROM Opportunity")["totalSize"] == meta["rows_loaded"]


def test_a_second_run_sends_only_rows_whose_error_can_heal(project):
    """Nothing changed in Data Cloud: the rows Core holds are not sent again, nor those the
    org refused for their content; only the rows whose parent was not found go again (the
    parent may have arrived), counted as retried. Every check still passes."""
    with dg.instance_for_test() as instance:
        for p in project.partitions("Account"):
            assert project.run("Account", p, instance).success
        p = project.partitions("Opportunity")[1]
        first = project.materialization(project.run("Opportunity", p, instance))
        second_result = project.run("Opportunity", p, instance)
        second = project.materialization(second_result)
        # a row the org refused for its content is fixed in Data Cloud: it goes, once
        refused = pq.read_table(second["quarantine_path"]).filter(
            pc.equal(pc.field("error_code"), "STRING_TOO_LONG")).column("key")[0].as_py()
        project.server.org.storage.dc.execute(
            'UPDATE "Opportunity_Staging__dlm" SET "Name__c" = \'fixed\' WHERE '
            '"ExternalId__c" = ?', (refused,))
        before = ingest_jobs(project.server)
        third = project.materialization(project.run("Opportunity", p, instance))
    healable = first.get("quarantined_invalid_cross_reference_key", 0)
    assert sent_keys(project.server, ingest_jobs(project.server) - before).count(refused) == 1
    assert third["rows_sent"] == healable + 1 and third["rows_created"] == 1
    assert third["rows_quarantined"] == second["rows_quarantined"] - 1
    assert first["rows_unchanged"] == 0 and first["rows_sent"] > first["rows_loaded"]
    assert second["rows_unchanged"] == first["rows_loaded"] and second["rows_created"] == 0
    assert second["rows_sent"] == second["rows_retried"] == healable > 0
    assert second["rows_loaded"] == first["rows_loaded"]
    assert second["rows_quarantined"] == first["rows_quarantined"]
    assert second["bulk_jobs"] == 1  # the healable rows only
    checks = project.checks(second_result)
    assert checks["counts_reconcile"] and checks["fields_match"]
    assert checks["no_duplicate_external_ids"]
    core = project.live["core"]
    assert core.count("SELECT COUNT() FROM Opportunity") == third["rows_loaded"]


def check_metadata(result: dg.ExecuteInProcessResult, name: str) -> tuple[bool, dict]:
    e = next(e for e in result.get_asset_check_evaluations() if e.check_name == name)
    return e.passed, {k: v.value for k, v in e.metadata.items()}


def test_checks_reuse_the_runs_extract_and_read_data_cloud_when_run_alone(project):
    """One Data Cloud read per run; checks launched on their own read the range again and
    see what changed since the load."""
    key = dg.AssetKey(["core", "Opportunity"])
    with dg.instance_for_test() as instance:
        for p in project.partitions("Account"):
            assert project.run("Account", p, instance).success
        p = project.partitions("Opportunity")[0]
        loaded = project.run("Opportunity", p, instance)
        passed, meta = check_metadata(loaded, "counts_reconcile")
        assert passed and meta["datacloud_read"] == "this run's extract"
        assert meta["datacloud_rows"] == project.materialization(loaded)["rows_extracted"]
        first = project.live["datacloud"].query_table(
            'SELECT MIN("ExternalId__c") AS k FROM "Opportunity_Staging__dlm"').column("k")[0]
        OrgClient(project.server).post("/__emulator__/datacloud/sql", json={
            "sql": f'UPDATE "Opportunity_Staging__dlm" SET "ExternalId__c" = \'{first}x\' '
                   f'WHERE "ExternalId__c" = \'{first}\''}).raise_for_status()
        checks = {dg.AssetCheckKey(key, n) for n in ("counts_reconcile", "fields_match")}
        alone = project.job("Opportunity").get_subset(
            asset_selection=set(), asset_check_selection=checks).execute_in_process(
            partition_key=p, instance=instance, raise_on_error=False)
    assert alone.success and not instance_materialized(alone)
    passed, meta = check_metadata(alone, "counts_reconcile")
    assert not passed and meta["datacloud_read"] == "Data Cloud, read by the check"
    assert (meta["missing_in_core"], meta["unexpected_in_core"]) == (1, 1)


def instance_materialized(result: dg.ExecuteInProcessResult) -> bool:
    return any(e.event_type_value == "ASSET_MATERIALIZATION" for e in result.all_events)


def test_a_partition_that_failed_loads_when_re_run_after_the_fault_clears(project):
    """A failed run's collected jobs are not resumed by the next run: it sends the rows."""
    with dg.instance_for_test() as instance:
        for p in project.partitions("Account"):
            assert project.run("Account", p, instance).success
        p = project.partitions("Opportunity")[0]
        set_faults(project.server, job_fail_key=".")
        failed = project.run("Opportunity", p, instance)
        assert not failed.success
        assert "re-pass rounds" in " ".join(failure_messages(failed))
        set_faults(project.server, job_fail_key="")
        again = project.run("Opportunity", p, instance)
    assert again.success, failure_messages(again)
    meta = project.materialization(again)
    assert meta["resumed_jobs"] == 0
    assert meta["rows_loaded"] + meta["rows_quarantined"] == meta["rows_extracted"]
    core = OrgClient(project.server).query("SELECT COUNT() FROM Opportunity")
    assert core["totalSize"] == meta["rows_loaded"]


def test_a_lock_storm_is_healed_by_the_re_pass(make_server, tmp_path):
    server = make_server(time_scale=20.0, lock_timeout_s=1.0, workers=4)
    seed_datacloud(server.org.storage, SeedSpec(accounts=10, opportunities=4000, seed=5))
    project = make_project(server, tmp_path, partitions=1)
    org = OrgClient(server)
    with dg.instance_for_test() as instance:
        assert project.run("Account", "p00", instance).success
        rnd = random.Random(1)  # another integration writes children of the same accounts
        rows = [[f"OTHER-{i:06d}", "n", "Prospecting", "2025-01-01",
                 f"ACC-{rnd.randrange(10):07d}"] for i in range(40_000)]  # ≈ 80 emulated s
        other = org.submit("Opportunity", csv_text(["External_Id__c", "Name", "StageName",
                                                    "CloseDate", "Account.External_Id__c"], rows))
        deadline = time.monotonic() + 60
        while org.get(f"{V}/jobs/ingest/{other}").json()["numberRecordsProcessed"] == 0:
            assert time.monotonic() < deadline, "the other integration's job never started"
            time.sleep(0.02)
        result = project.run("Opportunity", "p00", instance)  # while the storm is on
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    meta = project.materialization(result)
    assert meta["repass_rounds"] >= 1  # the first round met the storm
    assert meta["rows_loaded"] == 4000 and meta["rows_quarantined"] == 0


@pytest.mark.postgres
def test_two_partitions_as_separate_runs_on_postgres(project, pg_database):
    with dg.instance_for_test(overrides={"storage": postgres_storage(pg_database)}
                              ) as instance:
        runs = [project.run("Account", p, instance) for p in project.partitions("Account")]
        assert all(r.success for r in runs) and len({r.run_id for r in runs}) == 2
        records = instance.fetch_materializations(dg.AssetKey(["core", "Account"]), limit=10)
        assert {r.asset_materialization.partition for r in records.records} == set(
            project.partitions("Account"))
        assert "postgres" in type(instance.run_storage).__name__.lower()


def test_checks_on_another_worker_read_the_quarantine_from_shared_storage(make_server,
                                                                          tmp_path):
    """Two run workers with state directories of their own (two pods) and one quarantine URL
    (an fsspec filesystem, here fsspec's in-memory one): checks launched on the second read
    what the first quarantined, and nothing of it is on either worker's disk."""
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=30, opportunities=1500,
                                                bad_share=0.02, seed=12))
    shared = f"memory://dc_to_core-{uuid.uuid4().hex}/quarantine"
    loader = make_project(server, tmp_path / "a", partitions=1,
                          DC_TO_CORE_QUARANTINE_URL=shared)
    checker = make_project(server, tmp_path / "b", partitions=1,
                           DC_TO_CORE_QUARANTINE_URL=shared)
    key = dg.AssetKey(["core", "Opportunity"])
    with dg.instance_for_test() as instance:
        assert loader.run("Account", "p00", instance).success
        loaded = loader.run("Opportunity", "p00", instance)
        meta = loader.materialization(loaded)
        assert meta["rows_quarantined"] > 0 and meta["quarantine_path"].startswith("memory://")
        checks = {dg.AssetCheckKey(key, n) for n in ("no_quarantined_rows", "counts_reconcile")}
        alone = checker.job("Opportunity").get_subset(
            asset_selection=set(), asset_check_selection=checks).execute_in_process(
            partition_key="p00", instance=instance, raise_on_error=False)
    assert alone.success
    passed, seen = check_metadata(alone, "no_quarantined_rows")
    assert not passed and seen["quarantined_rows"] == meta["rows_quarantined"]
    assert check_metadata(alone, "counts_reconcile")[0]  # the quarantined keys are accounted
    for worker in ("a", "b"):
        assert not (tmp_path / worker / "state" / "quarantine").exists()


def test_keys_that_differ_in_case_at_range_boundaries_load_once_and_reconcile(make_server,
                                                                               tmp_path):
    """External_Id__c ignores case (Salesforce's default, and the emulated org's). Around
    every boundary of a 3-partition plan, Data Cloud gets keys whose case puts them on the
    other side of the boundary in byte order, and a pair of keys differing only in case.
    Each key falls in one partition on both sides, the pair is quarantined there as one
    record, Core holds every other key once, and all the checks agree."""
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=5, opportunities=300, seed=5))
    project = make_project(server, tmp_path, partitions=3)
    plan = load_plan(load_syncs().syncs["Opportunity"], tmp_path / "plans")
    bounds = [r.start for r in plan.ranges if r.start is not None]
    assert len(bounds) == 2 and all(b == b.lower() for b in bounds)
    extra = []
    for b in bounds:  # b is a folded seed key, e.g. opp-000000101
        extra += [b.upper() + "a",                        # above b folded, far below in bytes
                  "Opp" + b[3:-1] + chr(ord(b[-1]) - 1) + "ZZ"]  # just below b folded
    twins = [bounds[0].upper() + "-TWIN", bounds[0] + "-twin"]
    rows = [[k, f"n {k}", "Prospecting", "2025-01-02", 1.0, "", "acc-0000001",  # the org
             "2025-01-01T00:00:00Z"] for k in extra + twins]               # finds ACC-0000001
    server.org.storage.insert_dc_rows("Opportunity_Staging__dlm", [
        "ExternalId__c", "Name__c", "StageName__c", "CloseDate__c", "Amount__c",
        "Description__c", "AccountExternalId__c", "LastModifiedDate__c"], rows)
    with dg.instance_for_test() as instance:
        results = [project.run("Account", p, instance) for p in project.partitions("Account")]
        opportunities = [project.run("Opportunity", p, instance)
                         for p in project.partitions("Opportunity")]
        done = outcomes(project, results + opportunities)
        for result in opportunities:
            checks = project.checks(result)
            assert checks["counts_reconcile"] and checks["fields_match"], checks
            assert checks["no_duplicate_external_ids"], checks
    assert_reconciled(project, done)
    quarantined = {}
    for _, meta in done:
        for row in pq.read_table(meta["quarantine_path"]).to_pylist():
            quarantined[row["key"]] = (meta["range_start"], row["error_code"])
    assert {k: quarantined[k][1] for k in twins} == {
        k: "DUPLICATE_EXTERNAL_ID_IN_SOURCE" for k in twins}
    assert quarantined[twins[0]][0] == quarantined[twins[1]][0] == bounds[0]  # together
    core = project.live["bulk"].query("SELECT External_Id__c FROM Opportunity")
    held = core.column(0).to_pylist()
    assert all(held.count(k) == 1 for k in extra) and not set(twins) & set(held)


def test_where_the_orgs_soql_orders_keys_unlike_data_cloud_the_checks_still_agree(make_server,
                                                                               tmp_path):
    """The emulated org folds ASCII letters only (SQLite's NOCASE) where Data Cloud's LOWER
    folds É to é: with a boundary at ``opp-é``, Data Cloud puts ``OPP-Éa`` above it and the
    org's SOQL range puts it below. The check of the upper range (loaded first) looks it up
    by key; the lower range's gets it from the org and drops it (Data Cloud has it): both
    pass, and the metadata says what happened."""
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=3, opportunities=60, seed=3))
    keys = ["OPP-Éa", "opp-éb", "OPP-E"]
    server.org.storage.insert_dc_rows("Opportunity_Staging__dlm", [
        "ExternalId__c", "Name__c", "StageName__c", "CloseDate__c", "Amount__c",
        "AccountExternalId__c", "LastModifiedDate__c"], [
        [k, f"n {k}", "Prospecting", "2025-01-02", 1.0, "ACC-0000001", "2025-01-01T00:00:00Z"]
        for k in keys])
    project = make_project(server, tmp_path, partitions=1,
                           boundaries={"Opportunity": ["opp-é"]})
    with dg.instance_for_test() as instance:
        assert project.run("Account", "p00", instance).success
        results = [project.run("Opportunity", p, instance) for p in ("p01", "p00")]
        checks = [{e.check_name: e for e in r.get_asset_check_evaluations()} for r in results]
    for c in checks:
        assert all(e.passed for e in c.values() if e.check_name != "no_quarantined_rows"), {
            e.check_name: e.metadata for e in c.values()}
    high, low = (c["counts_reconcile"].metadata for c in checks)  # p01 was loaded first
    assert (high["looked_up_by_key"].value, high["found_by_key"].value) == (1, 1)  # OPP-Éa
    assert low["core_returned_outside_range"].value == 1  # ... which the org ranks below é
    assert (low["datacloud_rows"].value, low["core_records"].value) == (61, 61)


def ingest_jobs(server) -> set[str]:
    return {r[0] for r in server.org.storage.core.execute("SELECT id FROM ingest_job")}


def sent_keys(server, jobs: set[str]) -> list[str]:
    """The external ids the org received in those ingest jobs (their uploaded CSVs)."""
    keys = []
    for job in jobs:
        keys += read_upload(server.org.jobs.csv_path(job).read_bytes()).column(
            "External_Id__c").to_pylist()
    return sorted(keys)


def test_incremental_nights_send_exactly_the_rows_that_changed(make_server, tmp_path):
    """Night 1 loads everything but a row too long for the org (quarantined before upload, by
    the org's describe); night 2, with nothing changed,
    creates no Bulk job at all; night 3 sends exactly the rows updated and added in Data
    Cloud and the refused row once fixed there (asserted by external id from the org's own
    job records), and deletes the row removed there. A record edited and one deleted in Core
    fail the checks of night 4, which mark them; night 5 sends exactly those two and every
    check passes."""
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=8, opportunities=900, seed=21))
    columns = ["ExternalId__c", "Name__c", "StageName__c", "CloseDate__c", "Amount__c",
               "AccountExternalId__c", "LastModifiedDate__c"]
    server.org.storage.insert_dc_rows("Opportunity_Staging__dlm", columns, [
        ["OPP-BAD-1", "x" * 200, "Prospecting", "2025-01-02", 5.0, "ACC-0000001",
         "2025-01-01T00:00:00Z"]])  # Name is 120 characters at most: STRING_TOO_LONG
    project = make_project(server, tmp_path, partitions=2)

    failing: list[dict] = []

    def night(instance: dg.DagsterInstance) -> list[dict]:
        out = []
        for sync in ("Account", "Opportunity"):
            for p in project.partitions(sync):
                result = project.run(sync, p, instance)
                assert result.success, failure_messages(result)
                failing.extend({"check": e.check_name, **{k: v.value for k, v in
                                                          e.metadata.items()}}
                               for e in result.get_asset_check_evaluations()
                               if not e.passed and e.check_name != "no_quarantined_rows")
                out.append(project.materialization(result))
        return out

    with dg.instance_for_test() as instance:
        first = night(instance)
        assert sum(m["rows_sent"] for m in first) == 908  # the long one never goes
        assert sum(m["rows_quarantined"] for m in first) == 1
        before = ingest_jobs(server)
        second = night(instance)
        assert ingest_jobs(server) == before  # not one job, not one batch
        assert sum(m["rows_unchanged"] for m in second) == 908
        assert sum(m["rows_sent"] for m in second) == 0
        dc = server.org.storage.dc
        changed = [r[0] for r in dc.execute('SELECT "ExternalId__c" FROM '
                                            '"Opportunity_Staging__dlm" WHERE "ExternalId__c" '
                                            "<> 'OPP-BAD-1' ORDER BY 1 LIMIT 4")]
        changed, removed = changed[:3], changed[3]
        dc.execute('UPDATE "Opportunity_Staging__dlm" SET "Name__c" = "Name__c" || \' v2\' '
                   f'WHERE "ExternalId__c" IN ({",".join("?" * 3)})', changed)
        dc.execute('UPDATE "Opportunity_Staging__dlm" SET "Name__c" = \'fixed\' WHERE '
                   '"ExternalId__c" = \'OPP-BAD-1\'')
        dc.execute('DELETE FROM "Opportunity_Staging__dlm" WHERE "ExternalId__c" = ?',
                   (removed,))
        added = ["OPP-NEW-1", "opp-new-2"]
        server.org.storage.insert_dc_rows("Opportunity_Staging__dlm", columns, [
            [k, "new", "Prospecting", "2025-01-02", 5.0, "ACC-0000001", "2025-01-01T00:00:00Z"]
            for k in added])
        third = night(instance)
        upserts = {j for j in ingest_jobs(server) - before if server.org.storage.core.execute(
            "SELECT operation FROM ingest_job WHERE id = ?", (j,)).fetchone()[0] == "upsert"}
        assert sent_keys(server, upserts) == sorted([*changed, *added, "OPP-BAD-1"])
        assert sum(m["rows_sent"] for m in third) == 6
        assert sum(m["rows_created"] for m in third) == 3  # the added and the fixed
        assert sum(m["rows_updated"] for m in third) == 3
        assert sum(m["rows_unchanged"] for m in third) == 908 - 3 - 1
        assert sum(m.get("rows_deleted", 0) for m in third) == 1
        assert sum(m["rows_quarantined"] for m in third) == 0
        core_keys = {r[0] for r in server.org.storage.core.execute(
            "SELECT External_Id__c FROM Opportunity")}
        dc_keys = {r[0] for r in dc.execute('SELECT "ExternalId__c" FROM '
                                            '"Opportunity_Staging__dlm"')}
        assert core_keys == dc_keys  # Core equals the source
        names = project.live["bulk"].read_keys("Opportunity", ["External_Id__c", "Name"],
                                               "External_Id__c", changed)
        assert all(n.endswith(" v2") for n in names.column("Name").to_pylist())
        assert failing == []
        # someone edits one record in Core and deletes another: the checks see both and
        # mark them; the next night sends exactly those two, and Core equals the source
        edited, deleted = changed[0], added[0]
        core = server.org.storage.core
        core.execute("UPDATE Opportunity SET Name = 'edited by hand' WHERE External_Id__c = ?",
                     (edited,))
        core.execute("DELETE FROM Opportunity WHERE External_Id__c = ?", (deleted,))
        before = ingest_jobs(server)
        fourth = night(instance)
        assert sum(m["rows_sent"] for m in fourth) == 0
        assert sorted(f["check"] for f in failing) == ["counts_reconcile", "fields_match"]
        assert sum(f.get("marked_for_resend", 0) for f in failing) == 2
        assert next(f for f in failing if f["check"] == "fields_match")["rows_drifted"] == 1
        failing.clear()
        fifth = night(instance)
    assert failing == []
    assert sent_keys(server, ingest_jobs(server) - before) == sorted([edited, deleted])
    assert sum(m["rows_drifted"] for m in fifth) == 2  # what the checks marked
    assert sum(m["rows_retried"] for m in fifth) == 0
    assert sum(m["rows_created"] for m in fifth) == 1  # the deleted one, created again


def test_an_org_that_already_holds_the_data_is_adopted_not_reloaded(make_server, tmp_path):
    """With an empty sync state (a first run against an org loaded by Data Loader), a run
    reads its range from Core and sends only the rows that differ there: here the ones
    edited in Core and the ones changed in Data Cloud."""
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=6, opportunities=600, seed=23))
    project = make_project(server, tmp_path, partitions=2)
    def query_jobs() -> int:  # Bulk query jobs created so far (the org's daily limit)
        used = project.live["core"].limits()["DailyBulkV2QueryJobs"]
        return used["Max"] - used["Remaining"]

    with dg.instance_for_test() as instance:
        for sync in ("Account", "Opportunity"):
            outcomes(project, [project.run(sync, p, instance) for p in project.partitions(sync)])
        # the first night found Core's ranges empty by a REST COUNT(): the only Bulk query
        # jobs are the fields_match checks' reads, one per partition
        assert query_jobs() == 4
        # a migration: the records are there, the state is not
        ledger = project.live["ledger"]
        with ledger.engine().begin() as conn:
            conn.exec_driver_sql("DELETE FROM dc_to_core_sync_state")
        core, dc = server.org.storage.core, server.org.storage.dc
        keys = [r[0] for r in core.execute("SELECT External_Id__c FROM Opportunity ORDER BY 1 "
                                           "LIMIT 4")]
        core.execute("UPDATE Opportunity SET Name = 'edited in Core' WHERE External_Id__c = ?",
                     (keys[0],))
        # and records someone else created there: one without an external id, one whose key
        # Data Cloud does not have (mirrored deletes: recorded, so the next night sees it gone)
        OrgClient(server).run_job("Opportunity", csv_text(
            ["External_Id__c", "Name", "StageName", "CloseDate"],
            [["", "no key", "Prospecting", "2026-01-01"],
             ["OPP-000000000-ONLY-IN-CORE", "stray", "Prospecting", "2026-01-01"]]),
            operation="insert", ext=None)
        dc.execute('UPDATE "Opportunity_Staging__dlm" SET "Amount__c" = 1234.5 WHERE '
                   '"ExternalId__c" = ?', (keys[1],))
        before = ingest_jobs(server)
        runs = [project.run("Opportunity", p, instance)
                for p in project.partitions("Opportunity")]
        metas = [m for _, m in outcomes(project, runs)]
        assert query_jobs() == 4 + 2 + 2  # each range read once to adopt it, and checked
        failed = [(e.check_name, e.metadata["unexpected_in_core"].value) for r in runs
                  for e in r.get_asset_check_evaluations() if not e.passed]
        assert failed == [("counts_reconcile", 1)]  # the stray: Data Cloud lacks its key
        assert sent_keys(server, ingest_jobs(server) - before) == sorted(keys[:2])
        assert sum(m["rows_adopted"] for m in metas) == 600 - 2 + 1  # and the stray record
        assert sum(m["rows_unchanged"] for m in metas) == 600 - 2
        runs = [project.run("Opportunity", p, instance)  # the next night deletes the stray
                for p in project.partitions("Opportunity")]
    assert sum(m["rows_deleted"] for _, m in outcomes(project, runs)) == 1
    assert all(all(project.checks(r).values()) for r in runs)
    assert project.live["core"].count("SELECT COUNT() FROM Opportunity") == 600 + 1


def upper_casing_org(make_server, tmp_path):
    """An org whose automation upper-cases Account.Name on every save."""
    doc = yaml.safe_load(DEMO_SCHEMA.read_text())
    doc["core"]["Account"]["fields"]["Name"]["on_save"] = "upper"
    schema = tmp_path / "org.yaml"
    schema.write_text(yaml.safe_dump(doc))
    server = make_server(time_scale=200.0, schema_path=schema)
    seed_datacloud(server.org.storage, SeedSpec(accounts=40, opportunities=0, seed=3))
    return server


ACCOUNT_SYNC = """
    name: Account
    source: Account_Staging__dlm
    target: Account
    key: {{source: ExternalId__c, target: External_Id__c}}
    fields:
      Name: {{source: Name__c, compare: {compare}}}
      Industry: Industry__c
"""


def test_a_field_the_org_rewrites_is_reported_by_field_not_resent_nightly(make_server,
                                                                          tmp_path):
    server = upper_casing_org(make_server, tmp_path)
    defs = defs_package(tmp_path, {"account": ACCOUNT_SYNC.format(compare="true")})
    project = make_project(server, tmp_path, partitions=1, defs_module=defs)
    drift = []
    with dg.instance_for_test() as instance:
        for night in range(3):
            if night == 2:  # and someone edits another field of one record in Core
                server.org.storage.core.execute(
                    "UPDATE Account SET Industry = CASE WHEN Industry = 'Other' THEN 'Banking' "
                    "ELSE 'Other' END WHERE External_Id__c = 'ACC-0000005'")
            result = project.run("Account", "p00", instance)
            assert result.success, failure_messages(result)
            check = next(e for e in result.get_asset_check_evaluations()
                         if e.check_name == "fields_match")
            drift.append(({k: v.value for k, v in check.metadata.items()},
                          project.materialization(result)["rows_sent"]))
    (first, sent1), (second, sent2), (third, sent3) = drift
    assert first["differ_right_after_load"] == 40 and first["marked_for_resend"] == 0
    assert first["rewritten_by_org"] == {"Name": 40} and "compare: false" in first["what_to_do"]
    assert first["drifted_by_field"] == {"Name": 0} and first["rows_drifted"] == 0
    assert (sent1, sent2) == (40, 0)  # not resent: the org would rewrite it again
    assert second["marked_for_resend"] == 0 and second["rows_rewritten_by_org"] == 40
    # the edited record holds something else than the org wrote: it drifted, the rest not
    assert third["rows_drifted"] == third["marked_for_resend"] == 1 and sent3 == 0
    assert third["drifted_by_field"] == {"Industry": 1, "Name": 1}


def test_a_field_with_compare_false_is_left_out_of_fields_match(make_server, tmp_path):
    server = upper_casing_org(make_server, tmp_path)
    defs = defs_package(tmp_path, {"account": ACCOUNT_SYNC.format(compare="false")})
    project = make_project(server, tmp_path, partitions=1, defs_module=defs)
    with dg.instance_for_test() as instance:
        result = project.run("Account", "p00", instance)
    assert result.success and all(project.checks(result).values())
