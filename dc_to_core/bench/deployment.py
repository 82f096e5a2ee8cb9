"""dc_to_core as deployed, for the benchmark: the project's production ``dagster.yaml``
(PostgreSQL storage, queued run coordinator, pools, run retries, run monitoring) in a
DAGSTER_HOME of its own on a throwaway PostgreSQL database, and ``dagster-daemon`` as a
subprocess: its ``sync_automation`` sensor requests the night at the cron tick, its queued run
coordinator launches the run workers (through the code server it starts from
``workspace.yaml``), exactly as in production. Nothing of the night runs in this process.

The deployment's processes (daemon, code server, run workers) are sampled from ``/proc``
(``processes.ProcessTree``) for the night's CPU and the run workers' peak RSS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
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


def next_tick(lead_s: float) -> dt.datetime:
    """The first whole minute at least ``lead_s`` from now (a cron tick the daemon has had
    time to evaluate its sensor before)."""
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lead_s)
    return at.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)


class Deployment:
    """``dagster-daemon run -w workspace.yaml`` on the production instance config, its log in
    ``work/daemon.log``; a context manager (stopped, with everything it started, at exit)."""

    def __init__(self, work: Path, settings: dict[str, str], db: dict[str, str]) -> None:
        self.work = work
        self.home = work / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text((PROJECT / "dagster.yaml").read_text())
        self.instance_env = instance_environment(self.home, db)
        self.env = {**os.environ, **settings, **self.instance_env, "PYTHONUNBUFFERED": "1"}
        self.log = work / "daemon.log"
        self.popen: subprocess.Popen | None = None
        self.tree: ProcessTree | None = None

    def __enter__(self) -> Deployment:
        daemon = Path(sys.executable).parent / "dagster-daemon"
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                [str(daemon), "run", "-w", str(PROJECT / "workspace.yaml")], cwd=PROJECT,
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.tree = ProcessTree(self.popen.pid).start()
        os.environ.update(self.instance_env)  # this process reads the same instance
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tree:
            self.tree.stop()
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):  # the daemon and what it started
            os.killpg(self.popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def dead(self) -> str | None:
        """Why the daemon is not running (with its log's end), None while it is."""
        if self.popen is None or self.popen.poll() is None:
            return None
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        return f"dagster-daemon exited with code {self.popen.returncode}; {self.log} ends:\n{tail}"

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
