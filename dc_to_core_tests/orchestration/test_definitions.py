"""The code location as Dagster loads it, and the shipped instance configuration."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil

import dagster as dg
import pytest

from dc_to_core.orchestration.project import build_definitions
from dc_to_core.sync.spec import load_syncs


def test_definitions_load_without_contacting_the_org():
    defs = build_definitions()
    dg.Definitions.validate_loadable(defs)
    assert {k.to_user_string() for k in defs.resolve_all_asset_keys()} == {
        "core/Account", "core/Account/hierarchy", "core/Contact", "core/Opportunity",
        "datacloud/Account_Staging__dlm", "datacloud/Contact_Staging__dlm",
        "datacloud/Opportunity_Staging__dlm"}
    graph = defs.resolve_asset_graph()
    opp = graph.get(dg.AssetKey(["core", "Opportunity"]))
    assert opp.parent_keys == {  # and the hierarchy pass: it writes the Accounts it locks
        dg.AssetKey(["core", "Account"]), dg.AssetKey(["core", "Account", "hierarchy"]),
        dg.AssetKey(["core", "Contact"]), dg.AssetKey(["datacloud", "Opportunity_Staging__dlm"])}
    hierarchy = graph.get(dg.AssetKey(["core", "Account", "hierarchy"]))  # the second pass
    assert hierarchy.parent_keys == {dg.AssetKey(["core", "Account"]),
                                     dg.AssetKey(["datacloud", "Account_Staging__dlm"])}
    assert hierarchy.partitions_def == graph.get(dg.AssetKey(["core", "Account"])
                                                 ).partitions_def
    source = graph.get(dg.AssetKey(["datacloud", "Opportunity_Staging__dlm"]))
    assert source.is_observable and not source.is_materializable  # Data Cloud fills it
    assert source.partitions_def == opp.partitions_def  # one data version per range
    checks = {c.name for c in graph.asset_check_keys if c.asset_key.path[-1] == "Opportunity"}
    assert checks == {"counts_reconcile", "no_quarantined_rows", "no_duplicate_external_ids",
                      "fields_match"}
    job = defs.resolve_job_def("load_Opportunity")
    graph_def = job.graph.node_named("opportunity_partition").definition
    pools = {n: graph_def.node_named(f"opportunity_{n}").definition.pool
             for n in ("extract", "prepare", "load", "repass", "deletes", "finalize")}
    assert pools == {"extract": "datacloud_read", "prepare": None, "load": "bulk_api",
                     "repass": "bulk_api_repass", "deletes": "bulk_api_deletes",
                     "finalize": None}
    load = graph_def.node_named("opportunity_load").definition
    assert load.retry_policy.backoff == dg.Backoff.EXPONENTIAL
    nightly = defs.resolve_asset_graph().get(dg.AssetKey(["core", "Account"])
                                             ).automation_condition
    assert "nightly (0 2 * * *, UTC)" in labels(nightly)  # the default night


def labels(condition: dg.AutomationCondition) -> list[str | None]:
    return [condition.get_label(), *(x for c in condition.children for x in labels(c))]


def test_what_an_operator_sees_of_a_sync_asset():
    graph = build_definitions().resolve_asset_graph()
    opp = graph.get(dg.AssetKey(["core", "Opportunity"]))
    assert opp.kinds == {"salesforce"} and opp.owners == ["team:salesforce-data"]
    schema = opp.metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns] == [
        "External_Id__c", "Name", "StageName", "CloseDate", "Amount", "Probability",
        "LeadSource", "Description", "Account.External_Id__c",
        "Primary_Contact__r.External_Id__c", "Owner.Employee_Id__c"]
    assert {c.name: c.type for c in schema.columns}["CloseDate"] == "date"
    refs = opp.metadata["dagster/code_references"].code_references
    assert refs[0].file_path.endswith("defs/opportunity/defs.yaml")
    spec = load_syncs().syncs["Opportunity"]
    assert opp.code_version == spec.mapping_fingerprint
    assert opp.freshness_policy.deadline_cron == "0 6 * * *"  # the night's load is due by 06:00
    assert opp.freshness_policy.lower_bound_delta == dt.timedelta(hours=4)
    renamed = dataclasses.replace(spec, fields=spec.fields[:-1])
    assert renamed.mapping_fingerprint != spec.mapping_fingerprint  # a mapping change shows


def test_the_automation_sends_runs_to_the_queue_every_ten_seconds(monkeypatch):
    """The night's levels are runs, not backfills (a backfill waits for the backfill
    daemon's next iteration at every level of the object graph), from evaluations every 10 s
    unless DC_TO_CORE_AUTOMATION_INTERVAL_S says otherwise."""
    monkeypatch.delenv("DC_TO_CORE_AUTOMATION_INTERVAL_S", raising=False)
    sensor = build_definitions().resolve_sensor_def("sync_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.emit_backfills is False and sensor.minimum_interval_seconds == 10
    monkeypatch.setenv("DC_TO_CORE_AUTOMATION_INTERVAL_S", "30")
    assert build_definitions().resolve_sensor_def("sync_automation"
                                                  ).minimum_interval_seconds == 30


@pytest.mark.postgres
def test_the_production_instance_file_loads_against_postgres(pg_database, tmp_path,
                                                             monkeypatch):
    shutil.copy("dagster.yaml", tmp_path / "dagster.yaml")
    for var, value in (("DAGSTER_PG_USERNAME", pg_database["user"]),
                       ("DAGSTER_PG_PASSWORD", ""), ("DAGSTER_PG_HOST", pg_database["host"]),
                       ("DAGSTER_PG_DB", pg_database["db"]),
                       ("DAGSTER_PG_PORT", pg_database["port"])):
        monkeypatch.setenv(var, value)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert "Postgres" in type(instance.run_storage).__name__
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_coordinator.dequeue_interval_seconds == 2
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 6
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 3
    finally:
        instance.dispose()
