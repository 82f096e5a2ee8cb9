"""Loading rounds: waves for heavy parents, the ledger's resume, transient detection."""

from __future__ import annotations

import pyarrow as pa

from dc_to_core.salesforce.bulk import BulkApi, SubmittedJob
from dc_to_core.salesforce.bulk_results import OUTCOME
from dc_to_core.sync.ledger import Ledger
from dc_to_core.sync.loading import (
    LoadStats,
    LoadTarget,
    _gaps,
    load_round,
    settle_stale_jobs,
    transient,
    upload_columns,
    waves,
)
from dc_to_core.sync.prepare import Prepared, prepare
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
