"""Shared fixtures. Services (PostgreSQL, Chromium) skip with a reason when absent, unless
``DC_TO_CORE_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns the skip into a failure."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dc_to_core.emulator import EmulatorConfig, EmulatorServer, load_profile
from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core_tests.support import OrgClient

REQUIRE_SERVICES = os.environ.get("DC_TO_CORE_REQUIRE_SERVICES") == "1"
PG_HOST, PG_PORT = os.environ.get("DC_TO_CORE_PG_HOST", "127.0.0.1"), 5432


def service_unavailable(reason: str) -> None:
    """Skip (or, when services are required, fail) a test whose service is missing."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason}; DC_TO_CORE_REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> dict[str, str]:
    """Connection settings of the PostgreSQL on 127.0.0.1:5432 (trust auth)."""
    try:
        socket.create_connection((PG_HOST, PG_PORT), timeout=2).close()
    except OSError as exc:
        service_unavailable(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT} ({exc})")
    return {"host": PG_HOST, "port": str(PG_PORT), "user": os.environ.get("PGUSER", "postgres"),
            "db": "test"}


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., EmulatorServer]]:
    """Start emulators with profile overrides (``fast`` base); all stopped at teardown."""
    servers: list[EmulatorServer] = []

    def start(https: bool = True, data_dir: Path | None = None,
              schema_path: Path | None = None, **overrides: object) -> EmulatorServer:
        d = data_dir or tmp_path / f"org{len(servers)}"
        server = EmulatorServer(EmulatorConfig(d, https=https, schema_path=schema_path,
                                               profile=load_profile("fast", **overrides)))
        servers.append(server.start())
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """One emulator for read-mostly tests, seeded with a small Data Cloud dataset."""
    d = tmp_path_factory.mktemp("shared_org")
    server = EmulatorServer(EmulatorConfig(d, profile=load_profile("fast", dc_v2_batch_rows=700,
                                                                   dc_sql_max_rows=900)))
    server.start()
    assert server.org is not None
    seed_datacloud(server.org.storage, SeedSpec(accounts=40, opportunities=3000, bad_share=0.05,
                                                seed=7))
    yield server
    server.stop()


@pytest.fixture
def org(shared_server: EmulatorServer) -> OrgClient:
    return OrgClient(shared_server)


def throwaway_database(postgres: dict[str, str]) -> contextlib.AbstractContextManager[dict]:
    """A PostgreSQL database created for the caller and dropped afterwards."""
    from dc_to_core.bench.deployment import throwaway_database as database

    return database(postgres, prefix="dc_to_core_test")


def postgres_storage(db: dict[str, str]) -> dict:
    """A Dagster instance's ``storage`` setting on the database ``db`` (``pg_database``)."""
    return {"postgres": {"postgres_db": {
        "username": db["user"], "hostname": db["host"], "db_name": db["db"],
        "port": int(db["port"]), "password": "", "scheme": "postgresql+psycopg2"}}}


@pytest.fixture
def pg_database(postgres: dict[str, str]) -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL database (created and dropped around the test)."""
    with throwaway_database(postgres) as db:
        yield db
