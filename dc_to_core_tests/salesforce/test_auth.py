"""SalesforceAuth against the emulator: both login flows, the Data Cloud exchange, refresh,
and secrets kept out of reprs and error messages."""

from __future__ import annotations

import logging

import pytest

from dc_to_core.emulator import EmulatorConfig, EmulatorServer, load_profile
from dc_to_core.emulator.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from dc_to_core.emulator.tokens import AppCredentials
from dc_to_core.salesforce.auth import SalesforceAuth
from dc_to_core.salesforce.errors import (
    AuthenticationError,
    ConfigurationError,
    OrgUnreachableError,
)
from dc_to_core_tests.support import auth_for, rsa_pair


def test_client_credentials_then_data_cloud_exchange(shared_server):
    auth = auth_for(shared_server)
    core = auth.session("core")
    assert core.base_url == shared_server.url and core.token
    dc = auth.session("dc")
    assert dc.base_url == shared_server.url  # tenant host, scheme from the core instance
    assert auth.session("core") is core  # cached
    assert DEFAULT_CLIENT_SECRET not in repr(auth) and core.token not in repr(core)


def test_jwt_bearer_login(tmp_path):
    private, public = rsa_pair()
    app = AppCredentials(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, "etl@example.com",
                         jwt_public_key=public)
    with EmulatorServer(EmulatorConfig(tmp_path, profile=load_profile("fast"), app=app)) as s:
        auth = SalesforceAuth(login_url=s.url, client_id=DEFAULT_CLIENT_ID,
                              private_key=private.decode(), username="etl@example.com",
                              ca_bundle=str(s.ca_file))
        assert auth.session("core").token
        wrong = SalesforceAuth(login_url=s.url, client_id=DEFAULT_CLIENT_ID,
                               private_key=private.decode(), username="nobody@example.com",
                               ca_bundle=str(s.ca_file))
        with pytest.raises(AuthenticationError, match="invalid_grant"):
            wrong.session("core")


def test_bad_credentials_say_what_and_where_without_the_secret(shared_server):
    auth = auth_for(shared_server, client_secret="not-the-secret-xyz")
    with pytest.raises(AuthenticationError) as err:
        auth.session("core")
    text = str(err.value)
    assert "invalid_client" in text and shared_server.url in text
    assert "not-the-secret-xyz" not in text


def test_unreachable_org(shared_server):
    auth = SalesforceAuth(login_url="https://127.0.0.1:9", client_id="x", client_secret="y")
    with pytest.raises(OrgUnreachableError, match=r"cannot reach https://127\.0\.0\.1:9"):
        auth.session("core")


def test_tls_is_verified_by_default(shared_server):
    auth = SalesforceAuth(login_url=shared_server.url, client_id=DEFAULT_CLIENT_ID,
                          client_secret=DEFAULT_CLIENT_SECRET)  # no CA bundle for the emulator
    with pytest.raises(ConfigurationError, match="does not verify"):  # permanent: no retries
        auth.session("core")


def test_turning_verification_off_is_explicit_and_warns(shared_server, caplog):
    auth = auth_for(shared_server, ca_bundle=None, verify_tls=False)
    with caplog.at_level(logging.WARNING, logger="dc_to_core.salesforce.auth"):
        assert auth.session("core").token
    assert "TLS verification is OFF" in caplog.text


def test_settings_that_cannot_work_fail_at_once_naming_the_setting(shared_server, tmp_path):
    """Permanent mistakes are not retried as network trouble: a CA file that is not there or
    holds no certificate, no credentials at all (a certificate that does not verify: above)."""
    def auth(**kw: object) -> SalesforceAuth:
        return SalesforceAuth(login_url=shared_server.url, client_id=DEFAULT_CLIENT_ID,
                              **{"client_secret": DEFAULT_CLIENT_SECRET,
                                 "ca_bundle": str(shared_server.ca_file), **kw})

    missing = tmp_path / "nowhere" / "ca.pem"
    with pytest.raises(ConfigurationError, match=f"DC_TO_CORE_CA_BUNDLE.*{missing}, which is "
                                                 "not a file"):
        auth(ca_bundle=str(missing)).session("core")
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="holds no readable PEM certificate"):
        auth(ca_bundle=str(tmp_path / "junk.pem")).session("core")
    with pytest.raises(ConfigurationError, match=r"DC_TO_CORE_CLIENT_SECRET .* not set"):
        auth(client_secret=None).session("core")
