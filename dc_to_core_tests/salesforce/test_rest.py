"""RestApi against the emulator: SOQL into Arrow with paging, range counts (quotes in
keys), limits and describe."""

from __future__ import annotations

import uuid

from dc_to_core.salesforce.rest import RestApi, soql_range
from dc_to_core_tests.support import OrgClient, auth_for, csv_text


def test_query_pages_and_flattens_relationships(make_server):
    server = make_server(rest_page_rows=3)
    org = OrgClient(server)
    org.run_job("Account", csv_text(["External_Id__c", "Name"], [["P1", "Parent"]]))
    rows = [[f"O{i}", f"n{i}", "Prospecting", "2025-01-01", str(i), "P1"] for i in range(8)]
    org.run_job("Opportunity", csv_text(["External_Id__c", "Name", "StageName", "CloseDate",
                                         "Amount", "Account.External_Id__c"], rows))
    core = RestApi(auth=auth_for(server))
    table = core.read_range("Opportunity", ["External_Id__c", "Amount", "Account.External_Id__c"],
                            "External_Id__c", "O2", None)
    assert table.column_names == ["External_Id__c", "Amount", "Account.External_Id__c"]
    assert table.column("External_Id__c").to_pylist() == [f"O{i}" for i in range(2, 8)]
    assert set(table.column("Account.External_Id__c").to_pylist()) == {"P1"}
    assert core.count_range("Opportunity", "External_Id__c", None, "O5") == 5
    assert core.limits()["DailyApiRequests"]["Max"] > 0
    fields = {f["name"] for f in core.describe("Opportunity")["fields"]}
    assert {"StageName", "AccountId", "External_Id__c"} <= fields


def test_quotes_and_backslashes_in_keys(shared_server):
    org = OrgClient(shared_server)
    tag = uuid.uuid4().hex[:6]
    keys = [f"{tag}a'b", f"{tag}a\\c", f"{tag}b' OR Name != '"]
    org.run_job("Account", csv_text(["External_Id__c", "Name"], [[k, "n"] for k in keys]))
    core = RestApi(auth=auth_for(shared_server))
    assert core.count_range("Account", "External_Id__c", f"{tag}a'b", f"{tag}b") == 2
    got = core.read_range("Account", ["External_Id__c"], "External_Id__c", keys[2], f"{tag}z")
    assert got.column("External_Id__c").to_pylist() == [keys[2]]


def test_soql_range_shapes():
    assert soql_range("K", "a", "b") == "K >= 'a' AND K < 'b'"
    assert soql_range("K", None, "b") == "(K = null OR (K < 'b'))"
    assert soql_range("K", "a", None) == "K >= 'a'"
    assert soql_range("K", None, None) == ""
