"""The chaos matrix, process faults: the load process SIGKILLed between upload and results,
and the emulator restarted mid-run on its data dir. The ledger makes the retried run collect
the job already submitted: nothing is uploaded twice, and every row is accounted for."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import dagster as dg

from dc_to_core.emulator import EmulatorConfig, EmulatorServer, load_profile
from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core.emulator.server import DEFAULT_CLIENT_SECRET
from dc_to_core_tests.pipeline_support import (
    Project,
    assert_reconciled,
    make_project,
    outcomes,
)
from dc_to_core_tests.test_pipeline import sent_keys


def wait_for_closed_job(server: EmulatorServer, obj: str, timeout: float = 60) -> None:
    """Until the org holds a closed job of ``obj`` it did not hold when called (uploaded; on
    record in the ledger since its creation)."""
    before = ingest_jobs(server, obj)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ingest_jobs(server, obj) - before:
            return
        time.sleep(0.02)
    raise AssertionError(f"the load never closed a job of {obj}")


def kill_load_after_upload(project: Project, home: Path) -> int | None:
    """Run the Opportunity partition p00 in a process of its own on the instance in ``home``,
    SIGKILL it once its load has closed a job (others may be open, or not created yet); its
    return code."""
    env = {**os.environ, **project.env, "DAGSTER_HOME": str(home),
           "DC_TO_CORE_CLIENT_SECRET": DEFAULT_CLIENT_SECRET}
    child = subprocess.Popen(project.run_apart_command("Opportunity", "p00"), env=env)
    try:
        wait_for_closed_job(project.server, "Opportunity")
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    return child.returncode


def fail_killed_runs(instance: dg.DagsterInstance) -> None:
    """Mark the killed run failed, as run monitoring does under the daemon."""
    for killed in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        instance.report_run_failed(killed)


def ingest_jobs(server: EmulatorServer, obj: str) -> set[str]:
    """The closed jobs of ``obj``: those the org processes (a job the kill left open before
    its upload ended is never processed)."""
    return {r[0] for r in server.org.storage.reader().execute(
        "SELECT id FROM ingest_job WHERE object=? AND closed_emu IS NOT NULL", (obj,))}


def uploaded_once(server: EmulatorServer, obj: str) -> bool:
    """Whether every row the org processed for ``obj`` came in one job only (a partition of
    1,500 rows goes as several jobs side by side: a resumed load sends only those the killed
    one had not)."""
    keys = sent_keys(server, ingest_jobs(server, obj))
    return len(keys) == len(set(keys))


def _org(make_server, opportunities: int = 1_500, **profile: object) -> EmulatorServer:
    # chunks queue 600 emulated seconds after close (3 s wall): results come late
    server = make_server(time_scale=200.0, job_start_latency_s=600.0, **profile)
    seed_datacloud(server.org.storage, SeedSpec(accounts=10, opportunities=opportunities,
                                                bad_share=0.01, seed=8))
    return server


def test_load_killed_after_upload_resumes_without_uploading_twice(make_server, tmp_path):
    # several jobs side by side (1,500 rows): the kill falls after one job's close, maybe
    # during the next one's upload (left open, never processed: aborted and sent anew)
    server = _org(make_server)
    project = make_project(server, tmp_path, partitions=1)
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        results = [project.run("Account", "p00", instance)]
    assert kill_load_after_upload(project, home) == -signal.SIGKILL
    submitted = len(ingest_jobs(server, "Opportunity"))  # closed: the org processes them
    assert submitted >= 1
    with dg.DagsterInstance.from_config(str(home)) as instance:  # the run retry, once the
        fail_killed_runs(instance)
        retried = project.run("Opportunity", "p00", instance)
    assert project.materialization(retried)["resumed_jobs"] == submitted
    assert uploaded_once(server, "Opportunity")  # nothing uploaded twice
    assert_reconciled(project, outcomes(project, [*results, retried]))


def test_emulator_restarted_mid_run_with_its_data_dir(make_server, tmp_path):
    first = _org(make_server)
    project = make_project(first, tmp_path, partitions=1)
    with dg.instance_for_test() as instance:
        results = [project.run("Account", "p00", instance)]
        thread = threading.Thread(target=lambda: results.append(
            project.run("Opportunity", "p00", instance)))
        thread.start()
        wait_for_closed_job(first, "Opportunity")
        port = int(first.url.rsplit(":", 1)[1])
        first.stop()
        time.sleep(0.5)  # the org is down for a moment
        config = EmulatorConfig(first.config.data_dir, port=port,
                                profile=load_profile("fast", time_scale=200.0))
        with EmulatorServer(config) as second:
            thread.join(timeout=300)
            assert not thread.is_alive()
            project.server = second
            assert_reconciled(project, outcomes(project, results))
            assert uploaded_once(second, "Opportunity")  # collected, not re-uploaded


def test_a_night_killed_after_the_org_applied_its_rows_leaves_no_stale_state(make_server,
                                                                             tmp_path):
    """Night 1 loads everything. Night 2 sends 5 changed rows and is SIGKILLed after the upload,
    before it reads the results or writes the state; the org applies the job anyway. Then the
    5 rows change back in Data Cloud. Night 3 must see that Core holds the other values (the
    rows were marked before they went), send them, and end with Core equal to the source."""
    server = make_server(time_scale=200.0, job_start_latency_s=600.0)  # results come late
    seed_datacloud(server.org.storage, SeedSpec(accounts=10, opportunities=1_500, seed=8))
    project = make_project(server, tmp_path, partitions=1)
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for sync in ("Account", "Opportunity"):
            assert project.run(sync, "p00", instance).success
    dc = server.org.storage.dc
    keys = [r[0] for r in dc.execute('SELECT "ExternalId__c" FROM "Opportunity_Staging__dlm" '
                                     'WHERE "Name__c" IS NOT NULL ORDER BY 1 LIMIT 5')]
    marks = ",".join("?" * len(keys))
    names = dict(dc.execute('SELECT "ExternalId__c", "Name__c" FROM '
                            f'"Opportunity_Staging__dlm" WHERE "ExternalId__c" IN ({marks})',
                            keys).fetchall())
    dc.execute('UPDATE "Opportunity_Staging__dlm" SET "Name__c" = \'night 2\' WHERE '
               f'"ExternalId__c" IN ({marks})', keys)
    assert kill_load_after_upload(project, home) == -signal.SIGKILL
    bulk = project.live["bulk"]
    jobs = [r[0] for r in server.org.storage.reader().execute(
        "SELECT id FROM ingest_job WHERE object='Opportunity' ORDER BY seq DESC LIMIT 1")]
    bulk.wait(jobs)  # the org applies what the killed night sent
    core = bulk.read_keys("Opportunity", ["External_Id__c", "Name"], "External_Id__c", keys)
    assert set(core.column("Name").to_pylist()) == {"night 2"}
    for key, name in names.items():  # ... and the source changes back
        dc.execute('UPDATE "Opportunity_Staging__dlm" SET "Name__c" = ? WHERE '
                   '"ExternalId__c" = ?', (name, key))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        fail_killed_runs(instance)
        third = project.run("Opportunity", "p00", instance)
    meta = project.materialization(third)
    assert meta["rows_sent"] == 5 and meta["rows_retried"] == 5
    assert all(project.checks(third).values()), project.checks(third)
    core = bulk.read_keys("Opportunity", ["External_Id__c", "Name"], "External_Id__c", keys)
    assert dict(zip(core.column("External_Id__c").to_pylist(), core.column("Name").to_pylist(),
                    strict=True)) == names
