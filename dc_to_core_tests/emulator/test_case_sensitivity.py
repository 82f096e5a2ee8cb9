"""External ids and text compare ignoring case unless the field is case-sensitive, as in
Salesforce: an upsert by ``opp-x`` updates ``OPP-X``, case-only twins in one job are
DUPLICATE_EXTERNAL_ID, parents are found by either case, and SOQL filters and sorts ignoring
case. A field declared ``case_sensitive`` keeps the cases apart."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from dc_to_core.emulator.profile import load_profile
from dc_to_core.emulator.schema import DEMO_SCHEMA, SchemaError, load_schema, parse_schema
from dc_to_core.emulator.server import EmulatorConfig, EmulatorServer
from dc_to_core.emulator.storage import Storage
from dc_to_core_tests.support import OrgClient, V, csv_text

ACC = ["External_Id__c", "Name"]
OPP = ["External_Id__c", "Name", "StageName", "CloseDate", "Account.External_Id__c"]


def tag() -> str:
    return uuid.uuid4().hex[:8].upper()


def test_an_upsert_matches_its_key_ignoring_case(org: OrgClient) -> None:
    key = f"OPP-X-{tag()}"
    parent = f"ACC-{tag()}"
    assert org.run_job("Account", csv_text(ACC, [[parent, "P"]]))["numberRecordsFailed"] == 0
    first = org.run_job("Opportunity", csv_text(OPP, [[key, "v1", "Prospecting", "2025-01-01",
                                                       parent]]))
    second = org.run_job("Opportunity", csv_text(OPP, [[key.lower(), "v2", "Prospecting",
                                                        "2025-01-01", parent.lower()]]))
    assert second["numberRecordsFailed"] == 0, org.results(second["id"], "failedResults")
    created = org.results(first["id"], "successfulResults")[0]
    updated = org.results(second["id"], "successfulResults")[0]
    assert (updated["sf__Created"], updated["sf__Id"]) == ("false", created["sf__Id"])
    records = org.query("SELECT Name, External_Id__c FROM Opportunity WHERE External_Id__c = "
                        f"'{key}'")["records"]
    assert [(r["Name"], r["External_Id__c"]) for r in records] == [("v2", key.lower())]


def test_case_only_twins_in_one_job_are_duplicate_external_ids(org: OrgClient) -> None:
    key = f"OPP-T-{tag()}"
    parent = f"ACC-{tag()}"
    org.run_job("Account", csv_text(ACC, [[parent, "P"]]))
    info = org.run_job("Opportunity", csv_text(OPP, [
        [key, "a", "Prospecting", "2025-01-01", parent],
        [key.lower(), "b", "Prospecting", "2025-01-01", parent]]))
    failed = org.results(info["id"], "failedResults")
    assert info["numberRecordsFailed"] == 2
    assert all(f["sf__Error"].startswith("DUPLICATE_EXTERNAL_ID:Duplicate external id "
                                         "specified") for f in failed)
    assert org.query(f"SELECT Id FROM Opportunity WHERE External_Id__c = '{key}'"
                     )["totalSize"] == 0


def test_soql_filters_and_orders_text_ignoring_case(org: OrgClient) -> None:
    t = tag()
    keys = [f"CI-{t}-b", f"CI-{t}-A", f"CI-{t}-C", f"CI-{t}-a0"]
    org.run_job("Account", csv_text(ACC, [[k, k] for k in keys]))
    got = org.query(f"SELECT External_Id__c FROM Account WHERE External_Id__c >= 'ci-{t}-a' "
                    f"AND External_Id__c < 'CI-{t}-C' ORDER BY External_Id__c")["records"]
    assert [r["External_Id__c"] for r in got] == [f"CI-{t}-A", f"CI-{t}-a0", f"CI-{t}-b"]
    fields = {f["name"]: f for f in org.get(f"{V}/sobjects/Account/describe").json()["fields"]}
    assert fields["External_Id__c"]["caseSensitive"] is False
    assert fields["Name"]["caseSensitive"] is False


def test_a_case_sensitive_external_id_keeps_the_cases_apart(tmp_path: Path) -> None:
    doc = yaml.safe_load(DEMO_SCHEMA.read_text())
    doc["core"]["Account"]["fields"]["External_Id__c"]["case_sensitive"] = True
    schema = tmp_path / "org.yaml"
    schema.write_text(yaml.safe_dump(doc))
    server = EmulatorServer(EmulatorConfig(tmp_path / "org", schema_path=schema,
                                           profile=load_profile("fast"))).start()
    try:
        org = OrgClient(server)
        info = org.run_job("Account", csv_text(ACC, [["ACC-CS", "upper"], ["acc-cs", "lower"]]))
        assert info["numberRecordsFailed"] == 0
        got = org.query("SELECT Name FROM Account WHERE External_Id__c = 'acc-cs'")["records"]
        assert [r["Name"] for r in got] == ["lower"]
        fields = {f["name"]: f for f in org.get(f"{V}/sobjects/Account/describe").json()[
            "fields"]}
        assert fields["External_Id__c"]["caseSensitive"] is True
        org.http.close()
    finally:
        server.stop()


def test_na_is_no_key_but_other_cases_of_it_are_keys(org: OrgClient) -> None:
    """Only ``#N/A`` is Bulk's null marker: two rows keyed ``#n/a`` share a key (it folds to
    itself), and a ``#N/A`` row beside them is still a row without one."""
    parent = f"ACC-{tag()}"
    org.run_job("Account", csv_text(ACC, [[parent, "P"]]))
    info = org.run_job("Opportunity", csv_text(OPP, [
        ["#n/a", "a", "Prospecting", "2025-01-01", parent],
        ["#N/a", "b", "Prospecting", "2025-01-01", parent],
        ["#N/A", "c", "Prospecting", "2025-01-01", parent]]))
    errors = sorted(f["sf__Error"].split(":")[0] for f in org.results(info["id"],
                                                                     "failedResults"))
    assert errors == ["DUPLICATE_EXTERNAL_ID", "DUPLICATE_EXTERNAL_ID", "MISSING_ARGUMENT"]


def test_a_data_dir_of_a_case_sensitive_schema_is_rebuilt_ignoring_case(tmp_path: Path) -> None:
    doc = yaml.safe_load(DEMO_SCHEMA.read_text())
    doc["core"]["Account"]["fields"]["External_Id__c"]["case_sensitive"] = True
    sensitive = parse_schema(doc)
    old = Storage(tmp_path / "a", sensitive)
    old.core.execute("INSERT INTO Account (Id, Name, External_Id__c) VALUES "
                     "('001A', 'one', 'ACC-1'), ('001B', 'two', 'ACC-2')")
    old.close()
    new = Storage(tmp_path / "a", load_schema())
    rows = new.core.execute("SELECT Name FROM Account WHERE External_Id__c = 'acc-1'").fetchall()
    assert rows == [("one",)]
    new.close()
    twins = Storage(tmp_path / "b", sensitive)
    twins.core.execute("INSERT INTO Account (Id, Name, External_Id__c) VALUES "
                       "('001A', 'one', 'ACC-1'), ('001B', 'two', 'acc-1')")
    twins.close()
    with pytest.raises(SchemaError, match="differ only in case"):
        Storage(tmp_path / "b", load_schema())
