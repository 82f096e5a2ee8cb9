"""Bulk API 2.0 query over HTTP: job states, CSV pages by Sforce-Locator, errors, limits."""

from __future__ import annotations

import time

from dc_to_core_tests.support import OrgClient, V, csv_text, parse_csv

QUERY = f"{V}/jobs/query"


def _complete(org: OrgClient, job_id: str) -> dict:
    for _ in range(500):
        info = org.get(f"{QUERY}/{job_id}").json()
        if info["state"] != "InProgress":
            return info
        time.sleep(0.02)
    raise AssertionError("the query job never completed")


def test_query_job_pages_csv_by_locator(make_server):
    org = OrgClient(make_server())
    keys = [f"Q{i:03d}" for i in range(25)]
    org.run_job("Account", csv_text(["External_Id__c", "Name", "Industry", "AnnualRevenue"],
                                    [[k, f"n {k}", "" if i % 5 == 0 else "Energy", i * 1.5]
                                     for i, k in enumerate(keys)]))
    org.run_job("Opportunity", csv_text(
        ["External_Id__c", "Name", "StageName", "CloseDate", "Account.External_Id__c"],
        [["O1", "o", "Prospecting", "2024-01-02", "Q003"]]))
    r = org.post(QUERY, json={"operation": "query", "query":
                              "SELECT External_Id__c, Industry, AnnualRevenue FROM Account "
                              "WHERE External_Id__c >= 'Q010' ORDER BY External_Id__c"})
    assert r.status_code == 200 and r.json()["state"] in ("UploadComplete", "InProgress",
                                                          "JobComplete")
    info = _complete(org, r.json()["id"])
    assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] == 15
    assert info["jobType"] == "V2Query"
    got, locator, pages = [], None, 0
    while locator != "null":
        params = {"maxRecords": 6} | ({"locator": locator} if locator else {})
        page = org.get(f"{QUERY}/{info['id']}/results", params=params)
        assert page.headers["content-type"].startswith("text/csv")
        got += parse_csv(page.text)
        assert int(page.headers["Sforce-NumberOfRecords"]) == len(parse_csv(page.text))
        locator, pages = page.headers["Sforce-Locator"], pages + 1
    assert pages == 3 and [g["External_Id__c"] for g in got] == keys[10:]
    assert got[0] == {"External_Id__c": "Q010", "Industry": "", "AnnualRevenue": "15.0"}
    assert got[1]["Industry"] == "Energy"
    child = org.post(QUERY, json={"query": "SELECT External_Id__c, Account.External_Id__c "
                                           "FROM Opportunity"}).json()
    _complete(org, child["id"])
    assert parse_csv(org.get(f"{QUERY}/{child['id']}/results").text) == [
        {"External_Id__c": "O1", "Account.External_Id__c": "Q003"}]


def test_query_job_errors_are_the_real_ones(org):
    bad = org.post(QUERY, json={"operation": "query", "query": "SELECT Nope FROM Account"})
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_FIELD"
    count = org.post(QUERY, json={"query": "SELECT COUNT() FROM Account"})
    assert count.status_code == 400 and "Aggregate" in count.json()[0]["message"]
    assert org.post(QUERY, json={"operation": "upsert", "query": "SELECT Id FROM Account"}
                    ).status_code == 400
    assert org.get(f"{QUERY}/750BOGUS").status_code == 404
    job = org.post(QUERY, json={"query": "SELECT Id FROM Account"}).json()
    _complete(org, job["id"])
    r = org.get(f"{QUERY}/{job['id']}/results", params={"locator": "not-base36!"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALIDLOCATOR"
    assert org.http.delete(f"{QUERY}/{job['id']}").status_code == 204
    assert org.get(f"{QUERY}/{job['id']}").status_code == 404


def test_query_jobs_count_against_their_allocation(make_server):
    org = OrgClient(make_server())
    before = org.get(f"{V}/limits").json()["DailyBulkV2QueryJobs"]["Remaining"]
    org.post(QUERY, json={"query": "SELECT Id FROM Account"})
    assert org.get(f"{V}/limits").json()["DailyBulkV2QueryJobs"]["Remaining"] == before - 1


def test_query_results_are_gzipped_for_clients_that_accept_it(make_server):
    org = OrgClient(make_server())
    org.run_job("Account", csv_text(["External_Id__c", "Name"],
                                    [[f"Z{i:04d}", f"Account {i}"] for i in range(500)]))
    job = org.post(QUERY, json={"operation": "query", "query":
                                "SELECT External_Id__c, Name FROM Account"}).json()
    _complete(org, job["id"])
    url = f"{QUERY}/{job['id']}/results"
    plain = org.get(url, headers={"Accept-Encoding": "identity"})
    packed = org.get(url, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["Sforce-NumberOfRecords"] == "500"
    assert packed.text == plain.text and len(parse_csv(packed.text)) == 500
