"""A child partition's run extracts and prepares at once and its load waits for the parents'
runs (``orchestration/parents.py``): real runs of the child on the emulator, the parents' runs
as the instance records them (started, failed, queued as a retry, then succeeded)."""

from __future__ import annotations

import threading
import time

import dagster as dg
import pytest

from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core_tests.pipeline_support import failure_messages, load_everything, make_project
from dc_to_core_tests.support import OrgClient

ACCOUNT = dg.AssetKey(["core", "Account"])


@pytest.fixture
def server(make_server):
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=20, opportunities=400, seed=5))
    return server


def parent_run(project, instance: dg.DagsterInstance, partition: str,
               status: dg.DagsterRunStatus = dg.DagsterRunStatus.STARTED, **tags: str
               ) -> dg.DagsterRun:
    """A run of the Account job for ``partition`` as the instance records one (it plans the
    partition's materialization, so it is the partition's latest load)."""
    return instance.create_run_for_job(project.job("Account"), status=status,
                                       tags={"dagster/partition": partition, **tags})


def succeeded(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    instance.report_dagster_event(dg.DagsterEvent(
        event_type_value=dg.DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name),
        run_id=run.run_id)


def opportunities_in_core(server) -> int:
    response = OrgClient(server).get("/__emulator__/engine", params={"object": "Opportunity"})
    response.raise_for_status()
    return int(response.json()["records"])


def steps_started(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    """The ops of the run's steps that have started (a step's key is ``<graph>.<op>``)."""
    return {e.step_key.rsplit(".", 1)[-1] for e in instance.all_logs(
        run_id, of_type=dg.DagsterEventType.STEP_START) if e.step_key}


def test_the_load_waits_for_a_parent_being_loaded_and_starts_once_it_has(server, tmp_path):
    project = make_project(server, tmp_path)
    with dg.instance_for_test() as instance:
        assert all(r.success for r in load_everything(project, instance, "Account"))
        loading = parent_run(project, instance, "p01")  # tonight's load of Account p01
        results: list = []
        child = threading.Thread(target=lambda: results.append(
            project.run("Opportunity", "p00", instance)))
        child.start()
        run_id = None
        for _ in range(300):  # the child's run reaches the wait
            runs = instance.get_runs(dg.RunsFilter(job_name="load_Opportunity"))
            run_id = runs[0].run_id if runs else None
            if run_id and "opportunity_parents" in steps_started(instance, run_id):
                break
            time.sleep(0.1)
        try:
            time.sleep(1.0)  # a few polls of the parent
            steps = steps_started(instance, run_id)
            assert {"opportunity_extract", "opportunity_prepare", "opportunity_changes",
                    "opportunity_parents"} <= steps
            assert "opportunity_load" not in steps and opportunities_in_core(server) == 0
            waiting = [e.user_message for e in instance.all_logs(run_id)
                       if "its load waits for" in e.user_message]
            assert waiting and "core/Account p01" in waiting[0]
        finally:
            succeeded(instance, loading)  # the parent's load ends: the child's goes on
            child.join(timeout=120)
        assert results and results[0].success, failure_messages(results[0])
        assert opportunities_in_core(server) == project.materialization(results[0])[
            "rows_loaded"]


def test_a_parent_whose_latest_load_failed_stops_the_child_before_anything_is_sent(
        server, tmp_path):
    project = make_project(server, tmp_path)
    with dg.instance_for_test() as instance:
        assert all(r.success for r in load_everything(project, instance, "Account"))
        instance.report_run_failed(parent_run(project, instance, "p00"))
        result = project.run("Opportunity", "p01", instance)
        assert not result.success
        (message,) = failure_messages(result)
        assert "Opportunity p01: not loaded, because a parent is not: core/Account p00" in message
        assert "ended FAILURE" in message and "requests this partition again" in message
        assert opportunities_in_core(server) == 0


def test_a_parent_retry_waiting_for_a_run_slot_frees_the_childs_slot(server, tmp_path):
    project = make_project(server, tmp_path)
    with dg.instance_for_test() as instance:
        assert all(r.success for r in load_everything(project, instance, "Account"))
        parent_run(project, instance, "p01", dg.DagsterRunStatus.NOT_STARTED,
                   **{"dagster/retry_number": "1"})
        result = project.run("Opportunity", "p00", instance)
        assert not result.success
        assert "is being retried by run" in failure_messages(result)[0]
        assert opportunities_in_core(server) == 0


def test_a_parent_that_never_ends_stops_the_child_after_the_wait(server, tmp_path):
    project = make_project(server, tmp_path, DC_TO_CORE_PARENT_WAIT_S="2")
    with dg.instance_for_test() as instance:
        assert all(r.success for r in load_everything(project, instance, "Account"))
        parent_run(project, instance, "p00")
        result = project.run("Opportunity", "p00", instance)
        assert not result.success
        (message,) = failure_messages(result)
        assert "waited" in message and "core/Account p00 still loading" in message
        assert opportunities_in_core(server) == 0


def test_a_parent_never_loaded_stops_the_child(server, tmp_path):
    project = make_project(server, tmp_path)
    with dg.instance_for_test() as instance:
        result = project.run("Opportunity", "p00", instance)
        assert not result.success
        assert "core/Account p00 has never been loaded" in failure_messages(result)[0]
