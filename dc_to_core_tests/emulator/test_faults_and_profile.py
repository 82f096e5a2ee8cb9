"""The profile as one documented object (readable and patchable at /__emulator__/profile) and
the fault switches it carries."""

from __future__ import annotations

import httpx
import pytest

from dc_to_core.emulator.profile import OrgProfile, load_profile
from dc_to_core_tests.support import OrgClient, V, csv_text, set_faults


def test_profile_is_readable_with_documentation(org):
    body = org.get("/__emulator__/profile").json()
    assert body["profile"]["chunk_rows"] == 10_000 and body["profile"]["txn_rows"] == 200
    assert "lock" in body["fields"]["lock_timeout_s"].lower()
    assert body["emulated_now_s"] > 0


def test_profile_files_names_and_overrides(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: custom\nworkers: 3\nfaults: {error_rate: 0.5}\n")
    p = load_profile(path, lock_timeout_s=2.0)
    assert (p.name, p.workers, p.lock_timeout_s, p.faults.error_rate) == ("custom", 3, 2.0, 0.5)
    assert load_profile("default") == OrgProfile()
    with pytest.raises(ValueError, match="neither a known name"):
        load_profile("nonsense")
    with pytest.raises(ValueError, match="workers"):
        load_profile(None, workers=0)


def test_live_changes_but_not_of_the_clock(make_server):
    org = OrgClient(make_server())
    r = org.http.patch("/__emulator__/profile", json={"lock_timeout_s": 3, "faults": {"seed": 9}})
    assert r.status_code == 200 and r.json()["profile"]["lock_timeout_s"] == 3
    assert r.json()["profile"]["faults"]["seed"] == 9
    bad = org.http.patch("/__emulator__/profile", json={"time_scale": 1})
    assert bad.status_code == 400 and "time_scale" in bad.json()[0]["message"]
    bad = org.http.patch("/__emulator__/profile", json={"faults": {"error_rate": 2}})
    assert bad.status_code == 400


def faulty(make_server, **faults) -> OrgClient:
    org = OrgClient(make_server())
    r = org.http.patch("/__emulator__/profile", json={"faults": {"path_pattern": "/limits$",
                                                                  **faults}})
    assert r.status_code == 200
    return org


def test_error_throttle_and_limit_faults(make_server):
    org = faulty(make_server, error_rate=1.0, error_statuses=[503])
    r = org.get(f"{V}/limits")
    assert r.status_code == 503 and r.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert org.get(f"{V}/jobs/ingest").status_code == 200  # outside path_pattern
    org = faulty(make_server, throttle_rate=1.0, retry_after_s=2.5)
    r = org.get(f"{V}/limits")
    assert r.status_code == 429 and r.headers["retry-after"] == "2.5"
    org = faulty(make_server, request_limit_rate=1.0)
    assert org.get(f"{V}/limits").json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_connection_reset_fault(make_server):
    org = faulty(make_server, reset_rate=1.0)
    for _ in range(4):  # both flavours: before and after the route ran
        with pytest.raises(httpx.TransportError):
            org.get(f"{V}/limits")


def test_token_expiry_every_n_calls(make_server):
    org = OrgClient(make_server())
    org.http.patch("/__emulator__/profile", json={"faults": {"expire_token_every": 3}})
    codes = [org.get(f"{V}/jobs/ingest").status_code for _ in range(4)]
    assert codes == [200, 200, 401, 401]  # the PATCH was the first call of this token


def test_job_fail_and_chunk_die_faults(make_server):
    org = OrgClient(make_server(chunk_rows=10, txn_rows=5))
    rows = [[f"F{i:03d}", "n"] for i in range(40)]
    org.http.patch("/__emulator__/profile", json={"faults": {"job_fail_rate": 1.0}})
    info = org.run_job("Account", csv_text(["External_Id__c", "Name"], rows))
    assert info["state"] == "Failed" and "fault" in info["errorMessage"]
    assert len(org.results(info["id"], "unprocessedrecords")) == 40
    org.http.patch("/__emulator__/profile", json={"faults": {"job_fail_rate": 0,
                                                             "chunk_die_rate": 1.0}})
    info = org.run_job("Account", csv_text(["External_Id__c", "Name"], rows))
    assert info["state"] == "Failed" and "died" in info["errorMessage"]
    done = len(org.results(info["id"], "successfulResults"))
    lost = len(org.results(info["id"], "unprocessedrecords"))
    assert done + lost == 40 and lost > 0
    assert info["numberRecordsProcessed"] == done


def test_poison_key_fails_only_the_jobs_holding_it(make_server):
    server = make_server()
    set_faults(server, job_fail_key="^P-00[5]$")
    org = OrgClient(server)
    clean = org.run_job("Account", csv_text(["External_Id__c", "Name"],
                                            [["P-001", "a"], ["P-002", "b"]]))
    poisoned = org.run_job("Account", csv_text(["External_Id__c", "Name"],
                                               [["P-004", "a"], ["P-005", "b"]]))
    assert clean["state"] == "JobComplete"
    assert poisoned["state"] == "Failed" and "fault" in poisoned["errorMessage"]


def test_slow_responses(make_server):
    org = faulty(make_server, slow_rate=1.0, slow_s=1.0)
    with pytest.raises(httpx.ReadTimeout):
        org.http.get(f"{V}/limits", timeout=0.3)


def test_a_poison_key_that_is_not_a_regex_is_refused_when_set():
    with pytest.raises(ValueError, match="job_fail_key is not a regular expression"):
        load_profile("fast", faults={"job_fail_key": "OPP-(1"})
