"""The deployment's process sampling and the deployed bench's plumbing (no daemon here: the
smoke bench runs one)."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import dagster as dg
import pytest

from dc_to_core.bench.deployment import run_status, throwaway_database
from dc_to_core.bench.processes import ProcessTree, kind_of

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n" \
       "time.sleep(30)"


def test_a_tree_counts_its_descendants_cpu_from_the_mark_and_their_peak_memory():
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys; subprocess.run([sys.executable, "
                               f"'-c', {BURN!r}])"])
    try:
        tree = ProcessTree(parent.pid, interval_s=0.05).start()
        tree.mark()  # before the grandchild burns: its CPU counts
        deadline = time.monotonic() + 20
        while tree.cpu_s() < 0.6 and time.monotonic() < deadline:
            time.sleep(0.1)
        tree.stop()
    finally:
        parent.kill()
    assert len(tree.seen) == 2  # the parent and the child it started
    assert 0.6 <= tree.cpu_s() < 5
    assert min(s.peak_rss_mb for s in tree.seen.values()) > 1
    assert tree.summary()["deployment_cpu_s_by_process"] == {"other": pytest.approx(
        tree.cpu_s(), abs=0.01)}


def test_processes_of_a_deployment_are_told_apart_by_their_command_lines():
    assert kind_of("python dagster-daemon run -w workspace.yaml") == "daemon"
    assert kind_of("python -m dagster api grpc --lazy-load-user-code") == "code server"
    assert kind_of("python -c from multiprocessing.spawn import spawn_main; spawn_main()",
                   parent="code server") == "run worker"
    assert kind_of("python -m dagster api execute_run {}") == "run worker"
    assert kind_of("python -c from multiprocessing.resource_tracker import main") == "other"


def test_run_status_counts_the_night_s_runs():
    def record(status: dg.DagsterRunStatus) -> SimpleNamespace:
        return SimpleNamespace(dagster_run=SimpleNamespace(status=status))

    s = dg.DagsterRunStatus
    assert run_status([]) == "no runs yet"
    assert run_status([record(s.SUCCESS), record(s.SUCCESS), record(s.STARTED),
                       record(s.QUEUED), record(s.FAILURE)]) == \
        "runs: 2 done, 1 failed, 1 queued, 1 running"


def test_an_unreachable_postgres_says_what_to_set():
    with pytest.raises(RuntimeError, match="DAGSTER_PG_HOST, DAGSTER_PG_PORT"), \
            throwaway_database({"host": "127.0.0.1", "port": "1", "user": "postgres"}):
        pass
