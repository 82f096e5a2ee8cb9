"""Data Cloud queries: tenant Query API v2 and Connect ssot/query-sql over the same tables."""

from __future__ import annotations

import base64

import httpx
import pyarrow as pa
import pytest

from dc_to_core_tests.support import OrgClient, V, tls

OPP = '"Opportunity_Staging__dlm"'


@pytest.fixture
def dc(shared_server, org: OrgClient) -> httpx.Client:
    """A client on the tenant host with a Data Cloud token."""
    r = org.post("/services/a360/token", data={
        "grant_type": "urn:salesforce:grant-type:external:cdp", "subject_token": org.token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"})
    body = r.json()
    scheme = shared_server.url.split("://")[0]
    return httpx.Client(base_url=f"{scheme}://{body['instance_url']}", verify=tls(shared_server),
                        headers={"Authorization": f"Bearer {body['access_token']}"})


def test_v2_pages_past_the_batch_cap_with_next_batch_ids(dc):
    sql = f'SELECT "ExternalId__c", "Amount__c", "CloseDate__c" FROM {OPP} ORDER BY "ExternalId__c"'
    first = dc.post("/api/v2/query", json={"sql": sql}).json()
    assert first["done"] is False and first["rowCount"] == 3000
    assert len(first["data"]) == 700  # the shared server's cap
    meta = first["metadata"]
    assert meta["ExternalId__c"] == {"type": "VARCHAR", "placeInOrder": 0, "typeCode": 12}
    assert meta["Amount__c"]["type"] == "DECIMAL" and meta["CloseDate__c"]["type"] == "DATE"
    rows, page = list(first["data"]), first
    while not page["done"]:
        page = dc.get(f"/api/v2/query/{page['nextBatchId']}").json()
        rows += page["data"]
    assert len(rows) == 3000
    keys = [r[0] for r in rows if r[0] is not None]
    assert keys == sorted(keys)
    amount = next(r[1] for r in rows if r[1] is not None)
    assert isinstance(amount, str) and len(amount.split(".")[1]) == 2  # DECIMAL(18,2) as text
    assert dc.get(f"/api/v2/query/{first['nextBatchId']}").status_code == 404  # read once


def test_v2_errors_are_objects_with_a_message(dc):
    bad = dc.post("/api/v2/query", json={"sql": f"SELECT nope FROM {OPP}"})
    assert bad.status_code == 400 and "nope" in bad.json()["message"]
    unknown = dc.post("/api/v2/query", json={"sql": f'SELECT "Nope__c" FROM {OPP}'})
    assert unknown.status_code == 400 and "Nope__c" in unknown.json()["message"]
    write = dc.post("/api/v2/query", json={"sql": f"DELETE FROM {OPP}"})
    assert write.status_code == 400
    smuggled = dc.post("/api/v2/query", json={"sql": f"SELECT 1; DELETE FROM {OPP}"})
    assert smuggled.status_code == 400
    count = dc.post("/api/v2/query", json={"sql": f"SELECT count(*) AS n FROM {OPP}"}).json()
    assert count["data"] == [[3000]] and count["metadata"]["n"]["type"] == "BIGINT"


def test_a_quote_in_a_literal_is_data_not_sql(dc):
    sql = f"SELECT count(*) AS n FROM {OPP} WHERE \"ExternalId__c\" > 'x'' OR ''1''=''1'"
    r = dc.post("/api/v2/query", json={"sql": sql})
    assert r.status_code == 200 and r.json()["data"] == [[0]]


def test_v2_arrow_stream(dc):
    sql = (f'SELECT "ExternalId__c", "Amount__c", "CloseDate__c", "LastModifiedDate__c" '
           f'FROM {OPP} ORDER BY "ExternalId__c" LIMIT 5')
    body = dc.post("/api/v2/query", json={"sql": sql}, headers={"enable-arrow-stream": "true"})
    table = pa.ipc.open_stream(base64.b64decode(body.json()["arrowStream"])).read_all()
    assert table.num_rows == 5
    assert table.schema.field("Amount__c").type == pa.decimal128(18, 2)
    assert table.schema.field("CloseDate__c").type == pa.date32()
    assert table.schema.field("LastModifiedDate__c").type == pa.timestamp("ms", "UTC")


def test_v1_metadata_lists_objects_with_fields(dc):
    entities = dc.get("/api/v1/metadata").json()["metadata"]
    opp = next(e for e in entities if e["name"] == "Opportunity_Staging__dlm")
    assert {"name": "CloseDate__c", "displayName": "CloseDate", "type": "DATE"} in opp["fields"]
    assert opp["primaryKeys"][0]["name"] == "ExternalId__c"


def test_query_sql_submit_then_rows_by_offset(org):
    sql = f'SELECT "ExternalId__c", "Probability__c" FROM {OPP} ORDER BY "ExternalId__c"'
    first = org.dc_sql(sql)
    assert first["status"]["completionStatus"] == "Finished"
    assert first["completionStatus"] == "Finished"  # status fields also at the top level
    assert first["status"]["rowCount"] == 3000 and first["returnedRows"] == 900
    assert first["metadata"][1] == {"name": "Probability__c", "type": "Numeric",
                                    "nullable": True, "precision": 3, "scale": 0}
    qid = first["status"]["queryId"]
    rows = list(first["data"])
    while len(rows) < 3000:
        page = org.get(f"{V}/ssot/query-sql/{qid}/rows",
                       params={"offset": len(rows), "rowLimit": 500, "omitSchema": "true"}).json()
        assert "metadata" not in page and page["returnedRows"] == len(page["data"]) <= 500
        rows += page["data"]
    assert [r[0] for r in rows] == [r[0] for r in sorted(rows, key=lambda r: (r[0] is not None,
                                                                              r[0]))]
    assert org.http.delete(f"{V}/ssot/query-sql/{qid}").status_code == 204
    assert org.get(f"{V}/ssot/query-sql/{qid}").status_code == 404


def test_query_sql_parameters_bind_values(org):
    body = {"sql": f'SELECT count(*) AS n FROM {OPP} WHERE "ExternalId__c" < :hi',
            "sqlParameters": [{"name": "hi", "value": "OPP-000000100", "type": "Varchar"}]}
    r = org.post(f"{V}/ssot/query-sql", json=body)
    literal = org.dc_sql(f"SELECT count(*) AS n FROM {OPP} WHERE \"ExternalId__c\" < "
                         "'OPP-000000100'")["data"]
    assert r.status_code == 200 and r.json()["data"] == literal and 90 < literal[0][0] <= 100


def test_query_sql_long_poll_when_results_are_slow(make_server):
    server = make_server(dc_query_latency_ms=60_000.0, dc_sync_wait_ms=100.0, time_scale=200.0)
    org = OrgClient(server)
    first = org.dc_sql('SELECT 1 AS one')
    assert first["status"]["completionStatus"] == "Running" and first["data"] == []
    qid = first["status"]["queryId"]
    assert org.get(f"{V}/ssot/query-sql/{qid}/rows").status_code == 400  # not ready yet
    status = org.get(f"{V}/ssot/query-sql/{qid}", params={"waitTimeMs": 10000}).json()
    assert status["status"]["completionStatus"] == "Finished"
    assert org.get(f"{V}/ssot/query-sql/{qid}/rows").json()["data"] == [[1]]


def test_responses_are_gzipped_for_clients_that_accept_it(org):
    sql = f'SELECT "ExternalId__c", "Name__c" FROM {OPP} ORDER BY "ExternalId__c"'
    plain = org.post(f"{V}/ssot/query-sql", json={"sql": sql},
                     headers={"Accept-Encoding": "identity"})
    packed = org.post(f"{V}/ssot/query-sql", json={"sql": sql},
                      headers={"Accept-Encoding": "gzip, deflate"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert int(packed.headers["content-length"]) < len(plain.content) / 3
    assert packed.json()["data"] == plain.json()["data"]
    small = org.post(f"{V}/ssot/query-sql", json={"sql": f"SELECT count(*) AS n FROM {OPP}"},
                     headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # not worth it
