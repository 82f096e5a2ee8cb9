"""The org's lock model over real HTTP: shared parents in concurrent jobs collide; the same
rows ordered by parent into one job do not."""

from __future__ import annotations

import random

from dc_to_core_tests.support import OrgClient, csv_text

PARENTS = 20
OPP = ["External_Id__c", "Name", "StageName", "CloseDate", "Account.External_Id__c"]


def setup_org(make_server, **profile) -> tuple[OrgClient, list[list[str]]]:
    org = OrgClient(make_server(**profile))
    org.run_job("Account", csv_text(["External_Id__c", "Name"],
                                    [[f"A{p}", f"Account {p}"] for p in range(PARENTS)]))
    rnd = random.Random(3)
    rows = [[f"O{i:06d}", f"Opp {i}", "Prospecting", "2025-01-01", f"A{rnd.randrange(PARENTS)}"]
            for i in range(20_000)]  # external ids uncorrelated with parents
    return org, rows


def test_concurrent_jobs_sharing_parents_fail_with_unable_to_lock_row(make_server):
    org, rows = setup_org(make_server, lock_timeout_s=1.0)
    jobs = [org.submit("Opportunity", csv_text(OPP, rows[:10_000])),
            org.submit("Opportunity", csv_text(OPP, rows[10_000:]))]
    infos = [org.wait(j) for j in jobs]
    assert sum(i["numberRecordsFailed"] for i in infos) > 0
    assert any(i["retries"] > 0 for i in infos)  # chunks with > 100 lock failures re-queued
    failed = org.results(jobs[0], "failedResults") + org.results(jobs[1], "failedResults")
    assert {f["sf__Error"] for f in failed} == {
        "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--"}
    accounted = sum(len(org.results(j, k)) for j in jobs
                    for k in ("successfulResults", "failedResults", "unprocessedrecords"))
    assert accounted == 20_000
    engine = org.get("/__emulator__/stats").json()["engine"]
    assert engine["lock_wait_s"] > 0 and engine["worker_busy_s"] > 0


def test_the_same_rows_ordered_by_parent_in_one_job_do_not_collide(make_server):
    org, rows = setup_org(make_server, lock_timeout_s=1.0)
    info = org.run_job("Opportunity", csv_text(OPP, sorted(rows, key=lambda r: r[4])))
    assert info["state"] == "JobComplete"
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (20_000, 0)
    assert info["retries"] == 0
    engine = org.get("/__emulator__/stats").json()["engine"]
    assert engine["lock_wait_s"] == 0 and engine["worker_busy_s"] > 0
    cheap = org.get("/__emulator__/engine?object=Opportunity").json()  # what the bench polls
    assert cheap["records"] == 20_000 and cheap["engine"]["busy_workers"] == 0
    assert cheap["engine"]["worker_busy_s"] == engine["worker_busy_s"]
    assert org.get("/__emulator__/engine?object=Nope").status_code == 404
