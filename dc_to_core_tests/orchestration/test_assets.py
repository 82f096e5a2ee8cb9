"""The sync asset's runs: one run loads a partition at a time."""

from __future__ import annotations

import collections
import threading

import dagster as dg
import pytest

from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core_tests.pipeline_support import failure_messages, make_project
from dc_to_core_tests.support import OrgClient


@pytest.fixture
def project(make_server, tmp_path):
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=20, opportunities=200, seed=5))
    return make_project(server, tmp_path)


def holding_run(project, instance: dg.DagsterInstance, sync: str, partition: str
                ) -> dg.DagsterRun:
    """A started run of ``sync`` that holds ``partition``'s lease, as a loading run does."""
    run = instance.create_run_for_job(project.job(sync), status=dg.DagsterRunStatus.STARTED,
                                      tags={"dagster/partition": partition})
    assert project.live["ledger"].acquire(sync, partition, run.run_id,
                                          lambda lease: False) is None
    return run


def test_a_second_run_of_a_partition_waits_for_the_first_to_end(project):
    with dg.instance_for_test() as instance:
        first = holding_run(project, instance, "Account", "p00")
        ends = threading.Timer(3.0, instance.report_run_canceled, args=(first,))
        ends.start()  # the first run ends while the second waits
        second = project.run("Account", "p00", instance)
        ends.join()
        assert second.success
        said = [e.user_message for e in instance.all_logs(second.run_id)]
        assert any(f"is being loaded by run {first.run_id}: waiting for it to end" in m
                   for m in said), said
        assert project.live["ledger"].holder("Account", "p00").run_id == second.run_id


def test_a_run_that_waited_too_long_fails_naming_the_run_that_holds_the_partition(
        project, monkeypatch):
    monkeypatch.setenv("DC_TO_CORE_LEASE_WAIT_S", "0")
    project = make_project(project.server, project.root, DC_TO_CORE_LEASE_WAIT_S="0")
    with dg.instance_for_test() as instance:
        first = holding_run(project, instance, "Account", "p00")
        second = project.run("Account", "p00", instance)
        assert not second.success
        said = " ".join(failure_messages(second))
        assert f"Account p00 is being loaded by run {first.run_id}" in said, said
        assert "stops so the partition is not loaded twice" in said
        assert OrgClient(project.server).query("SELECT COUNT() FROM Account")["totalSize"] == 0


def test_the_run_log_tells_the_progress_of_the_read_and_of_the_bulk_jobs(project):
    with dg.instance_for_test() as instance:
        result = project.run("Account", "p00", instance)
        assert result.success
        said = collections.defaultdict(list)
        for e in instance.all_logs(result.run_id):
            said[(e.step_key or "").split(".")[-1]].append(e.user_message)
    assert any("rows read, done" in m for m in said["account_extract"]), said
    done = [m for m in said["account_load"] if m.startswith("Bulk Account upsert job")]
    assert done and " JobComplete: " in done[-1] and "records processed, 0 failed" in done[-1]
