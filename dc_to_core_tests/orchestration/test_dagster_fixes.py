"""The pool-claim busy wait fix: a step waiting for a slot sleeps until its next check."""

from __future__ import annotations

import time
from types import SimpleNamespace

from dagster._core.execution.plan import instance_concurrency_context as icc

from dc_to_core.orchestration import dagster_fixes


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
