"""Resources from the environment: the same code path for the emulator and a real org.

| variable | meaning (default) |
|---|---|
| DC_TO_CORE_LOGIN_URL | login / My Domain URL (https://127.0.0.1:8443, the local emulator) |
| DC_TO_CORE_CLIENT_ID | connected app consumer key (the emulator's) |
| DC_TO_CORE_CLIENT_SECRET | client credentials secret — read at run time via EnvVar |
| DC_TO_CORE_PRIVATE_KEY | PEM key for the JWT bearer flow (EnvVar); with DC_TO_CORE_USERNAME |
| DC_TO_CORE_CA_BUNDLE | CA file to trust (the emulator's tls/cert.pem) |
| DC_TO_CORE_VERIFY_TLS | false only for a throwaway emulator (true) |
| DC_TO_CORE_DC_API | query-sql or v2 (query-sql) |
| DC_TO_CORE_STATE_DIR | the worker's own files: intermediates, extracts (DAGSTER_HOME/dc_to_core) |
| DC_TO_CORE_QUARANTINE_URL | quarantine files for every worker: path or fsspec URL (state dir) |
| DC_TO_CORE_LEDGER_URL | the ledger's SQLAlchemy URL (the instance's PostgreSQL, else sqlite) |
| DC_TO_CORE_HTTP_TIMEOUT_S | per-request timeout; a slower answer is retried (120) |
| DC_TO_CORE_TIME_SCALE | the emulator's time scale, so client waits shrink with it (1) |
| DC_TO_CORE_LIMIT_SHARE | use the org's daily batches and API requests up to this share (0.8) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from ..salesforce.auth import SalesforceAuth
from ..salesforce.bulk import BulkApi
from ..salesforce.bulk_csv import CHUNK_ROWS
from ..salesforce.datacloud import DataCloud
from ..salesforce.rest import RestApi
from ..sync.ledger import Ledger
from .io_manager import ArrowIOManager
from .settings import PipelineSettings, env_number, limit_share

EMULATOR_URL = "https://127.0.0.1:8443"
EMULATOR_CLIENT_ID = "dc-to-core-emulator"  # the local emulator's connected app (its default)


class SalesforceAuthResource(dg.ConfigurableResource, SalesforceAuth):
    """The org's login as a Dagster resource: secrets arrive as ``dg.EnvVar`` and are read in
    the run worker only."""

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()


class DataCloudResource(dg.ConfigurableResource, DataCloud):
    """Data Cloud reads (``salesforce.datacloud``) as a Dagster resource."""

    auth: SalesforceAuthResource


class BulkApiResource(dg.ConfigurableResource, BulkApi):
    """Bulk API 2.0 (``salesforce.bulk``) as a Dagster resource."""

    auth: SalesforceAuthResource


class RestApiResource(dg.ConfigurableResource, RestApi):
    """The REST API (``salesforce.rest``) as a Dagster resource."""

    auth: SalesforceAuthResource


class LedgerResource(dg.ConfigurableResource, Ledger):
    """The load ledger (``sync.ledger``) at ``url`` (a URL may carry a password: give it as
    EnvVar), or, with ``url`` empty, in the Dagster instance's PostgreSQL database (its
    ``DAGSTER_PG_*`` settings, the password as EnvVar)."""

    url: str = ""
    pg_host: str | None = None
    pg_port: str | None = None
    pg_db: str | None = None
    pg_username: str | None = None
    pg_password: str | None = Field(default=None, repr=False)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.dispose()

    def engine_url(self) -> str | sa.URL:
        if self.url:
            return self.url
        if not (self.pg_host and self.pg_db):
            raise ValueError("the ledger needs DC_TO_CORE_LEDGER_URL, or the Dagster "
                             "instance's DAGSTER_PG_HOST and DAGSTER_PG_DB")
        return sa.URL.create("postgresql+psycopg2", username=self.pg_username or None,
                             password=self.pg_password or None, host=self.pg_host,
                             port=int(self.pg_port) if self.pg_port else None,
                             database=self.pg_db)


def state_dir(env: Mapping[str, str]) -> Path:
    if env.get("DC_TO_CORE_STATE_DIR"):
        return Path(env["DC_TO_CORE_STATE_DIR"])
    if env.get("DAGSTER_HOME"):
        return Path(env["DAGSTER_HOME"]) / "dc_to_core"
    return Path(".dc_to_core").resolve()


def _secret(env: Mapping[str, str], name: str, resolve: bool) -> object:
    """An EnvVar (resolved by Dagster at run time) or, outside Dagster, the value itself."""
    if not resolve:
        return dg.EnvVar(name)
    if not env.get(name):
        raise ValueError(f"set {name} (it is read from the environment, never from files)")
    return env[name]


def ledger(env: Mapping[str, str], state: Path, resolve: bool = False) -> LedgerResource:
    """Where the ledger lives: ``DC_TO_CORE_LEDGER_URL`` if set; else the Dagster instance's
    PostgreSQL when ``DAGSTER_PG_HOST`` is set (the shipped ``dagster.yaml`` reads the
    instance's database from these variables; an instance configured otherwise, e.g. with a
    ``postgres_url``, sets ``DC_TO_CORE_LEDGER_URL``), so every run worker
    of a multi-host deployment finds the jobs a crashed run submitted; else SQLite in the
    state dir. Credentials stay EnvVars: the repository snapshot and the run config the UI
    shows hold the variables' names, never their values."""
    if env.get("DC_TO_CORE_LEDGER_URL"):
        return LedgerResource(url=_secret(env, "DC_TO_CORE_LEDGER_URL", resolve))
    if env.get("DAGSTER_PG_HOST"):
        names = ("host", "port", "db", "username", "password")
        return LedgerResource(**{f"pg_{n}": (env.get(f"DAGSTER_PG_{n.upper()}") if resolve
                                             else dg.EnvVar(f"DAGSTER_PG_{n.upper()}"))
                                 for n in names if env.get(f"DAGSTER_PG_{n.upper()}")})
    return LedgerResource(url=f"sqlite:///{state / 'ledger.db'}")


def salesforce_auth(env: Mapping[str, str], resolve: bool = False) -> SalesforceAuthResource:
    ca = env.get("DC_TO_CORE_CA_BUNDLE")
    if ca is None and Path(".emulator/tls/cert.pem").exists() and not env.get(
            "DC_TO_CORE_LOGIN_URL"):
        ca = str(Path(".emulator/tls/cert.pem").resolve())  # the local emulator's default dir
    jwt = bool(env.get("DC_TO_CORE_PRIVATE_KEY"))
    return SalesforceAuthResource(
        login_url=env.get("DC_TO_CORE_LOGIN_URL", EMULATOR_URL),
        client_id=env.get("DC_TO_CORE_CLIENT_ID", EMULATOR_CLIENT_ID),
        client_secret=None if jwt else _secret(env, "DC_TO_CORE_CLIENT_SECRET", resolve),
        private_key=_secret(env, "DC_TO_CORE_PRIVATE_KEY", resolve) if jwt else None,
        username=env.get("DC_TO_CORE_USERNAME"),
        ca_bundle=ca, verify_tls=env.get("DC_TO_CORE_VERIFY_TLS", "true").lower() != "false",
        api_version=env.get("DC_TO_CORE_API_VERSION", "64.0"),
        timeout_s=float(env.get("DC_TO_CORE_HTTP_TIMEOUT_S", "120")))


def resources_from_env(env: Mapping[str, str] | None = None, resolve: bool = False
                       ) -> dict[str, object]:
    """The pipeline's resources. ``resolve=True`` reads secrets now (for use outside a Dagster
    run: the plan command, the demo); otherwise they are EnvVars resolved at run time."""
    env = os.environ if env is None else env
    state = state_dir(env)
    scale = env_number(env, "DC_TO_CORE_TIME_SCALE", "1")
    auth = salesforce_auth(env, resolve)
    return {
        "datacloud": DataCloudResource(auth=auth, api=env.get("DC_TO_CORE_DC_API",
                                                              "query-sql")),  # type: ignore[arg-type]
        "bulk": BulkApiResource(auth=auth, poll_initial_s=max(0.02, 1.0 / scale),
                                poll_max_s=max(0.2, 10.0 / scale),
                                chunk_rows=int(env_number(env, "DC_TO_CORE_CHUNK_ROWS",
                                                          str(CHUNK_ROWS)))),
        "core": RestApiResource(auth=auth),
        "ledger": ledger(env, state, resolve),
        "settings": PipelineSettings(state_dir=str(state), time_scale=scale,
                                     quarantine_url=env.get("DC_TO_CORE_QUARANTINE_URL"),
                                     limit_share=limit_share(env),
                                     lease_wait_s=env_number(env, "DC_TO_CORE_LEASE_WAIT_S",
                                                             "3600", zero_ok=True)),
        "arrow_io": ArrowIOManager(base_dir=str(state / "intermediate")),
    }
