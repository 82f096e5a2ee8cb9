"""dc_to_core as deployed, for the benchmark: the project's production ``dagster.yaml``
(PostgreSQL storage, queued run coordinator, pools, run retries, run monitoring) in a
DAGSTER_HOME of its own on a throwaway PostgreSQL database, a long-lived code server
(``dagster code-server start``) and ``dagster-daemon run -w workspace_production.yaml`` as
subprocesses: the daemon's ``sync_automation`` sensor requests the night at the cron tick, its
queued run coordinator launches the run workers through the code server, exactly as in
production. Nothing of the night runs in this process.

The deployment's processes (code server, daemon, run workers) are sampled from ``/proc``
(``processes.ProcessTree``) for the night's CPU and the run workers' peak RSS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg

from .processes import ProcessTree

PROJECT = Path(__file__).resolve().parents[2]  # dagster.yaml and workspace.yaml
ACTIVE = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
          dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
          dg.DagsterRunStatus.CANCELING}


def postgres_settings(env: dict[str, str] | os._Environ = os.environ) -> dict[str, str]:
    """The PostgreSQL server the throwaway database goes on: ``DAGSTER_PG_HOST``/``_PORT``/
    ``_USERNAME``/``_PASSWORD`` when set (as a deployment has them), else 127.0.0.1:5432 as
    user ``postgres``."""
    return {"host": env.get("DAGSTER_PG_HOST", "127.0.0.1"),
            "port": env.get("DAGSTER_PG_PORT", "5432"),
            "user": env.get("DAGSTER_PG_USERNAME", env.get("PGUSER", "postgres")),
            "password": env.get("DAGSTER_PG_PASSWORD", "")}


@contextlib.contextmanager
def throwaway_database(pg: dict[str, str], prefix: str = "dc_to_core_bench"
                       ) -> Iterator[dict[str, str]]:
    """A database created on ``pg``'s server for the caller, dropped afterwards."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"],
                                 password=pg.get("password") or None, dbname="postgres")
    except psycopg2.OperationalError as exc:
        raise RuntimeError(
            f"the deployed benchmark needs a PostgreSQL server for its Dagster instance and "
            f"cannot reach {pg['user']}@{pg['host']}:{pg['port']} ({str(exc).strip()}); set "
            f"DAGSTER_PG_HOST, DAGSTER_PG_PORT, DAGSTER_PG_USERNAME and DAGSTER_PG_PASSWORD "
            f"to one where that user may create databases") from None
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**pg, "db": name}
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def instance_environment(home: Path, db: dict[str, str]) -> dict[str, str]:
    """What the production ``dagster.yaml`` reads from the environment."""
    return {"DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": db["host"],
            "DAGSTER_PG_PORT": db["port"], "DAGSTER_PG_DB": db["db"],
            "DAGSTER_PG_USERNAME": db["user"], "DAGSTER_PG_PASSWORD": db.get("password", "")}


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def next_tick(lead_s: float) -> dt.datetime:
    """The first whole minute at least ``lead_s`` from now (a cron tick the daemon has had
    time to evaluate its sensor before)."""
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lead_s)
    return at.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)


class Deployment:
    """A code server and ``dagster-daemon run -w workspace_production.yaml`` on the production
    instance config, their logs in ``work/code_server.log`` and ``work/daemon.log``; a
    context manager (stopped, with everything they started, at exit)."""

    def __init__(self, work: Path, settings: dict[str, str], db: dict[str, str]) -> None:
        self.work = work
        self.home = work / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text((PROJECT / "dagster.yaml").read_text())
        self.instance_env = instance_environment(self.home, db)
        self.port = free_port()
        self.env = {**os.environ, **settings, **self.instance_env, "PYTHONUNBUFFERED": "1",
                    "DC_TO_CORE_CODE_SERVER_HOST": "127.0.0.1",
                    "DC_TO_CORE_CODE_SERVER_PORT": str(self.port)}
        self.log = work / "daemon.log"
        self.code_log = work / "code_server.log"
        self.popen: subprocess.Popen | None = None
        self.code_server: subprocess.Popen | None = None
        self.tree: ProcessTree | None = None

    def _start(self, command: list[str], log: Path) -> subprocess.Popen:
        with log.open("wb") as out:
            return subprocess.Popen(command, cwd=PROJECT, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def __enter__(self) -> Deployment:
        bin_dir = Path(sys.executable).parent
        self.code_server = self._start(
            [str(bin_dir / "dagster"), "code-server", "start", "-m", "dc_to_core.definitions",
             "-h", "127.0.0.1", "-p", str(self.port), "--location-name", "dc_to_core"],
            self.code_log)
        try:
            self._wait_serving()
            self.popen = self._start([str(bin_dir / "dagster-daemon"), "run", "-w",
                                      str(PROJECT / "workspace_production.yaml")], self.log)
        except BaseException:
            self.__exit__()
            raise
        self.tree = ProcessTree(self.code_server.pid, self.popen.pid).start()
        os.environ.update(self.instance_env)  # this process reads the same instance
        return self

    def _wait_serving(self, timeout_s: float = 180) -> None:
        """Until the code server answers a health check (its definitions loaded), so the
        daemon's first load of the workspace finds the code location."""
        check = [str(Path(sys.executable).parent / "dagster"), "api", "grpc-health-check",
                 "-p", str(self.port), "-h", "127.0.0.1"]
        deadline = time.monotonic() + timeout_s
        while subprocess.run(check, capture_output=True, env=self.env,
                             timeout=60).returncode != 0:
            assert self.code_server is not None
            if self.code_server.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.code_log.read_text(errors="replace").splitlines()[-30:])
                raise RuntimeError(f"the code server did not start serving on port "
                                   f"{self.port}; {self.code_log} ends:\n{tail}")
            time.sleep(1.0)

    def __exit__(self, *exc: object) -> None:
        if self.tree:
            self.tree.stop()
        for proc in (self.popen, self.code_server):  # the daemon first: it launches no more
            if proc is None:
                continue
            with contextlib.suppress(ProcessLookupError):  # it and what it started
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def dead(self) -> str | None:
        """Why the daemon or the code server is not running (with its log's end), None while
        both are."""
        for name, proc, log in (("dagster-daemon", self.popen, self.log),
                                ("the code server", self.code_server, self.code_log)):
            if proc is not None and proc.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                return f"{name} exited with code {proc.returncode}; {log} ends:\n{tail}"
        return None

    def wait_ready(self, tick: dt.datetime, timeout_s: float = 300) -> None:
        """Until the daemon has evaluated ``sync_automation`` once (so the cron tick is seen
        passing), then until ``tick``. Fails if the tick came first."""
        deadline = time.monotonic() + timeout_s
        while "sync_automation" not in self.log.read_text(errors="replace"):
            if (why := self.dead()) or time.monotonic() > deadline:
                raise RuntimeError(why or f"dagster-daemon did not evaluate sync_automation "
                                   f"within {timeout_s:.0f} s; see {self.log}")
            time.sleep(0.5)
        late = (dt.datetime.now(dt.UTC) - tick).total_seconds()
        if late > 0:
            raise RuntimeError(f"dagster-daemon took until {late:.0f} s after the night's "
                               f"tick to evaluate its sensor; the night would not start")
        time.sleep(-late)

    def wait_for_night(self, expected: set[tuple[str, str]], since: dt.datetime,
                       quiet_s: float, timeout_s: float,
                       on_poll: Callable[[list[dg.RunRecord]], None] = lambda _: None
                       ) -> list[dg.RunRecord]:
        """The night's runs (created since ``since``), once every expected (asset,
        partition) has succeeded (the automation's runs are of the implicit asset job), or
        nothing has run for ``quiet_s`` (the automation and run retries had their chance:
        some failed)."""
        deadline = time.monotonic() + timeout_s
        with self.instance() as instance:
            quiet_since = time.monotonic()
            while True:
                records = instance.get_run_records(dg.RunsFilter(created_after=since))
                on_poll(records)
                done = {(key.to_user_string(), r.dagster_run.tags.get("dagster/partition"))
                        for r in records if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS
                        for key in r.dagster_run.asset_selection or ()}
                active = any(r.dagster_run.status in ACTIVE for r in records)
                if expected <= done and not active:
                    return records
                if active:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > quiet_s:
                    return records
                if why := self.dead():
                    raise RuntimeError(why)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the night did not finish within {timeout_s:.0f} s: "
                                       f"{len(done)} of {len(expected)} partitions loaded; "
                                       f"see {self.log}")
                time.sleep(1.0)


def run_status(records: list[dg.RunRecord]) -> str:
    """``3 runs done, 2 running, 1 queued`` (for the progress line)."""
    by: dict[str, int] = {}
    for r in records:
        status = r.dagster_run.status
        word = ("done" if status == dg.DagsterRunStatus.SUCCESS else
                "queued" if status in (dg.DagsterRunStatus.QUEUED,
                                       dg.DagsterRunStatus.NOT_STARTED) else
                "running" if status in ACTIVE else "failed")
        by[word] = by.get(word, 0) + 1
    return "runs: " + ", ".join(f"{n} {w}" for w, n in sorted(by.items())) if by else "no runs yet"
