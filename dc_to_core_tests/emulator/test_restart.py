"""An emulator restarted on the same data dir resumes its jobs and keeps sessions and usage."""

from __future__ import annotations

import time

from dc_to_core_tests.support import OrgClient, V, csv_text


def test_job_in_progress_resumes_after_restart(make_server, tmp_path):
    data_dir = tmp_path / "org"
    first = make_server(data_dir=data_dir, time_scale=20.0, workers=1)
    org = OrgClient(first)
    rows = [[f"R{i:05d}", f"n{i}"] for i in range(3_000)]  # 15 txns ≈ 1.2 s wall at 20x
    job = org.submit("Account", csv_text(["External_Id__c", "Name"], rows))
    deadline = time.monotonic() + 20
    while org.get(f"{V}/jobs/ingest/{job}").json()["numberRecordsProcessed"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    token = org.token
    used = org.get(f"{V}/limits").json()["DailyApiRequests"]["Remaining"]
    first.stop()
    second = make_server(data_dir=data_dir, time_scale=200.0, workers=1)
    again = OrgClient(second, token=token)  # the session survived
    info = again.wait(job)
    assert info["state"] == "JobComplete"
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (3_000, 0)
    ok = again.results(job, "successfulResults")
    assert sorted(r["External_Id__c"] for r in ok) == [r[0] for r in rows]
    assert again.query("SELECT COUNT() FROM Account")["totalSize"] == 3_000
    assert again.get(f"{V}/limits").json()["DailyApiRequests"]["Remaining"] < used
