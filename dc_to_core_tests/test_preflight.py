"""Pre-flight and client-side validation, end to end against the emulator: a sync that does
not match the org's describe fails before anything is read from Data Cloud or sent to Core,
naming the sync and the field; rows the org's field constraints refuse are quarantined with
the org's codes before upload, and no job carries them."""

from __future__ import annotations

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml

from dc_to_core.emulator.schema import DEMO_SCHEMA
from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core_tests.pipeline_support import defs_package, failure_messages, make_project
from dc_to_core_tests.test_pipeline import ingest_jobs, sent_keys

ACCOUNT = """
    name: Account
    source: Account_Staging__dlm
    target: Account
    key: {{source: ExternalId__c, target: {key}}}
    fields: {fields}
    """
OPPORTUNITY = """
    name: Opportunity
    source: Opportunity_Staging__dlm
    target: Opportunity
    key: {source: ExternalId__c, target: External_Id__c}
    parent: {sync: Account, relationship: RELATIONSHIP, source: AccountExternalId__c}
    fields: {Name: Name__c, StageName: StageName__c,
             CloseDate: {source: CloseDate__c, type: date}}
    """
MISMATCHES = {  # what the sync gets wrong -> (sync that fails, words the failure must hold)
    "missing field": ({"account": ACCOUNT.format(key="External_Id__c", fields=(
        "{Name: Name__c, Colour__c: Industry__c}"))},
        "Account", ["sync 'Account'", "field 'Colour__c'", "has no such field"]),
    "not createable": ({"account": ACCOUNT.format(key="External_Id__c", fields=(
        "{Name: Name__c, Rating_Score__c: {source: AnnualRevenue__c, type: number}}"))},
        "Account", ["sync 'Account'", "field 'Rating_Score__c'",
                    "neither createable nor updateable"]),
    "key not an external id": ({"account": ACCOUNT.format(key="Name", fields=(
        "{Industry: Industry__c}"))},
        "Account", ["sync 'Account'", "key 'Name'", "is not an external id"]),
    "relationship to the wrong object": ({
        "account": ACCOUNT.format(key="External_Id__c", fields="{Name: Name__c}"),
        "opportunity": OPPORTUNITY.replace("RELATIONSHIP", "Campaign__r.External_Id__c")},
        "Opportunity", ["sync 'Opportunity'", "Campaign__r.External_Id__c",
                        "points at Campaign, not at Account"]),
    "source column missing": ({"account": ACCOUNT.format(key="External_Id__c", fields=(
        "{Name: Nmae__c}"))},
        "Account", ["source column 'Nmae__c'", "did you mean Name__c"]),
}


def org_schema(tmp_path) -> object:
    """The demo org plus a read-only Account field, an Opportunity lookup to Campaign, and a
    Probability narrower than Data Cloud's DECIMAL(3,0)."""
    doc = yaml.safe_load(DEMO_SCHEMA.read_text())
    doc["core"]["Opportunity"]["fields"]["Probability"]["precision"] = 2
    doc["core"]["Account"]["fields"]["Rating_Score__c"] = {
        "type": "currency", "precision": 18, "scale": 2, "createable": False,
        "updateable": False}
    doc["core"]["Campaign"] = {"key_prefix": "701", "fields": {
        "Name": {"type": "string", "length": 80, "required": True},
        "External_Id__c": {"type": "string", "length": 80, "external_id": True}}}
    doc["core"]["Opportunity"]["fields"]["Campaign__c"] = {
        "type": "reference", "to": "Campaign", "relationship": "Campaign__r"}
    path = tmp_path / "org.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("case", list(MISMATCHES))
def test_a_sync_that_does_not_match_the_org_fails_before_reading_or_sending(
        case, make_server, tmp_path):
    syncs, failing, words = MISMATCHES[case]
    server = make_server(time_scale=200.0, schema_path=org_schema(tmp_path))
    seed_datacloud(server.org.storage, SeedSpec(accounts=5, opportunities=50, seed=9))
    project = make_project(server, tmp_path, partitions=1,
                           defs_module=defs_package(tmp_path, syncs))
    read_before = server.org.datacloud.statements
    with dg.instance_for_test() as instance:
        result = project.run(failing, "p00", instance)
    assert not result.success
    message = " ".join(failure_messages(result))
    assert all(w in message for w in words), message
    assert "nothing was read or sent" in message
    assert server.org.datacloud.statements == read_before  # no Data Cloud query at all
    assert not ingest_jobs(server)                          # no Bulk job at all


def test_rows_the_orgs_constraints_refuse_are_quarantined_before_upload(make_server,
                                                                        tmp_path):
    server = make_server(time_scale=200.0, schema_path=org_schema(tmp_path))
    seed_datacloud(server.org.storage, SeedSpec(accounts=5, opportunities=60, seed=9))
    cols = ["ExternalId__c", "Name__c", "StageName__c", "CloseDate__c", "Amount__c",
            "Probability__c", "AccountExternalId__c", "LastModifiedDate__c"]
    good = ["Prospecting", "2025-01-02", 10.5, 10, "ACC-0000001", "2025-01-01T00:00:00Z"]
    bad = {  # key -> (row, the org's code)
        "BAD-long": (["BAD-long", "x" * 121, *good], "STRING_TOO_LONG"),
        "BAD-stage": (["BAD-stage", "n", "Sideways", *good[1:]],
                      "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        "BAD-no-name": (["BAD-no-name", None, *good], "REQUIRED_FIELD_MISSING"),
        "BAD-precise": (["BAD-precise", "n", "Prospecting", "2025-01-02", 10.5, 150,
                         "ACC-0000001", "2025-01-01T00:00:00Z"], "NUMBER_OUTSIDE_VALID_RANGE"),
    }
    server.org.storage.insert_dc_rows("Opportunity_Staging__dlm", cols,
                                      [row for row, _ in bad.values()])
    project = make_project(server, tmp_path, partitions=1)
    with dg.instance_for_test() as instance:
        assert project.run("Account", "p00", instance).success
        result = project.run("Opportunity", "p00", instance)
    meta = project.materialization(result)
    quarantine = {r["key"]: r for r in pq.read_table(meta["quarantine_path"]).to_pylist()}
    for key, (_, code) in bad.items():
        assert quarantine[key]["error_code"] == code, quarantine[key]
        assert quarantine[key]["stage"] == "prepare"  # caught here, not by the org
    sent = sent_keys(server, ingest_jobs(server))
    assert not set(bad) & set(sent)
    assert "Probability (%): value outside of valid range: 150" in quarantine[
        "BAD-precise"]["error_message"]


def test_a_partition_whose_forecast_does_not_fit_the_budget_sends_no_job(make_server,
                                                                         tmp_path):
    server = make_server(time_scale=200.0, daily_bulk_batches=4)
    seed_datacloud(server.org.storage, SeedSpec(accounts=5, opportunities=50, seed=9))
    server.org.limits.take("DailyBulkApiBatches", 3)  # others used 3 of 4 today
    project = make_project(server, tmp_path, partitions=1)
    with dg.instance_for_test() as instance:
        result = project.run("Account", "p00", instance)
    assert not result.success
    message = " ".join(failure_messages(result))
    assert ("Account p00 (1 job(s) of 5 rows) needs 1 DailyBulkApiBatches but the org has used "
            "3 of 4 in the last 24 h and dc_to_core stops at 80% of it (3)") in message, message
    assert not ingest_jobs(server)
