"""OAuth token endpoint, Data Cloud exchange, revoke, and token checks on every API route."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from dc_to_core.emulator import EmulatorConfig, EmulatorServer, load_profile
from dc_to_core.emulator.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from dc_to_core.emulator.tokens import AppCredentials
from dc_to_core_tests.support import OrgClient, V, rsa_pair, sign_jwt, tls

CC = {"grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
      "client_secret": DEFAULT_CLIENT_SECRET}


def client(server: EmulatorServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, verify=tls(server))


def test_client_credentials_in_form_body_query_string_and_basic_auth(shared_server):
    c = client(shared_server)
    by_form = c.post("/services/oauth2/token", data=CC)
    by_query = c.post("/services/oauth2/token", params=CC)
    basic = base64.b64encode(f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}".encode()).decode()
    by_basic = c.post("/services/oauth2/token", data={"grant_type": "client_credentials"},
                      headers={"Authorization": f"Basic {basic}"})
    for r in (by_form, by_query, by_basic):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "Bearer"
        assert body["instance_url"] == shared_server.url
        assert body["issued_at"].isdigit() and len(body["issued_at"]) == 13
        assert "expires_in" not in body and "!" in body["access_token"]
        assert body["id"].startswith("https://login.salesforce.com/id/00D")


@pytest.mark.parametrize(("params", "error"), [
    ({**CC, "client_secret": "wrong"}, "invalid_client"),
    ({**CC, "client_id": "nobody"}, "invalid_client_id"),
    ({"grant_type": "refresh_token"}, "unsupported_grant_type"),
])
def test_bad_credentials_give_salesforce_error_shape(shared_server, params, error):
    r = client(shared_server).post("/services/oauth2/token", data=params)
    assert r.status_code == 400
    assert r.json()["error"] == error and r.json()["error_description"]


def test_api_routes_require_a_valid_bearer_token(shared_server):
    c = client(shared_server)
    for path in (f"{V}/limits", f"{V}/jobs/ingest", "/__emulator__/profile"):
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            r = c.get(path, headers=headers)
            assert r.status_code == 401
            assert r.json() == [{"message": "Session expired or invalid",
                                 "errorCode": "INVALID_SESSION_ID"}]
    r = c.post("/api/v2/query", json={"sql": "SELECT 1"})
    assert r.status_code == 401 and r.json()["errorCode"] == "INVALID_SESSION_ID"


def test_unknown_path_is_404(org):
    assert org.get("/services/nothing-here").status_code == 404


def test_data_cloud_exchange_and_token_kinds(shared_server, org):
    c = client(shared_server)
    r = c.post("/services/a360/token", params={
        "grant_type": "urn:salesforce:grant-type:external:cdp", "subject_token": org.token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["instance_url"] == shared_server.url.split("://")[1]  # no scheme
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    dc = {"Authorization": f"Bearer {body['access_token']}"}
    assert c.post("/api/v2/query", json={"sql": "SELECT 1 AS x"}, headers=dc).status_code == 200
    assert c.get(f"{V}/limits", headers=dc).status_code == 401  # a DC token is not a core token
    core = {"Authorization": f"Bearer {org.token}"}
    assert c.post("/api/v2/query", json={"sql": "SELECT 1"}, headers=core).status_code == 401
    bad = c.post("/services/a360/token", data={
        "grant_type": "urn:salesforce:grant-type:external:cdp", "subject_token": "nope",
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"


def test_revoke_invalidates_the_token(shared_server):
    c = client(shared_server)
    token = c.post("/services/oauth2/token", data=CC).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert c.get(f"{V}/limits", headers=auth).status_code == 200
    assert c.post("/services/oauth2/revoke", params={"token": token}).status_code == 200
    assert c.get(f"{V}/limits", headers=auth).status_code == 401
    assert c.post("/services/oauth2/revoke", params={"token": token}).status_code == 400


def test_tokens_expire_after_the_profile_lifetime(make_server):
    server = make_server(token_ttl_s=60.0, time_scale=200.0)  # 0.3 s of wall time
    org = OrgClient(server)
    assert org.get(f"{V}/limits").status_code == 200
    time.sleep(0.5)
    r = org.get(f"{V}/limits")
    assert r.status_code == 401 and r.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_jwt_bearer_flow(tmp_path):
    private, public = rsa_pair()
    other_private, _ = rsa_pair()
    app = AppCredentials(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, "etl@example.com",
                         jwt_public_key=public)
    config = EmulatorConfig(tmp_path, profile=load_profile("fast"), app=app)
    with EmulatorServer(config) as server:
        c = client(server)
        good = {"iss": DEFAULT_CLIENT_ID, "sub": "etl@example.com",
                "aud": "https://login.salesforce.com", "exp": int(time.time()) + 180}

        def grant(claims: dict, key: bytes = private) -> httpx.Response:
            return c.post("/services/oauth2/token", data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": sign_jwt(key, claims)})

        ok = grant(good)
        assert ok.status_code == 200 and ok.json()["instance_url"] == server.url
        assert grant({**good, "aud": server.url}).status_code == 200
        cases = [({**good, "sub": "someone@else"}, private, "invalid_grant"),
                 ({**good, "exp": int(time.time()) - 5}, private, "invalid_grant"),
                 ({**good, "aud": "https://evil.example"}, private, "invalid_grant"),
                 ({**good, "iss": "other-app"}, private, "invalid_client_id"),
                 (good, other_private, "invalid_grant")]
        for claims, key, error in cases:
            r = grant(claims, key)
            assert r.status_code == 400 and r.json()["error"] == error, (claims, r.text)
