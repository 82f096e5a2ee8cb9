"""Bulk API 2.0 ingest: lifecycle, state machine, result CSVs, validation, upsert semantics."""

from __future__ import annotations

import gzip
import uuid

import pytest

from dc_to_core_tests.support import OrgClient, V, csv_text

ACC = ["External_Id__c", "Name"]
OPP = ["External_Id__c", "Name", "StageName", "CloseDate", "Amount", "Account.External_Id__c"]


def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def parents(org: OrgClient) -> list[str]:
    keys = [f"P-{tag()}-{i}" for i in range(3)]
    info = org.run_job("Account", csv_text(ACC, [[k, f"Parent {k}"] for k in keys]))
    assert info["state"] == "JobComplete" and info["numberRecordsFailed"] == 0
    return keys


def test_job_info_shapes_through_the_lifecycle(org):
    r = org.post(f"{V}/jobs/ingest", json={"object": "Account", "operation": "upsert",
                                           "externalIdFieldName": "External_Id__c"})
    assert r.status_code == 200
    job = r.json()
    assert job["id"].startswith("750") and len(job["id"]) == 18
    assert job["state"] == "Open" and job["concurrencyMode"] == "Parallel"
    assert job["contentUrl"] == f"services/data/v64.0/jobs/ingest/{job['id']}/batches"
    assert job["apiVersion"] == 64.0 and job["createdDate"].endswith("+0000")
    assert job["externalIdFieldName"] == "External_Id__c"
    assert org.upload(job["id"], csv_text(ACC, [[f"A-{tag()}", "One"]])).status_code == 201
    closed = org.close(job["id"]).json()
    assert closed["state"] == "UploadComplete" and "contentUrl" not in closed
    done = org.wait(job["id"])
    assert done["state"] == "JobComplete" and done["jobType"] == "V2Ingest"
    assert done["numberRecordsProcessed"] == 1 and done["numberRecordsFailed"] == 0
    for key in ("retries", "totalProcessingTime", "apiActiveProcessingTime",
                "apexProcessingTime"):
        assert isinstance(done[key], int)
    listed = org.get(f"{V}/jobs/ingest").json()
    assert job["id"] in {j["id"] for j in listed["records"]} and listed["done"] is True


def test_state_machine_errors(org):
    job = org.create_job("Account")
    assert org.close(job).status_code == 200
    again = org.close(job)
    assert again.status_code == 400 and again.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    late = org.upload(job, "External_Id__c,Name\nX,Y\n")
    assert late.status_code == 400 and late.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    org.wait(job)
    abort = org.http.patch(f"{V}/jobs/ingest/{job}", json={"state": "Aborted"})
    assert abort.status_code == 400 and abort.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    second = org.create_job("Account")
    assert org.upload(second, csv_text(ACC, [["x", "y"]])).status_code == 201
    twice = org.upload(second, csv_text(ACC, [["x", "y"]]))
    assert twice.status_code == 400 and twice.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    pending = org.get(f"{V}/jobs/ingest/{second}/successfulResults")
    assert pending.status_code == 400  # results only for finished jobs
    assert org.http.delete(f"{V}/jobs/ingest/{second}").status_code == 400  # still Open
    aborted = org.http.patch(f"{V}/jobs/ingest/{second}", json={"state": "Aborted"})
    assert aborted.status_code == 200 and aborted.json()["state"] == "Aborted"
    assert org.results(second, "unprocessedrecords") == [{"External_Id__c": "x", "Name": "y"}]
    assert org.http.delete(f"{V}/jobs/ingest/{second}").status_code == 204
    gone = org.get(f"{V}/jobs/ingest/{second}")
    assert gone.status_code == 404 and gone.json() == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]


def test_bad_job_definitions(org):
    cases = [{"object": "Nope__c", "operation": "insert"},
             {"object": "Account", "operation": "merge"},
             {"object": "Account", "operation": "upsert", "externalIdFieldName": "Name"},
             {"object": "Account", "operation": "upsert"}]
    for body in cases:
        r = org.post(f"{V}/jobs/ingest", json=body)
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALIDJOB", body


def test_results_csvs_their_columns_and_both_spellings(org, parents):
    good, bad = f"O-{tag()}", f"O-{tag()}"
    rows = [[good, "Fine", "Prospecting", "2025-03-01", "10.5", parents[0]],
            [bad, "", "Prospecting", "2025-03-01", "1", parents[0]]]
    job = org.submit("Opportunity", csv_text(OPP, rows))
    org.wait(job)
    r = org.get(f"{V}/jobs/ingest/{job}/successfulResults/")  # trailing slash accepted
    assert r.headers["content-type"] == "text/csv; charset=UTF-8"
    assert r.text.splitlines()[0] == ('"sf__Id","sf__Created","External_Id__c","Name",'
                                      '"StageName","CloseDate","Amount","Account.External_Id__c"')
    ok = org.results(job, "successfulResults")
    assert [(x["External_Id__c"], x["sf__Created"]) for x in ok] == [(good, "true")]
    assert ok[0]["sf__Id"].startswith("006") and len(ok[0]["sf__Id"]) == 18
    failed = org.results(job, "failedResults")
    assert failed[0]["sf__Id"] == "" and failed[0]["External_Id__c"] == bad
    assert failed[0]["sf__Error"] == ("REQUIRED_FIELD_MISSING:Required fields are missing: "
                                      "[Name]:Name --")
    for spelling in ("unprocessedrecords", "unprocessedRecords"):
        assert org.results(job, spelling) == []


def test_upsert_inserts_then_updates_and_na_clears_a_field(org, parents):
    key = f"O-{tag()}"
    first = org.submit("Opportunity", csv_text(OPP, [[key, "v1", "Prospecting", "2025-01-01",
                                                      "100", parents[0]]]))
    org.wait(first)
    second = org.submit("Opportunity", csv_text(OPP, [[key, "v2", "Closed Won", "2025-02-01",
                                                       "#N/A", parents[1]]]))
    org.wait(second)
    assert org.results(first, "successfulResults")[0]["sf__Created"] == "true"
    updated = org.results(second, "successfulResults")[0]
    assert updated["sf__Created"] == "false"
    assert updated["sf__Id"] == org.results(first, "successfulResults")[0]["sf__Id"]
    third = org.submit("Opportunity", csv_text(["External_Id__c", "Name", "StageName"],
                                               [[key, "", "Qualification"]]))  # '' = unchanged
    org.wait(third)
    rec = org.query("SELECT Name, StageName, Amount, Account.External_Id__c FROM Opportunity "
                    f"WHERE External_Id__c = '{key}'")["records"][0]
    assert (rec["Name"], rec["StageName"], rec["Amount"]) == ("v2", "Qualification", None)
    assert rec["Account"]["External_Id__c"] == parents[1]


def test_an_upsert_key_that_is_na_or_empty_is_missing_not_a_new_record(org, parents):
    """``#N/A`` is Bulk's null marker in every cell, the external id's too: the row has no
    key, and an upsert refuses it as Salesforce does (never an orphan record)."""
    text = f"NA-text-{tag()}"
    job = org.submit("Opportunity", csv_text(OPP, [
        ["#N/A", text, "Prospecting", "2025-01-01", "1", parents[0]],
        ["", text, "Prospecting", "2025-01-01", "1", parents[0]]]))
    org.wait(job)
    failed = org.results(job, "failedResults")
    assert [f["sf__Error"] for f in failed] == [
        "MISSING_ARGUMENT:External_Id__c not specified:--"] * 2
    assert org.query(f"SELECT Id FROM Opportunity WHERE Name = '{text}'")["totalSize"] == 0


@pytest.mark.parametrize(("row", "code"), [
    (["", "Prospecting", "2025-01-01", "1"], "REQUIRED_FIELD_MISSING"),
    (["x" * 121, "Prospecting", "2025-01-01", "1"], "STRING_TOO_LONG"),
    (["n", "Maybe", "2025-01-01", "1"], "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    (["n", "Prospecting", "2025-02-30", "1"], "INVALID_FIELD"),
    (["n", "Prospecting", "31/12/2025", "1"], "INVALID_FIELD"),
    (["n", "Prospecting", "1600-01-01", "1"], "FIELD_INTEGRITY_EXCEPTION"),
    (["n", "Prospecting", "2025-01-01", "ten"], "INVALID_FIELD"),
    (["n", "Prospecting", "2025-01-01", "1e20"], "NUMBER_OUTSIDE_VALID_RANGE"),
])
def test_validation_error_codes(org, parents, row, code):
    key = f"O-{tag()}"
    info = org.run_job("Opportunity", csv_text(OPP, [[key, *row, parents[0]]]))
    assert info["numberRecordsFailed"] == 1
    error = org.results(info["id"], "failedResults")[0]["sf__Error"]
    assert error.startswith(code + ":") and error.endswith("--")


def test_missing_parent_and_duplicate_external_ids(org, parents):
    dup, orphan, fine = f"O-{tag()}", f"O-{tag()}", f"O-{tag()}"
    base = ["n", "Prospecting", "2025-01-01", "1"]
    rows = [[dup, *base, parents[0]], [dup, *base, parents[1]],
            [orphan, *base, "NO-SUCH-PARENT"], [fine, *base, parents[2]]]
    info = org.run_job("Opportunity", csv_text(OPP, rows))
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (4, 3)
    errors = {r["External_Id__c"]: r["sf__Error"] for r in org.results(info["id"],
                                                                         "failedResults")}
    assert errors[dup].startswith("DUPLICATE_EXTERNAL_ID:Duplicate external id specified")
    assert errors[orphan].startswith("INVALID_CROSS_REFERENCE_KEY:Foreign key external ID: "
                                     "NO-SUCH-PARENT not found")


def test_unknown_column_fails_the_job_and_leaves_rows_unprocessed(org):
    info = org.run_job("Account", csv_text(["External_Id__c", "Name", "Bogus__c"],
                                           [[f"A-{tag()}", "n", "v"]]))
    assert info["state"] == "Failed"
    assert info["errorMessage"] == "InvalidBatch : Field name not found : Bogus__c"
    assert len(org.results(info["id"], "unprocessedrecords")) == 1


def test_gzip_upload_and_csv_hostile_text_round_trip(org, parents):
    key = f"O-{tag()}"
    name = 'He said "hi", then\nleft; =SUM(A1) ✓ 𝄞'
    data = csv_text(OPP, [[key, name, "Prospecting", "2025-01-01", "1", parents[0]]])
    job = org.create_job("Opportunity")
    assert org.upload(job, gzip.compress(data.encode()), **{"Content-Encoding": "gzip"}
                      ).status_code == 201
    org.close(job)
    assert org.wait(job)["numberRecordsFailed"] == 0
    assert org.results(job, "successfulResults")[0]["Name"] == name
    rec = org.query(f"SELECT Name FROM Opportunity WHERE External_Id__c = '{key}'")
    assert rec["records"][0]["Name"] == name


def test_insert_update_and_delete_operations(org):
    key = f"A-{tag()}"
    ins = org.run_job("Account", csv_text(ACC, [[key, "first"]]), operation="insert", ext=None)
    record_id = org.results(ins["id"], "successfulResults")[0]["sf__Id"]
    dup = org.run_job("Account", csv_text(ACC, [[key, "again"]]), operation="insert", ext=None)
    assert org.results(dup["id"], "failedResults")[0]["sf__Error"].startswith("DUPLICATE_VALUE")
    upd = org.run_job("Account", csv_text(["Id", "Name"], [[record_id, "renamed"]]),
                      operation="update", ext=None)
    assert upd["numberRecordsFailed"] == 0
    assert org.query(f"SELECT Name FROM Account WHERE Id = '{record_id}'")["records"][0][
        "Name"] == "renamed"
    gone = org.run_job("Account", csv_text(["Id"], [[record_id], ["0015f0000000zzzAAA"]]),
                       operation="delete", ext=None)
    assert (gone["numberRecordsProcessed"], gone["numberRecordsFailed"]) == (2, 1)
    assert org.query(f"SELECT COUNT() FROM Account WHERE Id = '{record_id}'")["totalSize"] == 0


def test_empty_job_completes_and_costs_one_batch(org):
    before = org.get(f"{V}/limits").json()["DailyBulkApiBatches"]["Remaining"]
    info = org.run_job("Account", "External_Id__c,Name\n")
    assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] == 0
    after = org.get(f"{V}/limits").json()["DailyBulkApiBatches"]["Remaining"]
    assert before - after == 1


def test_deletes_keep_the_recycle_bin_cascade_to_detail_records_and_hard_delete_purges(org):
    acc, opp = f"A-{tag()}", f"O-{tag()}"
    org.run_job("Account", csv_text(ACC, [[acc, "parent"]]))
    org.run_job("Opportunity", csv_text(OPP, [[opp, "child", "Prospecting", "2026-01-01", "1",
                                               acc]]))
    [parent] = org.query(f"SELECT Id FROM Account WHERE External_Id__c = '{acc}'")["records"]
    # a master-detail child (Opportunity.AccountId locks its parent) goes with its parent
    gone = org.run_job("Account", csv_text(["Id"], [[parent["Id"]]]), operation="delete",
                       ext=None)
    assert gone["numberRecordsFailed"] == 0
    assert org.query(f"SELECT COUNT() FROM Opportunity WHERE External_Id__c = '{opp}'"
                     )["totalSize"] == 0
    again = org.run_job("Account", csv_text(["Id"], [[parent["Id"]]]), operation="delete",
                        ext=None)
    [failed] = org.results(again["id"], "failedResults")
    assert failed["sf__Error"].startswith("ENTITY_IS_DELETED:entity is deleted")
    # a hard delete leaves nothing in the recycle bin: deleting again is an unknown Id
    other = f"A-{tag()}"
    created = org.run_job("Account", csv_text(ACC, [[other, "purged"]]))
    record_id = org.results(created["id"], "successfulResults")[0]["sf__Id"]
    org.run_job("Account", csv_text(["Id"], [[record_id]]), operation="hardDelete", ext=None)
    purged = org.run_job("Account", csv_text(["Id"], [[record_id]]), operation="delete",
                         ext=None)
    assert org.results(purged["id"], "failedResults")[0]["sf__Error"].startswith(
        "INVALID_CROSS_REFERENCE_KEY")
    # the key is free again: an upsert of a deleted record's key creates a new record
    back = org.run_job("Account", csv_text(ACC, [[acc, "back"]]))
    [row] = org.results(back["id"], "successfulResults")
    assert row["sf__Created"] == "true" and row["sf__Id"] != parent["Id"]
