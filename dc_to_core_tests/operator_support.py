"""The operator's stack for end-to-end tests: an emulated org, ``dagster-webserver`` and
``dagster-daemon`` as subprocesses on free ports, a DAGSTER_HOME with the project's own
``dagster.yaml`` (PostgreSQL storage, queued run coordinator) on a throwaway database.

Everything is started here and stopped at teardown; logs of every process stay in the
stack's directory so a failing test can say what the daemon or a run worker said.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from dc_to_core.bench.deployment import free_port
from dc_to_core.emulator import load_profile
from dc_to_core.emulator.schema import load_schema
from dc_to_core.emulator.seed import SeedReport, SeedSpec, seed_datacloud
from dc_to_core.emulator.server import DEFAULT_CLIENT_SECRET, SpawnedEmulator, spawn_emulator
from dc_to_core.emulator.storage import Storage
from dc_to_core.orchestration.resources import resources_from_env
from dc_to_core.sync.plan import compute_plan, save_plan
from dc_to_core.sync.spec import load_syncs

ROOT = Path(__file__).resolve().parents[1]


def script(name: str) -> str:
    """A console script of this interpreter's environment (the venv the tests run in)."""
    return str(Path(sys.executable).parent / name)


def wait_for(what: str, probe: Callable[[], object], timeout: float, every: float = 0.5,
             alive: Callable[[], str | None] = lambda: None) -> object:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after timeout
    (or at once if ``alive`` reports a dead process)."""
    deadline = time.monotonic() + timeout
    while True:
        dead = alive()
        if dead:
            raise AssertionError(f"waiting for {what}: {dead}")
        try:
            value = probe()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(every)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def dead(self) -> str | None:
        if self.popen.poll() is None:
            return None
        return f"{self.name} exited with code {self.popen.returncode}; its log ends:\n" \
               + self.tail()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to the whole process group; after it exits (or ``timeout``), SIGKILL to
        whatever of the group is left (a code server, a run worker)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()


@dataclass
class OperatorStack:
    work: Path
    emulator: SpawnedEmulator
    env: dict[str, str]
    seed: SeedReport
    webserver_url: str = ""
    processes: list[Process] = field(default_factory=list)

    def spawn(self, name: str, *cmd: str) -> Process:
        """A process in a session of its own, so stopping it also stops what it started
        (the webserver's code server, the daemon's run workers)."""
        log = self.work / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def alive(self) -> str | None:
        if self.emulator.process.poll() is not None:
            return f"the emulator exited with code {self.emulator.process.returncode}"
        return next((d for p in self.processes if (d := p.dead())), None)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.tail()}" for p in self.processes)

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()
        self.emulator.stop()


def seed_org(work: Path, spec: SeedSpec) -> SeedReport:
    return seed_datacloud(Storage(work / "org", load_schema()), spec)


def stack_environment(work: Path, emulator: SpawnedEmulator, time_scale: float,
                      pg: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """The environment of the webserver, the daemon and so of every run worker."""
    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())  # the shipped production
    config["run_monitoring"].update(poll_interval_seconds=3,       # config; monitoring polls
                                    free_slots_after_run_end_seconds=3)  # faster (test time)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return {**os.environ, "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": pg["host"], "DAGSTER_PG_PORT": pg["port"],
            "DAGSTER_PG_DB": pg["db"], "DAGSTER_PG_USERNAME": pg["user"],
            "DAGSTER_PG_PASSWORD": pg.get("password", ""),
            "DC_TO_CORE_LOGIN_URL": emulator.url, "DC_TO_CORE_CA_BUNDLE": str(emulator.ca_file),
            "DC_TO_CORE_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "DC_TO_CORE_TIME_SCALE": str(time_scale),
            "DC_TO_CORE_STATE_DIR": str(work / "state"), "DC_TO_CORE_PLANS": str(work / "plans"),
            "PYTHONUNBUFFERED": "1", **extra}


def plan(env: dict[str, str], partitions: dict[str, int]) -> None:
    live = resources_from_env(env, resolve=True)
    for spec in load_syncs().planned():
        save_plan(compute_plan(live["datacloud"], spec, partitions[spec.name]),  # type: ignore[arg-type]
                  Path(env["DC_TO_CORE_PLANS"]))


def start_stack(work: Path, pg: dict[str, str], spec: SeedSpec, partitions: dict[str, int],
                profile: str = "fast", extra_env: dict[str, str] | None = None
                ) -> OperatorStack:
    """Seed an org, start it, plan the syncs, then the webserver and the daemon."""
    report = seed_org(work, spec)
    emulator = spawn_emulator(work / "org", "--profile", profile)
    try:
        env = stack_environment(work, emulator, load_profile(profile).time_scale, pg,
                                extra_env or {})
    except BaseException:
        emulator.stop()
        raise
    stack = OperatorStack(work, emulator, env, report)
    try:
        plan(env, partitions)
        port = free_port()
        stack.webserver_url = f"http://127.0.0.1:{port}"
        stack.spawn("webserver", script("dagster-webserver"), "-h", "127.0.0.1",
                    "-p", str(port), "-w", str(ROOT / "workspace.yaml"))
        wait_for("the webserver to answer", lambda: httpx.get(
            f"{stack.webserver_url}/server_info", timeout=5).status_code == 200, 180,
            alive=stack.alive)
        stack.spawn("daemon", script("dagster-daemon"), "run", "-w",
                    str(ROOT / "workspace.yaml"))
    except BaseException:
        stack.stop()
        raise
    return stack
