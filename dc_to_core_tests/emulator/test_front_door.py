"""The emulator's front door: malformed uploads fail their job as Salesforce does (and a
restart survives them), bodies are bounded (a gzip bomb too), and every error answer has
Salesforce's JSON shape."""

from __future__ import annotations

import gzip
import sqlite3

import pytest

from dc_to_core_tests.support import OrgClient, V

HEADER = "External_Id__c,Name\n"
MALFORMED = {
    "unbalanced quote": (HEADER + 'A-1,"never closed\nA-2,b\n').encode(),
    "two unclosed quotes": (HEADER + 'A-1,"x\nA-2,"y\n').encode(),  # pyarrow: one row
    "text after a closing quote": (HEADER + 'A-1,"ab"c\n').encode(),
    "ragged rows": (HEADER + "A-1,a,extra\nA-2\n").encode(),
    "duplicate header": b"External_Id__c,Name,Name\nA-1,a,b\n",
    "invalid UTF-8": HEADER.encode() + b"A-1,caf\xe9\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_upload_fails_its_job_and_a_restart_survives_it(make_server, tmp_path,
                                                                     case):
    data_dir = tmp_path / "org"
    org = OrgClient(make_server(data_dir=data_dir))
    job = org.create_job("Account")
    assert org.upload(job, MALFORMED[case]).status_code == 201
    closed = org.close(job)
    assert closed.status_code == 200, closed.text
    info = org.wait(job)
    assert info["state"] == "Failed" and info["numberRecordsProcessed"] == 0
    assert info["errorMessage"].startswith("InvalidBatch : "), info
    for kind in ("successfulResults", "failedResults", "unprocessedrecords"):
        assert org.get(f"{V}/jobs/ingest/{job}/{kind}").status_code == 200
    assert org.get(f"{V}/jobs/ingest").status_code == 200
    org.server.stop()
    with sqlite3.connect(data_dir / "core.db") as db:  # left closed by an older emulator
        db.execute("UPDATE ingest_job SET state='UploadComplete' WHERE id=?", (job,))
    again = OrgClient(make_server(data_dir=data_dir))  # starts on that data dir
    assert again.wait(job)["state"] == "Failed"
    good = again.submit("Account", HEADER + "A-1,fine\n")
    assert again.wait(good)["state"] == "JobComplete"


def test_a_gzip_bomb_is_refused_without_inflating_it(make_server):
    server = make_server(max_upload_bytes=10 << 20)
    org = OrgClient(server)
    bomb = gzip.compress(HEADER.encode() + b"A" * (1 << 30), 9)  # 1 GiB in about 1 MB
    assert len(bomb) < 2 << 20
    job = org.create_job("Account")
    answer = org.upload(job, bomb, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 400
    assert answer.json()[0]["message"].startswith("ClientInputError : the upload") and \
        f"exceeds {10 << 20} bytes" in answer.json()[0]["message"]
    two = gzip.compress(HEADER.encode() + b"A-1,a\n") + gzip.compress(b"A-2,b\n")
    assert org.upload(job, two, **{"Content-Encoding": "gzip"}).status_code == 201
    assert org.close(job).status_code == 200
    assert org.wait(job)["numberRecordsProcessed"] == 2  # both members, as gzip reads them
    job = org.create_job("Account")
    plain = org.upload(job, b"x" * ((10 << 20) + 1))
    assert plain.status_code == 400 and plain.json()[0]["errorCode"] == "API_ERROR"
    big_json = org.http.post(f"{V}/jobs/ingest", content=b'{"object": "' + b"x" * (2 << 20)
                             + b'"}', headers={"Content-Type": "application/json"})
    assert big_json.status_code == 400 and "exceeds" in big_json.json()[0]["message"]


def test_errors_have_salesforces_shape_everywhere(make_server):
    org = OrgClient(make_server())
    nowhere = org.get(f"{V}/jobs/nowhere/at/all")
    assert nowhere.status_code == 404
    assert nowhere.json() == [{"message": "The requested resource does not exist",
                               "errorCode": "NOT_FOUND"}]
    wrong_method = org.http.put(f"{V}/jobs/ingest")
    assert wrong_method.status_code == 405
    assert wrong_method.json() == [{"errorCode": "METHOD_NOT_ALLOWED", "message":
                                    "HTTP Method 'PUT' not allowed. Allowed are GET,POST"}]
    for locator in ("9" * 40, "not-a-locator", "-1"):
        listed = org.get(f"{V}/jobs/ingest", params={"queryLocator": locator})
        assert listed.status_code == 400, listed.text
        assert listed.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
