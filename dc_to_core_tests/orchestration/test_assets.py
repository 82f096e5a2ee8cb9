"""The sync asset's runs: one run loads a partition at a time."""

from __future__ import annotations

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


def test_a_second_run_of_a_partition_being_loaded_fails_at_once_naming_the_first(project):
    ledger = project.live["ledger"]  # the one the runs use
    with dg.instance_for_test() as instance:
        first = instance.create_run_for_job(project.job("Account"),
                                            status=dg.DagsterRunStatus.STARTED,
                                            tags={"dagster/partition": "p00"})
        assert ledger.acquire("Account", "p00", first.run_id, lambda lease: False) is None
        second = project.run("Account", "p00", instance)
        assert not second.success
        said = " ".join(failure_messages(second))
        assert f"Account p00 is being loaded by run {first.run_id}" in said, said
        assert "once that run has ended" in said
        assert OrgClient(project.server).query("SELECT COUNT() FROM Account")["totalSize"] == 0
        assert not second.asset_materializations_for_node("account_partition")

        instance.report_run_canceled(first)  # however a run ends, it gives the partition up
        third = project.run("Account", "p00", instance)
        assert third.success
        assert ledger.holder("Account", "p00") is None  # given back once accounted for
