"""REST query over HTTP: paging with nextRecordsUrl, records shape, limits and describe."""

from __future__ import annotations

import uuid

from dc_to_core_tests.support import OrgClient, V, csv_text


def test_query_pages_with_next_records_url(make_server):
    server = make_server(rest_page_rows=7)
    org = OrgClient(server)
    keys = [f"K{i:03d}" for i in range(20)]
    org.run_job("Account", csv_text(["External_Id__c", "Name"], [[k, f"n{k}"] for k in keys]))
    soql = ("SELECT Id, External_Id__c, Name FROM Account WHERE External_Id__c >= 'K005' "
            "ORDER BY External_Id__c")
    page = org.query(soql)
    assert page["totalSize"] == 15 and page["done"] is False and len(page["records"]) == 7
    got = list(page["records"])
    while not page["done"]:
        assert page["nextRecordsUrl"].startswith("/services/data/v64.0/query/01g")
        page = org.get(page["nextRecordsUrl"]).json()
        got += page["records"]
    assert [r["External_Id__c"] for r in got] == keys[5:]
    first = got[0]
    assert first["attributes"] == {"type": "Account",
                                   "url": f"/services/data/v64.0/sobjects/Account/{first['Id']}"}
    assert org.query("SELECT COUNT() FROM Account WHERE External_Id__c IN ('K001','K002','X')"
                     ) == {"totalSize": 2, "done": True, "records": []}


def test_malformed_query_is_a_400(org):
    r = org.get(f"{V}/query", params={"q": "SELECT Id FROM Account WHERE"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "MALFORMED_QUERY"
    r = org.get(f"{V}/query/", params={"q": "SELECT Nope FROM Account"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_FIELD"
    assert org.get(f"{V}/query/01gBOGUS-2000").status_code == 400


def test_limits_count_api_requests_and_batches(make_server):
    server = make_server(chunk_rows=5)
    org = OrgClient(server)
    before = org.get(f"{V}/limits").json()
    assert before["DailyApiRequests"]["Max"] == server.org.profile.daily_api_requests
    rows = [[f"L{uuid.uuid4().hex[:6]}", "n"] for _ in range(12)]
    org.run_job("Account", csv_text(["External_Id__c", "Name"], rows))
    after = org.get(f"{V}/limits").json()
    assert before["DailyBulkApiBatches"]["Remaining"] - after["DailyBulkApiBatches"][
        "Remaining"] == 3  # ceil(12 / 5) chunks
    used = before["DailyApiRequests"]["Remaining"] - after["DailyApiRequests"]["Remaining"]
    assert used >= 5  # limits, create, upload, close, polls..., limits


def test_request_limit_exceeded_when_the_allocation_is_used(make_server):
    server = make_server(daily_api_requests=3)
    org = OrgClient(server)
    codes = [org.get(f"{V}/limits").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 403, 403]
    r = org.get(f"{V}/limits")
    assert r.json() == [{"message": "TotalRequests Limit exceeded.",
                         "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


def test_batch_allocation_exhausted_fails_the_job(make_server):
    server = make_server(daily_bulk_batches=1, chunk_rows=2)
    org = OrgClient(server)
    info = org.run_job("Account", csv_text(["External_Id__c", "Name"],
                                           [[f"B{i}", "n"] for i in range(5)]))
    assert info["state"] == "Failed" and info["errorMessage"].startswith("ExceededQuota")
    assert info["numberRecordsProcessed"] == 2
    assert len(org.results(info["id"], "unprocessedrecords")) == 3


def test_describe(org):
    d = org.get(f"{V}/sobjects/Opportunity/describe").json()
    fields = {f["name"]: f for f in d["fields"]}
    assert d["keyPrefix"] == "006" and fields["External_Id__c"]["externalId"] is True
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["StageName"]["restrictedPicklist"] is True
    assert org.get(f"{V}/sobjects/Nope__c/describe").status_code == 404
    shape = {"name", "type", "length", "precision", "scale", "nillable", "createable",
             "updateable", "externalId", "idLookup", "defaultedOnCreate", "picklistValues",
             "restrictedPicklist", "referenceTo", "relationshipName", "caseSensitive"}
    assert all(shape <= set(f) for f in d["fields"])
    assert fields["Id"]["idLookup"] and not fields["Id"]["createable"]
    assert fields["Id"]["defaultedOnCreate"] and fields["External_Id__c"]["idLookup"]
    assert fields["Name"]["nillable"] is False and fields["Amount"]["precision"] == 18
    assert fields["AccountId"]["relationshipName"] == "Account"
    account = org.get(f"{V}/sobjects/Account/describe").json()
    assert {"childSObject": "Opportunity", "field": "AccountId", "relationshipName": None,
            "cascadeDelete": True, "restrictedDelete": False} in account["childRelationships"]


def test_rest_responses_carry_the_api_usage_header(org):
    first = org.get(f"{V}/limits")
    used, _, most = first.headers["sforce-limit-info"].removeprefix("api-usage=").partition("/")
    assert int(most) == first.json()["DailyApiRequests"]["Max"]
    second = org.get(f"{V}/limits")
    assert second.headers["sforce-limit-info"] == f"api-usage={int(used) + 1}/{most}"


def test_a_read_only_field_fails_the_rows_that_write_it(make_server, tmp_path):
    schema = tmp_path / "org.yaml"
    schema.write_text("""
core:
  Thing__c:
    key_prefix: a01
    fields:
      External_Id__c: {type: string, length: 20, external_id: true}
      Created_Only__c: {type: string, length: 20, updateable: false}
      Formula__c: {type: string, length: 20, createable: false, updateable: false}
""")
    org = OrgClient(make_server(schema_path=schema))
    info = org.run_job("Thing__c", csv_text(["External_Id__c", "Created_Only__c"],
                                            [["T1", "a"], ["T2", "b"]]))
    assert info["numberRecordsFailed"] == 0
    again = org.run_job("Thing__c", csv_text(["External_Id__c", "Created_Only__c", "Formula__c"],
                                             [["T1", "changed", ""], ["T3", "c", "x"]]))
    failed = {r["External_Id__c"]: r["sf__Error"] for r in org.results(again["id"],
                                                                      "failedResults")}
    assert failed["T1"].startswith("INVALID_FIELD_FOR_INSERT_UPDATE:Unable to create/update "
                                   "fields: Created_Only__c.")
    assert failed["T3"].startswith("INVALID_FIELD_FOR_INSERT_UPDATE:Unable to create/update "
                                   "fields: Formula__c.")


def test_a_required_lookup_given_by_its_relationship_column_is_not_missing(make_server,
                                                                          tmp_path):
    schema = tmp_path / "org.yaml"
    schema.write_text("""
core:
  Parent__c:
    key_prefix: a02
    fields:
      External_Id__c: {type: string, length: 20, external_id: true}
  Child__c:
    key_prefix: a03
    fields:
      External_Id__c: {type: string, length: 20, external_id: true}
      Status__c: {type: string, length: 20, required: true, defaulted_on_create: true}
      Parent__c: {type: reference, to: Parent__c, relationship: Parent__r, required: true}
""")
    org = OrgClient(make_server(schema_path=schema))
    org.run_job("Parent__c", csv_text(["External_Id__c"], [["P1"]]))
    info = org.run_job("Child__c", csv_text(["External_Id__c", "Status__c",
                                             "Parent__r.External_Id__c"],
                                            [["C1", "", "P1"]]))
    assert info["numberRecordsFailed"] == 0, org.results(info["id"], "failedResults")
