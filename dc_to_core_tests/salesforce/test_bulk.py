"""BulkApi against the emulator: lifecycle, per-row outcomes for any mix of rows,
CSV round trips, job splitting, token expiry and transport faults."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dc_to_core.salesforce.bulk import BulkApi, jobs_line
from dc_to_core.salesforce.errors import SalesforceApiError
from dc_to_core.salesforce.rest import RestApi
from dc_to_core.salesforce.throttle import Progress, Throttle
from dc_to_core_tests.support import OrgClient, auth_for, csv_text

ACC = "External_Id__c"


def bulk_for(server, **kw) -> BulkApi:
    return BulkApi(auth=auth_for(server), poll_initial_s=0.02, poll_max_s=0.2, **kw)


def accounts(prefix: str, n: int, **extra: list) -> pa.Table:
    return pa.table({ACC: [f"{prefix}-{i:05d}" for i in range(n)],
                     "Name": [f"Account {i}" for i in range(n)], **extra})


def test_upsert_lifecycle_insert_then_update(shared_server):
    bulk = bulk_for(shared_server)
    table = accounts(f"LC{uuid.uuid4().hex[:6]}", 25)
    first = bulk.upsert("Account", ACC, table)
    assert (first.loaded, first.created, first.failed, first.unprocessed) == (25, 25, 0, 0)
    assert first.rows.num_rows == 25 and first.batches == 1
    assert all(i.startswith("001") for i in first.rows.column("sf_id").to_pylist())
    second = bulk.upsert("Account", ACC, table)
    assert (second.loaded, second.created) == (25, 0)
    assert second.rows.column("sf_id").to_pylist() == first.rows.column("sf_id").to_pylist()
    job = second.jobs[0]
    assert job["state"] == "JobComplete" and job["numberRecordsProcessed"] == 25
    assert any(j["id"] == job["id"] for j in bulk.list_jobs())
    bulk.delete(job["id"])
    with pytest.raises(SalesforceApiError) as err:
        bulk.get_job(job["id"])
    assert err.value.status == 404 and err.value.error_code == "NOT_FOUND"


KINDS = {
    "good": ("Prospecting", "2025-01-01", None),
    "no_name": ("Prospecting", "2025-01-01", "REQUIRED_FIELD_MISSING"),
    "bad_stage": ("Nope", "2025-01-01", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    "bad_date": ("Prospecting", "1600-01-01", "FIELD_INTEGRITY_EXCEPTION"),
    "orphan": ("Prospecting", "2025-01-01", "INVALID_CROSS_REFERENCE_KEY"),
    "dup": ("Prospecting", "2025-01-01", "DUPLICATE_EXTERNAL_ID"),
    "blank": ("Prospecting", "2025-01-01", "MISSING_ARGUMENT"),  # no key: refused, no orphan
}


@pytest.fixture(scope="module")
def parent_key(shared_server) -> str:
    key = f"PAR-{uuid.uuid4().hex[:6]}"
    OrgClient(shared_server).run_job("Account", csv_text([ACC, "Name"], [[key, "Parent"]]))
    return key


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=30))
def test_every_row_gets_exactly_one_outcome(shared_server, parent_key, kinds):
    tag = uuid.uuid4().hex[:8]
    keys, names, stages, dates, parents = [], [], [], [], []
    for i, kind in enumerate(kinds):
        stage, date, _ = KINDS[kind]
        keys.append(None if kind == "blank" else f"{tag}-dup" if kind == "dup" else f"{tag}-{i}")
        names.append(None if kind == "no_name" else f"Opp {i}")
        stages.append(stage)
        dates.append(dt.date.fromisoformat(date))
        parents.append("NO-SUCH-PARENT" if kind == "orphan" else parent_key)
    table = pa.table({ACC: keys, "Name": names, "StageName": stages, "CloseDate": dates,
                      "Account.External_Id__c": parents})
    out = bulk_for(shared_server).upsert("Opportunity", ACC, table)
    assert out.rows.num_rows == len(kinds)
    assert out.loaded + out.failed + out.unprocessed == len(kinds)
    dups = kinds.count("dup")
    for kind, status, code in zip(kinds, out.rows.column("status").to_pylist(),
                                  out.rows.column("error_code").to_pylist(), strict=True):
        expected = KINDS[kind][2]
        if kind == "dup" and dups == 1:
            expected = None  # a single "dup" row has no twin
        if expected is None:
            assert (status, code) == ("loaded", None), kind
        else:
            assert (status, code) == ("failed", expected), kind


def test_csv_round_trip_of_hostile_text_and_null_versus_empty(shared_server):
    bulk = bulk_for(shared_server)
    core = RestApi(auth=auth_for(shared_server))
    key = f"RT-{uuid.uuid4().hex[:6]}"
    texts = ['comma, "quote", and\nnewline\r\nCRLF', "=SUM(A1)+'x'", "𝄞 non-BMP ✓ ünïcode",
             "x" * 32_000]
    table = pa.table({ACC: [f"{key}-{i}" for i in range(4)], "Name": ["n"] * 4,
                      "StageName": ["Prospecting"] * 4,
                      "CloseDate": [dt.date(2025, 1, 1)] * 4,
                      "Amount": pa.array([1.5, None, 0.1, 1e6]),
                      "Description": texts})
    assert bulk.upsert("Opportunity", ACC, table).loaded == 4
    back = core.read_range("Opportunity", [ACC, "Description", "Amount"], ACC, f"{key}-0",
                           f"{key}-9")
    assert back.column("Description").to_pylist() == texts
    assert back.column("Amount").to_pylist() == [1.5, None, 0.1, 1e6]
    by_bulk = bulk.read_range("Opportunity", [ACC, "Description", "Amount"], ACC, f"{key}-0",
                              f"{key}-9")  # a Bulk API 2.0 query job: CSV, text values
    assert by_bulk.column("Description").to_pylist() == texts
    assert [None if a is None else float(a) for a in by_bulk.column("Amount").to_pylist()] == [
        1.5, None, 0.1, 1e6]
    # null sets a field to null (#N/A); an empty string leaves it unchanged
    update = pa.table({ACC: [f"{key}-0", f"{key}-2"], "Description": pa.array([None, ""]),
                       "Amount": pa.array([None, 7.0])})
    assert bulk.upsert("Opportunity", ACC, update).loaded == 2
    back = core.read_range("Opportunity", [ACC, "Description", "Amount"], ACC, f"{key}-0",
                           f"{key}-3")
    assert back.column("Description").to_pylist() == [None, texts[1], texts[2]]
    assert back.column("Amount").to_pylist() == [None, None, 7.0]


def test_a_table_over_the_size_limit_is_split_into_several_jobs(shared_server):
    bulk = bulk_for(shared_server, max_job_bytes=64 * 1024, chunk_rows=500)
    table = accounts(f"SPLIT{uuid.uuid4().hex[:4]}", 3_000, Industry=["Banking"] * 3_000)
    out = bulk.upsert("Account", ACC, table)
    assert len(out.jobs) > 1 and out.loaded == 3_000
    assert sum(j["rows"] for j in out.jobs) == 3_000
    assert all(j["rows"] % 500 == 0 for j in out.jobs[:-1])  # cut on the chunk grid


def test_waiting_tells_each_jobs_state_and_the_records_processed_summed(shared_server):
    lines: list[str] = []
    bulk = bulk_for(shared_server, max_job_bytes=64 * 1024, chunk_rows=500)
    table = accounts(f"PROG{uuid.uuid4().hex[:4]}", 3_000, Industry=["Banking"] * 3_000)
    out = bulk.upsert("Account", ACC, table, progress=Throttle(lines.append, interval_s=0))
    ids = [j["id"] for j in out.jobs]
    assert len(ids) > 1 and lines
    assert all(line.startswith(f"Bulk Account upsert jobs {ids[0]} ") for line in lines)
    assert lines[-1].endswith(": 3,000 records processed, 0 failed")
    assert f"{ids[0]} JobComplete, {ids[1]} JobComplete" in lines[-1]


def test_a_progress_line_of_many_jobs_names_the_first_and_counts_the_others_by_state():
    infos = [{"id": f"750{i}", "object": "Opportunity", "operation": "delete",
              "state": state, "numberRecordsProcessed": 100 * i, "numberRecordsFailed": i}
             for i, state in enumerate(["JobComplete", "InProgress", "InProgress",
                                        "InProgress", "UploadComplete", "JobComplete"], 1)]
    assert jobs_line(infos) == (
        "Bulk Opportunity delete jobs 7501 JobComplete, 7502 InProgress, 7503 InProgress and "
        "3 more (1 InProgress, 1 UploadComplete, 1 JobComplete): 2,100 records processed, 21 "
        "failed")
    assert jobs_line(infos[:1]) == ("Bulk Opportunity delete job 7501 JobComplete: 100 records "
                                    "processed, 1 failed")


def test_token_expiry_mid_run_is_recovered(make_server):
    server = make_server()
    OrgClient(server).http.patch("/__emulator__/profile",
                                 json={"faults": {"expire_token_every": 3}})
    out = bulk_for(server).upsert("Account", ACC, accounts("EXP", 50))
    assert out.loaded == 50


def test_transport_faults_are_retried(make_server, caplog):
    server = make_server()
    OrgClient(server).http.patch("/__emulator__/profile", json={"faults": {
        "error_rate": 0.25, "throttle_rate": 0.1, "retry_after_s": 0.05, "seed": 3,
        "path_pattern": "^/services/data/.*/jobs"}})
    bulk = bulk_for(server)
    bulk.client().retry.initial_s = 0.01
    with caplog.at_level(logging.WARNING, logger="dc_to_core.salesforce.transport"):
        out = bulk.upsert("Account", ACC, accounts("FLT", 40))
    assert out.loaded == 40
    assert "retry" in caplog.text and ("HTTP 503" in caplog.text or "HTTP 500" in caplog.text)


def test_a_dropped_upload_starts_a_new_job(make_server):
    server = make_server()
    OrgClient(server).http.patch("/__emulator__/profile", json={"faults": {
        "reset_rate": 0.5, "seed": 1, "path_pattern": "/batches$"}})
    bulk = bulk_for(server, upload_attempts=6)
    out = bulk.upsert("Account", ACC, accounts("RST", 30))
    assert out.loaded == 30
    org = OrgClient(server)
    assert org.query("SELECT COUNT() FROM Account")["totalSize"] == 30  # nothing twice


def test_a_failed_job_leaves_rows_unprocessed(make_server):
    server = make_server()
    OrgClient(server).http.patch("/__emulator__/profile", json={"faults": {"job_fail_rate": 1}})
    out = bulk_for(server).upsert("Account", ACC, accounts("JF", 12))
    assert out.unprocessed == 12 and out.jobs[0]["state"] == "Failed"
    assert out.jobs[0]["errorMessage"]


def test_read_keys_finds_records_by_key_ignoring_case_in_statements_under_the_limit(
        shared_server):
    """Long keys (77 characters) are asked for in several query jobs, each SOQL statement
    under the budget; the org matches them ignoring case."""
    statements: list[int] = []

    class Counting(BulkApi):
        def query(self, soql: str, fields: list[str] | None = None,
                  progress: Progress | None = None) -> pa.Table:
            statements.append(len(soql))
            return super().query(soql, fields, progress)

    bulk = Counting(auth=auth_for(shared_server), poll_initial_s=0.02, poll_max_s=0.2)
    prefix = f"RK-{uuid.uuid4().hex[:6]}-" + "x" * 64
    table = accounts(prefix, 12)
    assert bulk.upsert("Account", ACC, table).loaded == 12
    asked = [k.lower() for k in table.column(ACC).to_pylist()] + [prefix + "-none"]
    got = bulk.read_keys("Account", [ACC, "Name"], ACC, asked, soql_chars=400)
    assert len(statements) >= 4 and max(statements) <= 400, statements
    assert sorted(got.column(ACC).to_pylist()) == sorted(table.column(ACC).to_pylist())
    assert got.column_names == [ACC, "Name"]
    assert bulk.read_keys("Account", [ACC], ACC, []).num_rows == 0
