"""Loading rounds: waves for heavy parents, the ledger's resume, transient detection."""

from __future__ import annotations

import pyarrow as pa

from dc_to_core.salesforce.bulk import BulkApi, SubmittedJob
from dc_to_core.salesforce.bulk_results import OUTCOME
from dc_to_core.sync.ledger import Ledger
from dc_to_core.sync.loading import (
    SMALL_JOB_ROWS,
    SMALL_JOBS,
    LoadStats,
    LoadTarget,
    _gaps,
    job_cuts,
    load_round,
    planned_jobs,
    settle_stale_jobs,
    small_load_jobs,
    transient,
    upload_columns,
    waves,
)
from dc_to_core.sync.prepare import GROUP, Prepared, prepare
from dc_to_core.sync.spec import load_syncs
from dc_to_core_tests.support import OrgClient, auth_for, csv_text

OPP = load_syncs().syncs["Opportunity"]


def test_waves_split_heavy_parents():
    parents = ["A"] * 25 + ["B"] * 3 + [None] * 2 + ["C"] * 11
    table = pa.table({"P": parents})
    got = [w.to_pylist() for w in waves(table, "P", 10)]
    assert len(got) == 3
    assert sorted(i for w in got for i in w) == list(range(len(parents)))
    assert [sum(1 for i in w if parents[i] == "A") for w in got] == [10, 10, 5]
    assert [sum(1 for i in w if parents[i] == "C") for w in got] == [10, 1, 0]
    assert len(waves(table, None, 10)) == 1


def test_a_parent_spelled_in_two_cases_is_one_parent_for_its_waves():
    """The org finds ACC-1 for acc-1 (a case-insensitive external id): one lock."""
    parents = ["ACC-1"] * 6 + ["acc-1"] * 6
    got = [w.to_pylist() for w in waves(pa.table({"P": parents}), "P", 10)]
    assert [len(w) for w in got] == [10, 2]


def test_a_wave_smaller_than_a_chunk_is_cut_into_jobs_at_lock_group_boundaries():
    """One chunk would be one org worker writing its transactions one after another: a
    small wave becomes up to SMALL_JOBS jobs the workers take at once, no group in two."""
    assert job_cuts(pa.table({"x": range(1000)}), 10_000) == [200, 400, 600, 800]
    assert len(job_cuts(pa.table({"x": range(9000)}), 10_000)) == SMALL_JOBS - 1
    assert job_cuts(pa.table({"x": range(2 * SMALL_JOB_ROWS - 1)}), 10_000) == []
    assert job_cuts(pa.table({"x": range(10_000)}), 10_000) == []  # the org splits it
    groups = [f"ACC-{i // 7:03d}" for i in range(2000)]  # 7 contacts per account
    cuts = job_cuts(pa.table({GROUP: groups}), 10_000)
    assert len(cuts) == SMALL_JOBS - 1
    assert all(groups[c] != groups[c - 1] for c in cuts)  # a group is never cut
    assert all(b - a >= SMALL_JOB_ROWS for a, b in zip([0, *cuts], [*cuts, 2000], strict=True))
    assert job_cuts(pa.table({GROUP: ["ONE"] * 1000}), 10_000) == []  # one parent: one job
    # the budget's forecast of a partition never loaded counts the same jobs
    assert [small_load_jobs(n, 10_000) for n in (300, 1000, 9000, 20_000)] == [1, 5, 8, 1]


def test_gaps():
    jobs = [SubmittedJob("x", 0, 10), SubmittedJob("y", 20, 30)]
    assert _gaps(jobs, 40) == [(10, 20), (30, 40)]
    assert _gaps([], 5) == [(0, 5)]


def test_transient_rows():
    out = pa.table({"status": ["loaded", "failed", "unprocessed", "failed"],
                    "sf_id": [None] * 4, "created": [None] * 4,
                    "error_code": [None, "UNABLE_TO_LOCK_ROW", None, "STRING_TOO_LONG"],
                    "error_message": [None] * 4, "job_id": ["j"] * 4}, schema=OUTCOME)
    assert transient(out).to_pylist() == [1, 2]


def opportunities_of_one_parent(server, tmp_path, prefix: str, n: int
                                ) -> tuple[Prepared, Ledger, BulkApi]:
    """``n`` prepared Opportunities of one Account loaded on ``server``, a ledger in
    ``tmp_path`` and a Bulk client."""
    OrgClient(server).run_job("Account", csv_text(["External_Id__c", "Name"],
                                                  [[f"{prefix}-P", "parent"]]))
    rows = [{"ExternalId__c": f"{prefix}-{i:03d}", "AccountExternalId__c": f"{prefix}-P",
             "Name__c": "n", "StageName__c": "Prospecting", "CloseDate__c": "2025-01-01"}
            for i in range(n)]
    prepared = prepare(OPP, pa.table({c: [r.get(c) for r in rows] for c in OPP.source_columns}))
    return (prepared, Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}"),
            BulkApi(auth=auth_for(server), poll_initial_s=0.02, poll_max_s=0.2))


def test_a_retried_load_resumes_recorded_jobs_instead_of_uploading_again(shared_server,
                                                                         tmp_path):
    prepared, ledger, bulk = opportunities_of_one_parent(shared_server, tmp_path, "LR", 30)
    target = LoadTarget(OPP, "p00", prepared.fingerprint, bulk, ledger, "run-1")
    first = load_round(target, prepared.ready, 0, LoadStats())
    assert pa.compute.all(pa.compute.equal(first.column("status"), "loaded")).as_py()
    jobs_before = len(bulk.list_jobs())
    stats = LoadStats()
    again = load_round(target, prepared.ready, 0, stats)  # as if the op were retried
    assert stats.resumed_jobs == 1 and len(bulk.list_jobs()) == jobs_before
    assert again.column("sf_id").to_pylist() == first.column("sf_id").to_pylist()
    ledger.forget("Opportunity", "p00", prepared.fingerprint)
    assert ledger.submitted("Opportunity", "p00", prepared.fingerprint, 0) == []


def test_a_load_waits_for_the_jobs_an_interrupted_load_left_with_the_org(shared_server,
                                                                         tmp_path):
    """A crashed load closed a job with older values of the same rows; tonight's load (other
    values: another fingerprint) must not race it: it waits for it to end, then sends."""
    old, ledger, bulk = opportunities_of_one_parent(shared_server, tmp_path, "ST", 20)
    left = bulk.submit("Opportunity", "External_Id__c", upload_columns(OPP, old.ready))
    for job in left:
        ledger.record("Opportunity", "p00", "fp-old", 0, job, "run-1")  # ... then it died
    tonight = LoadTarget(OPP, "p00", "fp-new", bulk, ledger, "run-2")
    assert settle_stale_jobs(tonight) == 1
    assert bulk.get_job(left[0].job_id)["state"] == "JobComplete"  # ended before we send
    assert ledger.other_jobs("Opportunity", "p00", "fp-new") == []
    assert settle_stale_jobs(tonight) == 0


def test_a_small_load_goes_as_parallel_jobs_and_a_retry_resumes_them(shared_server, tmp_path):
    """1,000 rows: five jobs (what the forecast said), all loaded; a retry of the op
    resumes every one of them instead of uploading again."""
    OrgClient(shared_server).run_job("Account", csv_text(
        ["External_Id__c", "Name"], [[f"SJ-P{p}", "parent"] for p in range(50)]))
    rows = [{"ExternalId__c": f"SJ-{i:04d}", "AccountExternalId__c": f"SJ-P{i % 50}",
             "Name__c": "n", "StageName__c": "Prospecting", "CloseDate__c": "2025-01-01"}
            for i in range(1000)]  # 20 per account
    ready = prepare(OPP, pa.table({c: [r.get(c) for r in rows] for c in OPP.source_columns})
                    ).ready
    ledger = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    bulk = BulkApi(auth=auth_for(shared_server), poll_initial_s=0.02, poll_max_s=0.2)
    target = LoadTarget(OPP, "p00", "fp-small", bulk, ledger, "run-1")
    assert planned_jobs(target, ready) == [200] * 5  # ten accounts' rows each
    stats = LoadStats()
    first = load_round(target, ready, 0, stats)
    assert pa.compute.all(pa.compute.equal(first.column("status"), "loaded")).as_py()
    assert sorted(int(j["numberRecordsProcessed"]) for j in stats.jobs) == [200] * 5
    again = LoadStats()
    assert load_round(target, ready, 0, again).column("sf_id").to_pylist() == first.column(
        "sf_id").to_pylist()
    assert again.resumed_jobs == 5


def test_a_job_left_open_by_a_stopped_upload_is_aborted_and_its_rows_sent_again(
        shared_server, tmp_path):
    """Jobs are on record from their creation: a load stopped during an upload leaves an open
    job in the ledger (here in place of the third job's record). Its retry resumes the closed
    jobs, aborts the open one (the org never processes it) and sends its rows in a new job."""
    OrgClient(shared_server).run_job("Account", csv_text(
        ["External_Id__c", "Name"], [[f"OJ-P{p}", "parent"] for p in range(50)]))
    rows = [{"ExternalId__c": f"OJ-{i:04d}", "AccountExternalId__c": f"OJ-P{i % 50}",
             "Name__c": "n", "StageName__c": "Prospecting", "CloseDate__c": "2025-01-01"}
            for i in range(1000)]
    ready = prepare(OPP, pa.table({c: [r.get(c) for r in rows] for c in OPP.source_columns})
                    ).ready
    ledger = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    bulk = BulkApi(auth=auth_for(shared_server), poll_initial_s=0.02, poll_max_s=0.2)
    target = LoadTarget(OPP, "p00", "fp-open", bulk, ledger, "run-1")
    first = load_round(target, ready, 0, LoadStats())
    third = sorted(ledger.submitted("Opportunity", "p00", "fp-open", 0),
                   key=lambda j: j.start)[2]
    ledger.forget_job("Opportunity", "p00", "fp-open", third.job_id)
    left_open = bulk.create_job("Opportunity", "upsert", "External_Id__c")["id"]
    ledger.record("Opportunity", "p00", "fp-open", 0,
                  SubmittedJob(left_open, third.start, third.stop), "run-1")
    again = LoadStats()
    retried = load_round(target, ready, 0, again)
    assert again.resumed_jobs == 4
    assert bulk.get_job(left_open)["state"] == "Aborted"
    assert pa.compute.all(pa.compute.equal(retried.column("status"), "loaded")).as_py()
    resent = [j for j in ledger.submitted("Opportunity", "p00", "fp-open", 0)
              if j.start == third.start]
    assert [j.job_id for j in resent] != [left_open] and len(resent) == 1
    assert retried.column("sf_id").to_pylist() == first.column("sf_id").to_pylist()
