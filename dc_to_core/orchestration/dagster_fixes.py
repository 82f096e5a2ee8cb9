"""A fix for a Dagster bug that costs this pipeline most of its client CPU.

Dagster 1.13's in-process executor asks ``InstanceConcurrencyContext`` how long to sleep
before re-checking a step that waits for a pool slot. The answer is ``min([0, *due_times])``,
which is never positive, so the executor never sleeps: every run whose load step waits for the
``bulk_api`` pool spins a CPU core polling its SQLite/PostgreSQL concurrency tables
(measured: 138 of 250 CPU seconds of a 500,000-row night; upstream saw the same in
dagster-io/dagster#20367, closed unmerged). The fix sleeps until the next check is due.
The blocked-claim back-off is also capped at 2 s (Dagster: 15 s) so a freed slot is taken
within ~2 s rather than ~15 s, which at an emulator's time scale is minutes of idle org.

Applied once, only where the buggy code is present; a fixed Dagster is left untouched.
"""

from __future__ import annotations

import inspect
import logging
import time

from dagster._core.execution.plan import instance_concurrency_context as icc

log = logging.getLogger("dc_to_core.orchestration.dagster_fixes")
MAX_BLOCKED_INTERVAL_S = 2.0


def _interval_to_next_pending_claim_check(self: icc.InstanceConcurrencyContext) -> float:
    if not self._pending_claims:
        return 0.0
    now = time.time()
    return max(0.0, min(ready_at - now for ready_at in self._pending_timeouts.values()))


def needs_fix() -> bool:
    source = inspect.getsource(icc.InstanceConcurrencyContext.interval_to_next_pending_claim_check)
    return "min([0," in source.replace(" ", "")


def apply() -> bool:
    """Patch the running Dagster if it has the bug; True when a patch was applied."""
    target = icc.InstanceConcurrencyContext
    if target.interval_to_next_pending_claim_check is _interval_to_next_pending_claim_check:
        return False
    if not needs_fix():
        return False
    target.interval_to_next_pending_claim_check = _interval_to_next_pending_claim_check  # type: ignore[method-assign]
    icc.MAX_CONCURRENCY_CLAIM_BLOCKED_INTERVAL = min(  # type: ignore[attr-defined]
        icc.MAX_CONCURRENCY_CLAIM_BLOCKED_INTERVAL, MAX_BLOCKED_INTERVAL_S)
    log.debug("patched Dagster's pool-claim sleep interval (busy wait)")
    return True
