"""Schedule and sensors, evaluated with Dagster's test contexts against the emulator."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import dagster as dg
import pytest

from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core.orchestration.alerts import failed_checks, failed_runs
from dc_to_core.orchestration.automation import NIGHT
from dc_to_core_tests.pipeline_support import make_project
from dc_to_core_tests.support import OrgClient, csv_text


@pytest.fixture
def project(make_server, tmp_path):
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=20, opportunities=600, seed=3))
    return make_project(server, tmp_path)


def change_sensor(project, instance: dg.DagsterInstance
                  ) -> Callable[[str | None], dg.SensorResult]:
    """One tick of ``source_changes`` from a cursor, against the project's Data Cloud."""
    sensor = project.defs.resolve_sensor_def("source_changes")

    def tick(cursor: str | None) -> dg.SensorResult:
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources={
                "datacloud": project.live["datacloud"]}) as context:
            return sensor(context)

    return tick


def touch(project, key: str, at: str = "2026-12-01T00:00:00.000+00:00") -> None:
    """An edit in Data Cloud: the Opportunity row ``key`` gets a new last-modified value."""
    OrgClient(project.server).post("/__emulator__/datacloud/sql", json={
        "sql": f'UPDATE "Opportunity_Staging__dlm" SET "LastModifiedDate__c" = \'{at}\' '
               f"WHERE \"ExternalId__c\" = '{key}'"}).raise_for_status()


def ui_backfill_of_accounts(instance: dg.DagsterInstance) -> dg.DagsterRun:
    """A started run as a backfill of core/Account launched from the UI looks."""
    run = dg.DagsterRun(job_name="__ASSET_JOB", run_id=str(uuid.uuid4()),
                        status=dg.DagsterRunStatus.STARTED,
                        asset_selection=frozenset({dg.AssetKey(["core", "Account"])}))
    instance.add_run(run)
    return run


def test_nightly_schedule_requests_every_root_partition(project):
    schedule = project.defs.resolve_schedule_def("nightly_Account")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, repository_def=project.defs.get_repository_def(),
            scheduled_execution_time=dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC))
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == project.partitions("Account")
    assert all(r.tags[NIGHT] == "2026-11-24T02:00:00+00:00" for r in requests)
    assert len({r.run_key for r in requests}) == len(requests)


def test_children_start_when_all_parents_are_loaded(project):
    sensor = project.defs.resolve_sensor_def("parents_loaded")
    night = "2026-11-24T02:00:00+00:00"
    with dg.instance_for_test() as instance:
        def tick(cursor: str | None = None) -> dg.SensorResult:
            return sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                  definitions=project.defs))

        assert tick().skip_reason.skip_message == "no nightly load has run yet"
        first, *rest = project.partitions("Account")
        assert project.job("Account").execute_in_process(
            partition_key=first, instance=instance, tags={NIGHT: night}).success
        waiting = tick()
        assert not waiting.run_requests
        assert "Opportunity waits for Account" in waiting.skip_reason.skip_message
        for p in rest:
            assert project.job("Account").execute_in_process(
                partition_key=p, instance=instance, tags={NIGHT: night}).success
        ready = tick()
        assert [r.partition_key for r in ready.run_requests] == project.partitions("Opportunity")
        assert {r.job_name for r in ready.run_requests} == {"load_Opportunity"}
        assert not tick(ready.cursor).run_requests  # once per night


def test_source_changes_requests_only_the_changed_partition(project):
    with dg.instance_for_test() as instance:
        tick = change_sensor(project, instance)
        baseline = tick(None)
        assert not baseline.run_requests
        assert baseline.skip_reason.skip_message == "baseline recorded"
        assert tick(baseline.cursor).skip_reason.skip_message == "no range changed"
        touch(project, "OPP-000000005")
        changed = tick(baseline.cursor)
    assert [(r.job_name, r.partition_key) for r in changed.run_requests] == [
        ("load_Opportunity", "p00")]
    assert changed.asset_events[0].partition == "p00"


def test_failed_runs_are_reported_in_the_run_log_and_on_the_asset(project, monkeypatch):
    monkeypatch.setenv("DC_TO_CORE_CLIENT_SECRET", "wrong-secret")
    with dg.instance_for_test() as instance:
        result = project.run("Account", "p00", instance)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
        context = dg.build_run_status_sensor_context(
            sensor_name="failed_runs", dagster_instance=instance, dagster_run=result.dagster_run,
            dagster_event=failure).for_run_failure()
        failed_runs(context)
        logs = [e.message for e in instance.all_logs(result.run_id)]
        assert any("dc_to_core alert" in (m or "") and "p00" in (m or "") for m in logs)
        observed = instance.fetch_observations(dg.AssetKey(["core", "Account"]), limit=5)
        assert observed.records[0].asset_observation.partition == "p00"
        assert "wrong-secret" not in " ".join(m or "" for m in logs)


def test_failed_error_checks_are_reported(project):
    with dg.instance_for_test() as instance:
        org = OrgClient(project.server)
        org.run_job("Account", csv_text(["External_Id__c", "Name"],
                                        [["ACC-0000000-stray", "not in Data Cloud"]]))
        result = project.run("Account", "p00", instance)
        assert result.success and not project.checks(result)["counts_reconcile"]
        success = next(e for e in result.all_events if e.event_type_value == "PIPELINE_SUCCESS")
        context = dg.build_run_status_sensor_context(
            sensor_name="failed_checks", dagster_instance=instance,
            dagster_run=result.dagster_run, dagster_event=success)
        failed_checks(context)
        logs = [e.message or "" for e in instance.all_logs(result.run_id)]
        assert any("ERROR check failed: core/Account:counts_reconcile (partition p00)" in m
                   for m in logs)


def test_a_bad_last_modified_value_is_reported_and_the_other_ranges_still_watched(project):
    """One Data Cloud row whose last-modified value is no timestamp: its range is reported
    with the value and the row's key; every other range of every sync is still watched."""
    org = OrgClient(project.server)

    def sql(statement: str) -> None:
        org.post("/__emulator__/datacloud/sql", json={"sql": statement}).raise_for_status()

    with dg.instance_for_test() as instance:
        tick = change_sensor(project, instance)
        baseline = tick(None)
        sql('UPDATE "Account_Staging__dlm" SET "LastModifiedDate__c" = \'yesterday-ish\' '
            "WHERE \"ExternalId__c\" = 'ACC-0000003'")
        bad = tick(baseline.cursor)
        assert not bad.run_requests
        message = bad.skip_reason.skip_message
        assert "Account p00: Account_Staging__dlm.LastModifiedDate__c holds 'yesterday-ish'" \
               in message and "ExternalId__c = 'ACC-0000003'" in message, message
        touch(project, "OPP-000000005")
        changed = tick(bad.cursor)
    assert [(r.job_name, r.partition_key) for r in changed.run_requests] == [
        ("load_Opportunity", "p00")]


def test_a_partition_that_is_loading_is_not_requested_again_until_its_run_ends(project):
    with dg.instance_for_test() as instance:
        tick = change_sensor(project, instance)
        baseline = tick(None)
        nightly = dg.DagsterRun(job_name="load_Opportunity", run_id=str(uuid.uuid4()),
                                status=dg.DagsterRunStatus.STARTED,
                                tags={"dagster/partition": "p00"})
        instance.add_run(nightly)
        checks_only = dg.DagsterRun(job_name="load_Opportunity", run_id=str(uuid.uuid4()),
                                    status=dg.DagsterRunStatus.STARTED, asset_selection=frozenset(),
                                    tags={"dagster/partition": "p01"})
        instance.add_run(checks_only)  # a run of the checks alone loads nothing
        p01 = project.live["datacloud"].query_table(
            'SELECT MAX("ExternalId__c") AS k FROM "Opportunity_Staging__dlm"').column("k")[0]
        for key in ("OPP-000000005", p01):
            touch(project, key)
        deferred = tick(baseline.cursor)
        assert [r.partition_key for r in deferred.run_requests] == ["p01"]  # p00 only waits
        instance.report_run_canceled(nightly)
        after = tick(deferred.cursor)
    assert [(r.job_name, r.partition_key) for r in after.run_requests] == [
        ("load_Opportunity", "p00")]


def test_source_changes_defers_children_while_a_ui_backfill_loads_their_parents(project):
    with dg.instance_for_test() as instance:
        tick = change_sensor(project, instance)
        baseline = tick(None)
        touch(project, "OPP-000000007", "2026-12-02T00:00:00.000+00:00")
        ui_backfill_of_accounts(instance)
        deferred = tick(baseline.cursor)
    assert not deferred.run_requests
    assert deferred.skip_reason.skip_message == (
        "children of loading parents deferred: Opportunity; partitions loading now, deferred: "
        "Account p00, Account p01")  # the backfill loads every Account partition


def test_a_range_first_seen_after_a_deferral_is_a_baseline_not_a_change(project):
    with dg.instance_for_test() as instance:
        tick = change_sensor(project, instance)
        backfill = ui_backfill_of_accounts(instance)
        first = tick(None)  # Accounts baselined, Opportunities deferred
        instance.report_run_canceled(backfill)
        later = tick(first.cursor)
    assert not first.run_requests and not later.run_requests
    assert later.skip_reason.skip_message == "baseline recorded"
