"""The pool-claim busy wait fix: a step waiting for a slot sleeps until its next check."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import dagster as dg
import pytest
import sqlalchemy.exc
from dagster._core.execution.plan import instance_concurrency_context as icc

from dc_to_core.orchestration import dagster_fixes
from dc_to_core_tests.conftest import postgres_storage


def test_a_waiting_step_sleeps_until_its_next_claim_check():
    dagster_fixes.apply()
    waiting = SimpleNamespace(_pending_claims={"load"},
                              _pending_timeouts={"load": time.time() + 1.5})
    interval = icc.InstanceConcurrencyContext.interval_to_next_pending_claim_check(waiting)  # type: ignore[arg-type]
    assert 1.0 < interval <= 1.5  # Dagster 1.13 answers min(0, …) = 0: no sleep at all
    due = SimpleNamespace(_pending_claims={"load"}, _pending_timeouts={"load": 0.0})
    assert icc.InstanceConcurrencyContext.interval_to_next_pending_claim_check(due) == 0.0  # type: ignore[arg-type]
    assert icc.MAX_CONCURRENCY_CLAIM_BLOCKED_INTERVAL <= dagster_fixes.MAX_BLOCKED_INTERVAL_S
    assert dagster_fixes.apply() is False  # once


def test_the_fix_is_applied_by_the_run_executor_not_by_loading_the_definitions(tmp_path):
    """The webserver and the daemon load the definitions unpatched; a run worker's executor
    (``execute_job`` of a reconstructable job, as ``dagster api execute_run`` does) patches."""
    (tmp_path / "probe_location.py").write_text(textwrap.dedent("""
        import dagster as dg
        from dc_to_core.orchestration import dagster_fixes

        @dg.op
        def one() -> None: ...

        @dg.job(executor_def=dagster_fixes.in_process_executor)
        def probe() -> None:
            one()
        """))
    code = textwrap.dedent("""
        import dagster as dg
        from dagster._core.execution.plan import instance_concurrency_context as icc
        original = icc.InstanceConcurrencyContext.interval_to_next_pending_claim_check
        import dc_to_core.definitions  # what the webserver and the daemon load
        assert icc.InstanceConcurrencyContext.interval_to_next_pending_claim_check is original
        import probe_location
        with dg.instance_for_test() as instance:
            result = dg.execute_job(dg.reconstructable(probe_location.probe), instance)
        assert result.success
        assert icc.InstanceConcurrencyContext.interval_to_next_pending_claim_check is not original
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_code_location_runs_its_jobs_on_the_patching_executor():
    from dc_to_core.orchestration.project import build_definitions

    defs = build_definitions()
    for job in ("load_Account", "load_Opportunity", "__ASSET_JOB"):
        assert defs.resolve_job_def(job).executor_def is dagster_fixes.in_process_executor


@pytest.mark.postgres
def test_a_pool_limit_another_run_just_created_does_not_fail_the_run(pg_database):
    """What the loser of two runs reaching a new pool at once does: it initialises a limit that
    exists by then. Unpatched, Dagster's fallback UPDATE runs in the transaction its failed
    INSERT aborted (PostgreSQL refuses it); patched, the existing limit is taken as done."""
    with dg.instance_for_test(overrides={"storage": postgres_storage(pg_database),
                                         "concurrency": {"pools": {"default_limit": 2}}}
                              ) as instance:
        events = instance.event_log_storage
        original = dagster_fixes._initialize
        assert original(events, "bulk_api_deletes")  # the winner creates the limit
        if dagster_fixes.needs_limit_fix():  # this Dagster has the bug: show it, then the fix
            with pytest.raises(sqlalchemy.exc.DBAPIError):
                original(events, "bulk_api_deletes")
        dagster_fixes.apply_limit_fix()
        assert events.initialize_concurrency_limit_to_default("bulk_api_deletes")
        assert events.get_concurrency_info("bulk_api_deletes").slot_count == 2
