"""A fix for a Dagster bug that costs this pipeline most of its client CPU, and the executor
that applies it where runs execute.

While a step waits for a pool slot, Dagster 1.13's plan loop (``ActiveExecution.sleep_interval``)
asks ``InstanceConcurrencyContext.interval_to_next_pending_claim_check`` how long it may sleep.
The answer is ``min([0, *seconds_until_each_retry])``, which is never positive, so the loop
never sleeps: every run whose load step waits for the ``bulk_api`` pool spins a CPU core in
that loop until the slot frees (the claims themselves are still tried only when their back-off
is due; measured: 138 of 250 CPU seconds of a 500,000-row night; upstream saw the same in
dagster-io/dagster#20367, closed unmerged). The fix sleeps until the next claim attempt is due.
The claim back-off is also capped at 2 s (Dagster: 15 s) so a freed slot is taken within ~2 s
rather than ~15 s, which at an emulator's time scale is minutes of idle org.

A second fix, for PostgreSQL: the first step of a pool that two runs reach at the same moment
creates the pool's limit row in both (``initialize_concurrency_limit_to_default``); the loser's
INSERT fails, and Dagster's fallback UPDATE then runs in the transaction that failure aborted,
so the run fails (``InFailedSqlTransaction``; seen in a 500,000-row night, whose two
Opportunity runs reached ``bulk_api_deletes`` together; run retries recovered it). The fix
treats that failure as done when the limit row now exists: the other run created it.

Only processes that execute runs need them, so ``in_process_executor`` (the code location's
executor) applies them when Dagster creates a run's executor in the run worker; the webserver,
the daemon and ``dagster definitions validate`` load the definitions unpatched.
``execute_in_process`` swaps in an executor of its own, so a caller that runs jobs that way
with pools (the benchmark's workers) calls ``apply()`` itself. Applied once,
only where the buggy code is present; a fixed Dagster is left untouched.
"""

from __future__ import annotations

import inspect
import logging
import time

import dagster as dg
import sqlalchemy.exc as db_exc
from dagster._core.execution.plan import instance_concurrency_context as icc
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

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


_initialize = SqlEventLogStorage.initialize_concurrency_limit_to_default


def _initialize_limit(self: SqlEventLogStorage, concurrency_key: str) -> bool:
    try:
        return _initialize(self, concurrency_key)
    except db_exc.DBAPIError:
        if concurrency_key in self.get_concurrency_keys():  # another run created it meanwhile
            log.debug("pool %s: its limit was created by another run", concurrency_key)
            return True
        raise


def needs_limit_fix() -> bool:
    source = inspect.getsource(_initialize)
    return "except db_exc.IntegrityError:" in source and ".update()" in source


def apply_limit_fix() -> bool:
    """Patch the pool-limit initialisation race if present; True when a patch was applied."""
    target = SqlEventLogStorage
    if target.initialize_concurrency_limit_to_default is _initialize_limit or not (
            needs_limit_fix()):
        return False
    target.initialize_concurrency_limit_to_default = _initialize_limit  # type: ignore[method-assign]
    return True


def apply() -> bool:
    """Patch the running Dagster where it has the bugs; True when the pool-wait patch was
    applied."""
    apply_limit_fix()
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


def _patched_in_process(init_context: dg.InitExecutorContext) -> dg.Executor:
    apply()
    create = dg.in_process_executor.executor_creation_fn
    assert create is not None
    return create(init_context)


in_process_executor = dg.ExecutorDefinition(
    name="in_process", config_schema=dg.in_process_executor.config_schema,
    executor_creation_fn=_patched_in_process,
    description="Dagster's in-process executor, with the pool-wait fix applied in the run "
    "worker.")
