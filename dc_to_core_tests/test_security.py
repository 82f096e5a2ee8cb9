"""Secrets stay secret: a full run (JWT and client credentials) and a refused login leave no
client secret, private key or token in logs, event records, metadata, errors or state files.
TLS verification is on unless turned off explicitly, with a warning; the emulator listens
on 127.0.0.1 and refuses requests without a valid token."""

from __future__ import annotations

import logging
import ssl
import uuid
from pathlib import Path

import dagster as dg
import httpx
import pytest

from dc_to_core.emulator import EmulatorConfig, EmulatorServer, load_profile
from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core.emulator.server import DEFAULT_CLIENT_ID
from dc_to_core.emulator.tokens import AppCredentials
from dc_to_core.orchestration.resources import salesforce_auth
from dc_to_core.salesforce.auth import SalesforceAuth
from dc_to_core_tests.pipeline_support import failure_messages, make_project
from dc_to_core_tests.support import rsa_pair

USER = "etl@example.com"


def _haystack(instance: dg.DagsterInstance, caplog: pytest.LogCaptureFixture,
              *state: Path) -> str:
    """Everything a run leaves behind that a person or a log shipper could read."""
    parts = [caplog.text]
    for run in instance.get_runs():
        parts.append(dg.serialize_value(run))
        parts += [dg.serialize_value(record) for record in instance.all_logs(run.run_id)]
    parts += [p.read_bytes().decode("latin-1") for d in state for p in d.rglob("*")
              if p.is_file()]  # quarantine, ledger, intermediates
    return "\n".join(parts)


def test_a_full_run_leaves_no_secret_anywhere(tmp_path, caplog, monkeypatch):
    private, public = rsa_pair()
    secret = f"cs-{uuid.uuid4().hex}"
    app = AppCredentials(DEFAULT_CLIENT_ID, secret, USER, jwt_public_key=public)
    config = EmulatorConfig(tmp_path / "org", profile=load_profile("fast", time_scale=200.0),
                            app=app)
    caplog.set_level(logging.DEBUG)
    with EmulatorServer(config) as server:
        seed_datacloud(server.org.storage, SeedSpec(accounts=10, opportunities=500,
                                                    bad_share=0.02, seed=2))
        monkeypatch.setenv("DC_TO_CORE_CLIENT_SECRET", secret)
        by_secret = make_project(server, tmp_path / "a", partitions=1)
        monkeypatch.setenv("DC_TO_CORE_PRIVATE_KEY", private.decode())
        by_key = make_project(server, tmp_path / "b", partitions=1,
                              DC_TO_CORE_PRIVATE_KEY=private.decode(),
                              DC_TO_CORE_USERNAME=USER)
        with dg.instance_for_test() as instance:
            assert by_key.run("Account", "p00", instance).success
            assert by_secret.run("Opportunity", "p00", instance).success
            monkeypatch.setenv("DC_TO_CORE_CLIENT_SECRET", secret + "-wrong")
            refused = by_secret.run("Opportunity", "p00", instance)
            assert not refused.success
            message = " ".join(failure_messages(refused))
            assert "refused the login" in message and "DC_TO_CORE_CLIENT_SECRET" in message
            text = _haystack(instance, caplog, tmp_path / "a", tmp_path / "b")
        tokens = [t for (t,) in server.org.storage.reader().execute("SELECT token FROM token")]
    key_lines = [line for line in private.decode().splitlines() if "-----" not in line]
    assert len(tokens) >= 4  # core and Data Cloud tokens of both projects
    assert "rows_loaded" in text and "invalid_client" in text  # the scan saw the runs
    for needle in [secret, *key_lines, *tokens]:
        at = text.find(needle)
        assert at < 0, f"a secret ({needle[:6]}…) leaked: …{text[max(0, at - 300):at]!r}"


def test_tls_verification_is_on_unless_turned_off_with_a_warning(caplog):
    assert SalesforceAuth(login_url="https://example.my.salesforce.com",
                          client_id="x", client_secret="y").verify() is not False
    env = {"DC_TO_CORE_LOGIN_URL": "https://127.0.0.1:1", "DC_TO_CORE_VERIFY_TLS": "false",
           "DC_TO_CORE_CLIENT_SECRET": "y"}
    auth = salesforce_auth(env, resolve=True)
    with caplog.at_level(logging.WARNING):
        assert auth.verify() is False
    assert "TLS verification is OFF" in caplog.text


def test_the_emulator_listens_on_loopback_and_wants_a_token(tmp_path):
    with EmulatorServer(EmulatorConfig(tmp_path, profile=load_profile("fast"))) as server:
        assert server.config.host == "127.0.0.1" and "127.0.0.1" in server.url
        with httpx.Client(verify=ssl.create_default_context(cafile=str(server.ca_file))) as http:
            for path in ("/services/data/v64.0/jobs/ingest", "/services/data/v64.0/query?q=x",
                         "/api/v2/query", "/__emulator__/stats",
                         "/__emulator__/engine"):
                assert http.get(server.url + path).status_code == 401
                assert http.get(server.url + path, headers={
                    "Authorization": "Bearer forged"}).status_code == 401


def test_credential_bearing_settings_never_reach_the_repository_snapshot(
        tmp_path, monkeypatch):
    """What the webserver holds and the UI shows of the resources (the repository snapshot)
    names the variables, never a password or a secret: DC_TO_CORE_LEDGER_URL and the client
    secret are EnvVars, resolved in the run worker only."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster_shared.serdes import serialize_value

    from dc_to_core.orchestration.project import build_definitions

    monkeypatch.setenv("DC_TO_CORE_LEDGER_URL", "postgresql+psycopg2://dc:pg-pa55word@db/x")
    monkeypatch.setenv("DC_TO_CORE_CLIENT_SECRET", "client-s3cret")
    monkeypatch.setenv("DC_TO_CORE_STATE_DIR", str(tmp_path))
    defs = build_definitions()
    repo = defs.get_repository_def()
    snapshot = serialize_value(RepositorySnap.from_def(repo))
    assert "DC_TO_CORE_LEDGER_URL" in snapshot and "DC_TO_CORE_CLIENT_SECRET" in snapshot
    assert "pg-pa55word" not in snapshot and "client-s3cret" not in snapshot
