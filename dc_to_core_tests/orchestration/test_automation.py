"""Declarative automation and the Data Cloud observer, evaluated as the daemon evaluates them
(``evaluate_automation_conditions`` and a sensor context) against the emulator."""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest

from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core.orchestration import budget_condition
from dc_to_core.orchestration.alerts import failed_checks, failed_runs
from dc_to_core.orchestration.parents import PARENT_FAILED_TAG
from dc_to_core_tests.pipeline_support import failure_messages, load_everything, make_project
from dc_to_core_tests.support import OrgClient, csv_text

ACCOUNT, OPPORTUNITY = dg.AssetKey(["core", "Account"]), dg.AssetKey(["core", "Opportunity"])
NIGHT = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)  # the shipped cron: 0 2 * * * UTC


@pytest.fixture
def project(make_server, tmp_path, monkeypatch):
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=20, opportunities=600, seed=3))
    project = make_project(server, tmp_path)
    for name, value in project.env.items():  # the daemon's environment: the budget reads it
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(budget_condition, "_seen", {})
    return project


class Automation:
    """The ``sync_automation`` sensor's evaluations, one ``tick`` at a time, and the
    ``source_changes`` observer's ticks, on one instance."""

    def __init__(self, project, instance: dg.DagsterInstance,
                 start: dt.datetime = NIGHT - dt.timedelta(minutes=5)) -> None:
        self.project, self.instance = project, instance
        self.cursor, self.observer_cursor = None, None
        self.at = start

    def tick(self, minutes: float = 1) -> dict[str, list[str]]:
        """Evaluate the conditions ``minutes`` later: the partitions requested, by asset (a
        check requested on its own would show as ``<asset>:<check>``)."""
        self.at += dt.timedelta(minutes=minutes)
        result = dg.evaluate_automation_conditions(defs=self.project.defs,
                                                   instance=self.instance,
                                                   cursor=self.cursor, evaluation_time=self.at)
        self.cursor = result.cursor
        out: dict = {}
        for r in result.results:
            if r.true_subset.size:
                name = (r.key.to_user_string() if isinstance(r.key, dg.AssetKey)
                        else f"{r.key.asset_key.to_user_string()}:{r.key.name}")
                out[name] = sorted(r.true_subset.expensively_compute_partition_keys())
        return out

    def observe(self) -> dg.SensorResult:
        """One tick of ``source_changes``; its observations are recorded as the daemon does."""
        sensor = self.project.defs.resolve_sensor_def("source_changes")
        with dg.build_sensor_context(instance=self.instance, cursor=self.observer_cursor,
                                     resources={"datacloud": self.project.live["datacloud"]}
                                     ) as context:
            result = sensor(context)
        for event in result.asset_events:
            self.instance.report_runless_asset_event(event)
        self.observer_cursor = result.cursor
        return result


def touch(project, key: str, at: str = "2026-12-01T00:00:00.000+00:00") -> None:
    """An edit in Data Cloud: the Opportunity row ``key`` gets a new last-modified value."""
    OrgClient(project.server).post("/__emulator__/datacloud/sql", json={
        "sql": f'UPDATE "Opportunity_Staging__dlm" SET "LastModifiedDate__c" = \'{at}\' '
               f"WHERE \"ExternalId__c\" = '{key}'"}).raise_for_status()


def loaded_and_watched(project, instance: dg.DagsterInstance) -> Automation:
    """Every partition loaded, every range observed, nothing pending (at noon, far from the
    night)."""
    auto = Automation(project, instance, NIGHT + dt.timedelta(hours=10))
    assert auto.tick() == {}  # the first evaluation only starts the cursor
    assert len(auto.observe().asset_events) == 4  # a first data version for each range
    assert auto.tick() == {}  # ranges never loaded wait for the night
    for sync in ("Account", "Opportunity"):
        assert all(r.success for r in load_everything(project, instance, sync))
    assert auto.tick() == {}
    assert auto.observe().skip_reason.skip_message == "no range changed"
    return auto


def started_run(project, instance: dg.DagsterInstance, sync: str, partition: str
                ) -> dg.DagsterRun:
    """A run of ``sync``'s job for ``partition`` that has not ended (it planned its
    materialization, as every launched run does)."""
    return instance.create_run_for_job(project.job(sync), status=dg.DagsterRunStatus.STARTED,
                                       tags={"dagster/partition": partition})


def test_the_night_loads_the_roots_then_a_child_once_every_parent_partition_is_loaded(project):
    with dg.instance_for_test() as instance:
        auto = Automation(project, instance)
        assert auto.tick() == {}
        roots = auto.tick(minutes=5)  # 02:01: the tick has passed
        accounts = project.partitions("Account")
        assert roots[ACCOUNT.to_user_string()] == accounts
        assert OPPORTUNITY.to_user_string() not in roots
        assert set(roots) == {ACCOUNT.to_user_string()}  # its checks ride along in its runs
        first, *rest = accounts
        assert project.run("Account", first, instance).success
        assert auto.tick() == {}  # Opportunity waits for every Account partition
        for p in rest:
            assert project.run("Account", p, instance).success
        children = auto.tick()
        assert children[OPPORTUNITY.to_user_string()] == project.partitions("Opportunity")
        assert ACCOUNT.to_user_string() not in children
        assert auto.tick() == {}  # once per night
        assert auto.tick(minutes=60 * 24)[ACCOUNT.to_user_string()] == accounts  # next night


def ended(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """``run`` succeeds (as if its worker had loaded its partitions)."""
    instance.report_dagster_event(dg.DagsterEvent(
        dg.DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name, message="loaded"),
        run_id=run.run_id)


def waiting_child(project, instance: dg.DagsterInstance, pool: ThreadPoolExecutor):
    """A run of Opportunity p00, started in ``pool``, once it waits for its parents (its
    extract, prepare and diff done)."""
    child = pool.submit(project.run, "Opportunity", "p00", instance)
    for _ in range(600):
        runs = instance.get_runs(dg.RunsFilter(job_name="load_Opportunity"))
        if runs and any(e.dagster_event.step_key == "opportunity_partition.opportunity_parents"
                        for e in instance.all_logs(runs[0].run_id,
                                                   of_type=dg.DagsterEventType.STEP_START)):
            return child
        assert not child.done(), failure_messages(child.result())
        time.sleep(0.1)
    raise AssertionError("the child's run never reached its wait for the parents")


def test_a_child_is_requested_while_its_parents_load_and_waits_for_them_to_load(project):
    """The night's children start while their parents load: extract, prepare and diff
    meanwhile, then wait for the parents' runs before their first Bulk job."""
    with dg.instance_for_test() as instance:
        auto = Automation(project, instance)
        assert auto.tick() == {}
        accounts = project.partitions("Account")
        assert auto.tick(minutes=5) == {ACCOUNT.to_user_string(): accounts}
        assert all(project.run("Account", p, instance).success for p in accounts[1:])
        loading = started_run(project, instance, "Account", accounts[0])  # the sensor's run
        assert auto.tick() == {OPPORTUNITY.to_user_string(): project.partitions("Opportunity")}
        with dg.instance_for_test() as elsewhere:  # what `loading` does, in its worker
            assert project.run("Account", accounts[0], elsewhere).success
        with ThreadPoolExecutor(1) as pool:
            child = waiting_child(project, instance, pool)
            time.sleep(1.0)
            assert not child.done()  # waits for `loading`, the run created before it
            assert project.live["core"].count("SELECT COUNT() FROM Opportunity") == 0
            parent_done = time.time()
            ended(instance, loading)
            result = child.result(timeout=120)
        assert result.success, failure_messages(result)
        load_started = next(e.timestamp for e in instance.all_logs(
            result.run_id, of_type=dg.DagsterEventType.STEP_START)
            if e.dagster_event.step_key == "opportunity_partition.opportunity_load")
        assert load_started > parent_done  # its first Bulk job after its parent's load
        assert project.materialization(result)["rows_loaded"] > 0
        assert auto.tick() == {}  # once per night


def test_a_parent_loaded_by_a_run_not_requested_tonight_is_not_waited_for_at_the_tick(
        project):
    """A parent partition being loaded by an earlier run (a change of the afternoon) is not
    tonight's load: the child is requested once the parent's nightly load is done."""
    with dg.instance_for_test() as instance:
        auto = Automation(project, instance)
        assert auto.tick() == {}
        accounts = project.partitions("Account")
        earlier = started_run(project, instance, "Account", accounts[0])
        assert auto.tick(minutes=5) == {ACCOUNT.to_user_string(): accounts[1:]}
        for p in accounts[1:]:
            started_run(project, instance, "Account", p)
        assert auto.tick() == {}  # accounts[0] is loading, but not by a run of tonight
        instance.report_run_canceled(earlier)
        assert auto.tick() == {ACCOUNT.to_user_string(): accounts[:1]}
        started_run(project, instance, "Account", accounts[0])  # tonight's
        assert auto.tick() == {OPPORTUNITY.to_user_string(): project.partitions("Opportunity")}


def test_a_child_whose_parent_run_failed_stops_and_is_requested_again_once_it_is_loaded(
        project):
    """A parent's run fails while its child waits: the child stops before sending anything
    (freeing its run slot for the parent's retry), says which parent, and is requested again
    once the parents are loaded."""
    with dg.instance_for_test() as instance:
        auto = Automation(project, instance)
        assert auto.tick() == {}
        accounts = project.partitions("Account")
        assert auto.tick(minutes=5) == {ACCOUNT.to_user_string(): accounts}
        runs = [started_run(project, instance, "Account", p) for p in accounts]
        assert OPPORTUNITY.to_user_string() in auto.tick()
        with ThreadPoolExecutor(1) as pool:
            child = waiting_child(project, instance, pool)
            instance.report_run_failed(runs[1])  # a crashed worker: retried by the daemon,
            retry = started_run(project, instance, "Account", accounts[1])  # planned later
            result = child.result(timeout=120)
        assert not result.success
        stopped = instance.get_run_by_id(result.run_id)
        assert f"core/Account {accounts[1]} (run {runs[1].run_id})" in stopped.tags[
            PARENT_FAILED_TAG]
        assert any("its records may be missing in Core" in m for m in failure_messages(result))
        assert project.live["core"].count("SELECT COUNT() FROM Opportunity") == 0
        assert auto.tick() == {}  # until its parents are loaded
        instance.report_run_canceled(runs[0])
        instance.report_run_canceled(retry)
        assert all(project.run("Account", p, instance).success for p in accounts)  # the retry
        assert auto.tick() == {OPPORTUNITY.to_user_string(): ["p00"]}  # only the stopped one
        assert project.run("Opportunity", "p00", instance).success
        assert auto.tick() == {}


def budget_results(result) -> list:
    """The evaluations of the limit budget's condition, anywhere in the trees."""
    found, todo = [], list(result.results)
    while todo:
        r = todo.pop()
        todo += r.child_results
        if r.condition.name == "within_limit_budget":
            found.append(r)
    return found


def test_a_parent_and_child_of_one_partition_each_go_in_one_run_parent_first(
        make_server, tmp_path, monkeypatch):
    """Small syncs (one partition each, the same key): requested together at the tick, in
    one run, where the child's steps wait for the parent's: no sensor interval between
    them. Both are requested once per night."""
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=20, opportunities=300, seed=3))
    project = make_project(server, tmp_path, partitions=1)
    for name, value in project.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(budget_condition, "_seen", {})
    with dg.instance_for_test() as instance:
        auto = Automation(project, instance)
        assert auto.tick() == {}
        requested = auto.tick(minutes=5)  # 02:01: the tick has passed, both at once
        assert requested == {ACCOUNT.to_user_string(): ["p00"],
                             OPPORTUNITY.to_user_string(): ["p00"]}
        # Dagster's run requests group assets by partitions definition and key: one run
        parts = {project.defs.resolve_assets_def(dg.AssetKey.from_user_string(k)).partitions_def
                 for k in requested}
        assert len(parts) == 1
        job = project.defs.resolve_implicit_global_asset_job_def()
        done = job.execute_in_process(partition_key="p00", instance=instance,
                                      asset_selection=[ACCOUNT, OPPORTUNITY])
        assert done.success
        steps = [e.step_key for e in done.all_events if e.event_type_value == "STEP_START"]
        assert steps.index("opportunity_partition.opportunity_extract") > steps.index(
            "account_partition.account_finalize")  # the child after its parent, in the run
        assert project.live["core"].count("SELECT COUNT() FROM Opportunity") == 300
        assert auto.tick() == {}  # once per night


def test_a_night_that_does_not_fit_the_budget_is_not_started_and_says_why(project):
    limits = project.server.org.limits
    limits.take("DailyBulkApiBatches", limits.remaining("DailyBulkApiBatches") - 100)
    with dg.instance_for_test() as instance:
        auto = Automation(project, instance)
        assert auto.tick() == {}
        auto.at += dt.timedelta(minutes=5)  # 02:01: the tick has passed
        result = dg.evaluate_automation_conditions(defs=project.defs, instance=instance,
                                                   cursor=auto.cursor,
                                                   evaluation_time=auto.at)
        assert not any(r.true_subset.size for r in result.results)
        (refused,) = [m for m in (r.serializable_evaluation.metadata for r in
                                  budget_results(result)) if "refused" in m]
        message = refused["refused"].value
        assert message.startswith("the Account load due now (2 partition(s), 2 job(s)) needs ")
        assert "DailyBulkApiBatches but the org has used 14,900 of 15,000" in message
        OrgClient(project.server).http.patch("/__emulator__/profile", json={
            "daily_bulk_batches": 1_000_000}).raise_for_status()  # the allocation is raised
        auto.cursor = result.cursor
        assert auto.tick() == {}  # the org is looked at again LOOK_EVERY_S later
        assert auto.tick(minutes=5)[ACCOUNT.to_user_string()] == project.partitions("Account")


def test_a_changed_range_requests_only_its_partition(project):
    with dg.instance_for_test() as instance:
        auto = loaded_and_watched(project, instance)
        touch(project, "OPP-000000005")
        observed = auto.observe()
        assert [(e.asset_key.to_user_string(), e.partition) for e in observed.asset_events] == [
            ("datacloud/Opportunity_Staging__dlm", "p00")]
        assert observed.asset_events[0].metadata["source_rows"].value > 0
        assert auto.tick() == {OPPORTUNITY.to_user_string(): ["p00"]}
        assert auto.tick() == {}  # requested once


def test_a_change_while_its_partition_loads_is_loaded_after_the_run(project):
    """The run may have read the range before the change: the change is recorded, and its
    partition requested, once the run has ended (here it succeeds)."""
    with dg.instance_for_test() as instance:
        auto = loaded_and_watched(project, instance)
        nightly = started_run(project, instance, "Opportunity", "p00")
        touch(project, "OPP-000000005")
        waiting = auto.observe()
        assert not waiting.asset_events
        assert waiting.skip_reason.skip_message == (
            "changed while being loaded, recorded once the run ends: Opportunity p00")
        assert auto.tick() == {}
        instance.report_run_canceled(nightly)  # it ends, and a later run loads the partition:
        assert project.run("Opportunity", "p00", instance).success
        assert auto.tick() == {}
        assert [e.partition for e in auto.observe().asset_events] == ["p00"]
        assert auto.tick()[OPPORTUNITY.to_user_string()] == ["p00"]


def test_a_changed_partition_being_loaded_is_requested_only_after_its_run_ends(project):
    with dg.instance_for_test() as instance:
        auto = loaded_and_watched(project, instance)
        touch(project, "OPP-000000005")
        auto.observe()  # recorded before the run started
        nightly = started_run(project, instance, "Opportunity", "p00")
        assert auto.tick() == {}
        instance.report_run_canceled(nightly)
        assert auto.tick()[OPPORTUNITY.to_user_string()] == ["p00"]


def test_a_changed_child_waits_while_a_parent_partition_failed(project, monkeypatch):
    with dg.instance_for_test() as instance:
        auto = loaded_and_watched(project, instance)
        monkeypatch.setenv("DC_TO_CORE_CLIENT_SECRET", "wrong-secret")
        assert not project.run("Account", "p01", instance).success
        monkeypatch.undo()
        touch(project, "OPP-000000007", "2026-12-02T00:00:00.000+00:00")
        auto.observe()
        assert auto.tick() == {}
        assert project.run("Account", "p01", instance).success
        assert auto.tick()[OPPORTUNITY.to_user_string()] == ["p00"]


def test_a_changed_child_waits_while_a_parent_partition_is_loading(project):
    with dg.instance_for_test() as instance:
        auto = loaded_and_watched(project, instance)
        touch(project, "OPP-000000007", "2026-12-02T00:00:00.000+00:00")
        auto.observe()
        backfill = started_run(project, instance, "Account", "p01")
        assert auto.tick() == {}
        instance.report_run_canceled(backfill)
        assert auto.tick()[OPPORTUNITY.to_user_string()] == ["p00"]


def test_the_observer_restarted_records_no_change_for_ranges_already_observed(project):
    with dg.instance_for_test() as instance:
        auto = loaded_and_watched(project, instance)
        auto.observer_cursor = None  # the sensor reset from the UI: its cursor is gone
        assert not auto.observe().asset_events
        assert auto.tick() == {}


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
    with dg.instance_for_test() as instance:
        auto = loaded_and_watched(project, instance)
        org.post("/__emulator__/datacloud/sql", json={"sql": (
            'UPDATE "Account_Staging__dlm" SET "LastModifiedDate__c" = \'yesterday-ish\' '
            "WHERE \"ExternalId__c\" = 'ACC-0000003'")}).raise_for_status()
        bad = auto.observe()
        assert not bad.asset_events
        message = bad.skip_reason.skip_message
        assert "Account p00: Account_Staging__dlm.LastModifiedDate__c holds 'yesterday-ish'" \
               in message and "ExternalId__c = 'ACC-0000003'" in message, message
        touch(project, "OPP-000000005")
        changed = auto.observe()
        assert [e.partition for e in changed.asset_events] == ["p00"]
        assert auto.tick()[OPPORTUNITY.to_user_string()] == ["p00"]
