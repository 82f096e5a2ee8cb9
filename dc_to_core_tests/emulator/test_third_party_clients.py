"""Unmodified third-party clients against the emulator over HTTPS: simple-salesforce (REST and
bulk2) and salesforce-cdp-connector (client credentials, cursor paging, pandas/Arrow)."""

from __future__ import annotations

import warnings

import pytest
import requests

from dc_to_core.emulator.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from dc_to_core_tests.support import csv_text

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from salesforcecdpconnector.connection import SalesforceCDPConnection
from simple_salesforce import Salesforce


@pytest.fixture
def trust_emulator(shared_server, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(shared_server.ca_file))


@pytest.fixture
def sf(shared_server, trust_emulator) -> Salesforce:
    token = requests.post(shared_server.url + "/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET}, timeout=30).json()["access_token"]
    return Salesforce(instance_url=shared_server.url, session_id=token)


def test_simple_salesforce_bulk2_upsert_and_results(sf, tmp_path):
    accounts = [{"External_Id__c": f"SS-A{i}", "Name": f"SS account {i}"} for i in range(5)]
    res = sf.bulk2.Account.upsert(records=accounts, external_id_field="External_Id__c", wait=0.1)
    assert res[0]["numberRecordsProcessed"] == 5 and res[0]["numberRecordsFailed"] == 0
    path = tmp_path / "opps.csv"
    path.write_text(csv_text(
        ["External_Id__c", "Name", "StageName", "CloseDate", "Account.External_Id__c"],
        [[f"SS-O{i}", f"SS opp {i}", "Prospecting", "2025-06-30", f"SS-A{i % 5}"]
         for i in range(30)] + [["SS-BAD", "bad", "Nope", "2025-06-30", "SS-A0"]]))
    res = sf.bulk2.Opportunity.upsert(csv_file=str(path), external_id_field="External_Id__c",
                                      wait=0.1)
    job = res[0]
    assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (31, 1)
    ok = sf.bulk2.Opportunity.get_successful_records(job["job_id"])
    failed = sf.bulk2.Opportunity.get_failed_records(job["job_id"])
    unprocessed = sf.bulk2.Opportunity.get_unprocessed_records(job["job_id"])
    assert len(ok.splitlines()) == 31 and ok.startswith('"sf__Id","sf__Created"')
    assert "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in failed
    assert unprocessed.strip() == ('"External_Id__c","Name","StageName","CloseDate",'
                                   '"Account.External_Id__c"')
    assert sf.query("SELECT COUNT() FROM Opportunity WHERE External_Id__c LIKE 'SS-O%'"
                    )["totalSize"] == 30
    rows = sf.query_all("SELECT Id, External_Id__c, Account.External_Id__c FROM Opportunity "
                        "WHERE External_Id__c LIKE 'SS-O%' ORDER BY External_Id__c")
    assert rows["totalSize"] == 30 and rows["records"][0]["Account"]["External_Id__c"] == "SS-A0"
    assert sf.limits()["DailyBulkApiBatches"]["Remaining"] < 15_000


def test_simple_salesforce_query_all_follows_next_records_url(sf, shared_server):
    sf.bulk2.Account.upsert(records=[{"External_Id__c": f"QA-{i:04d}", "Name": "q"}
                                     for i in range(2_500)],
                            external_id_field="External_Id__c", wait=0.1)
    rows = sf.query_all("SELECT External_Id__c FROM Account WHERE External_Id__c LIKE 'QA-%'")
    assert rows["totalSize"] == 2_500 and len(rows["records"]) == 2_500  # > 2,000 per page


def test_cdp_connector_cursor_pages_past_the_row_cap(shared_server, trust_emulator):
    conn = SalesforceCDPConnection(shared_server.url, client_id=DEFAULT_CLIENT_ID,
                                   client_secret=DEFAULT_CLIENT_SECRET)
    cur = conn.cursor()
    cur.execute('SELECT "ExternalId__c", "Amount__c", "LastModifiedDate__c" '
                'FROM "Opportunity_Staging__dlm" ORDER BY "ExternalId__c"')
    first = cur.fetchmany(10)
    rest = cur.fetchall()
    assert len(first) + len(rest) == 3000  # three v2 batches of at most 700
    assert [d[:2] for d in cur.description] == [
        ("ExternalId__c", "VARCHAR"), ("Amount__c", "DECIMAL"), ("LastModifiedDate__c",
                                                                 "TIMESTAMP")]
    amount = next(r[1] for r in first if r[1] is not None)
    assert isinstance(amount, float)
    assert first[0][2].year == 2026


def test_cdp_connector_pandas_and_metadata(shared_server, trust_emulator):
    conn = SalesforceCDPConnection(shared_server.url, client_id=DEFAULT_CLIENT_ID,
                                   client_secret=DEFAULT_CLIENT_SECRET)
    df = conn.get_pandas_dataframe('SELECT "ExternalId__c", "CloseDate__c" '
                                   'FROM "Opportunity_Staging__dlm"')
    assert df.shape == (3000, 2)
    tables = {t.name for t in conn.list_tables()}
    assert {"Account_Staging__dlm", "Opportunity_Staging__dlm"} <= tables


def test_simple_salesforce_bulk2_query_pages_by_locator(sf, shared_server):
    sf.bulk2.Account.upsert(records=[{"External_Id__c": f"BQ-{i:04d}", "Name": f"n,\"{i}\""}
                                     for i in range(1_200)],
                            external_id_field="External_Id__c", wait=0.1)
    pages = list(sf.bulk2.Account.query(
        "SELECT External_Id__c, Name FROM Account WHERE External_Id__c LIKE 'BQ-%' "
        "ORDER BY External_Id__c", max_records=500, wait=0.1))
    assert len(pages) == 3  # 500 + 500 + 200, followed by Sforce-Locator
    rows = [line for page in pages for line in page.splitlines()[1:]]
    assert len(rows) == 1_200 and rows[0] == '"BQ-0000","n,""0"""'
