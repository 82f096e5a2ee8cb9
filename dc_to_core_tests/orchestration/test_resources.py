"""Where the resources point, from the environment."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_shared.serdes import serialize_value

from dc_to_core.orchestration.resources import LedgerResource, resources_from_env
from dc_to_core.salesforce.bulk import SubmittedJob


@pytest.mark.postgres
def test_the_ledger_lives_in_the_instance_postgres_every_worker_reaches(pg_database, tmp_path,
                                                                       monkeypatch):
    env = {"DAGSTER_PG_HOST": pg_database["host"], "DAGSTER_PG_PORT": pg_database["port"],
           "DAGSTER_PG_DB": pg_database["db"], "DAGSTER_PG_USERNAME": pg_database["user"],
           "DAGSTER_PG_PASSWORD": "pg-pa55word", "DC_TO_CORE_STATE_DIR": str(tmp_path),
           "DC_TO_CORE_CLIENT_SECRET": "x"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    configured = resources_from_env()["ledger"]

    @dg.asset
    def uses_ledger(ledger: LedgerResource) -> None:
        job = SubmittedJob("750000000000001", 0, 10, 100)
        ledger.record("S", "p00", "fp", 0, job, "run")
        assert [j.job_id for j in ledger.submitted("S", "p00", "fp", 0)] == [job.job_id]
        assert ledger.engine().url.get_backend_name() == "postgresql"
        ledger.forget("S", "p00", "fp")

    defs = dg.Definitions(assets=[uses_ledger], resources={"ledger": configured})
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "DAGSTER_PG_PASSWORD" in snapshot and "pg-pa55word" not in snapshot
    assert defs.resolve_implicit_global_asset_job_def().execute_in_process().success


def test_without_postgres_the_ledger_is_sqlite_in_the_state_dir(tmp_path):
    ledger = resources_from_env({"DC_TO_CORE_STATE_DIR": str(tmp_path),
                                 "DC_TO_CORE_CLIENT_SECRET": "x"})["ledger"]
    assert ledger.engine_url() == f"sqlite:///{tmp_path / 'ledger.db'}"


def test_the_default_client_id_is_the_emulators():
    from dc_to_core.emulator.credentials import DEFAULT_CLIENT_ID
    from dc_to_core.orchestration.resources import EMULATOR_CLIENT_ID

    assert EMULATOR_CLIENT_ID == DEFAULT_CLIENT_ID  # copied: the Dagster layer may not import it


@pytest.mark.parametrize("value", ["fast", "0", "-2"])
def test_a_time_scale_that_is_no_positive_number_is_named(value):
    with pytest.raises(ValueError, match=f"DC_TO_CORE_TIME_SCALE must be a number above 0, "
                                         f"got '{value}'"):
        resources_from_env({"DC_TO_CORE_TIME_SCALE": value})


@pytest.mark.parametrize("name", ["DC_TO_CORE_CHANGE_INTERVAL_S",
                                  "DC_TO_CORE_AUTOMATION_INTERVAL_S"])
def test_an_automation_interval_that_is_no_number_is_named(name, monkeypatch):
    from dc_to_core.orchestration.project import build_definitions

    monkeypatch.setenv(name, "often")
    with pytest.raises(Exception) as err:  # the component's error, with ours as its cause
        build_definitions()
    said, cause = [], err.value
    while cause is not None:
        said.append(str(cause))
        cause = cause.__cause__
    assert any(f"{name} must be a number above 0, got 'often'" in s for s in said), said
