"""ApiClient: one re-login per call on 401, typed errors, call counting."""

from __future__ import annotations

import pytest

from dc_to_core.salesforce.errors import OrgUnreachableError, SalesforceApiError
from dc_to_core.salesforce.transport import ApiClient, RetrySettings
from dc_to_core_tests.support import auth_for


def test_a_revoked_token_is_replaced_once_and_the_call_replayed(shared_server):
    auth = auth_for(shared_server)
    client = ApiClient(auth)
    first = auth.session("core")
    auth.http().post(f"{shared_server.url}/services/oauth2/revoke", params={"token": first.token})
    r = client.request("GET", client.data_path("limits"))
    assert r.status_code == 200 and auth.session("core").token != first.token
    assert client.calls == 2  # the rejected call and its replay


def test_api_errors_are_typed_and_name_the_call(shared_server):
    client = ApiClient(auth_for(shared_server))
    with pytest.raises(SalesforceApiError) as err:
        client.request("GET", client.data_path("query?q=SELECT+Nope+FROM+Account"))
    e = err.value
    assert (e.status, e.error_code) == (400, "INVALID_FIELD")
    assert "GET /services/data/v64.0/query failed" in str(e) and "Nope" in e.message


def test_retries_are_bounded(make_server):
    server = make_server()
    auth = auth_for(server)
    auth.session("core")
    client = ApiClient(auth, RetrySettings(attempts=3, initial_s=0.01, max_s=0.02))
    from dc_to_core_tests.support import OrgClient

    OrgClient(server).http.patch("/__emulator__/profile", json={"faults": {
        "error_rate": 1.0, "path_pattern": "/limits$"}})
    with pytest.raises(SalesforceApiError) as err:
        client.request("GET", client.data_path("limits"))
    assert err.value.status in (500, 503) and client.calls == 3
    server.stop()
    with pytest.raises(OrgUnreachableError, match="after 3 attempts"):
        client.request("GET", client.data_path("limits"))
