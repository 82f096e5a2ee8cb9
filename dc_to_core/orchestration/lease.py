"""One run loads a partition at a time: every step of a load holds the partition's lease in
the ledger until its run ends."""

import datetime as dt
import time

import dagster as dg

from ..sync.ledger import Lease
from ..sync.spec import SyncSpec
from .preview import is_dry_run
from .resources import LedgerResource
from .settings import PipelineSettings

STALE_LEASE = dt.timedelta(hours=12)  # run monitoring's max_runtime_seconds: no run is longer
LEASE_POLL_S = 2.0


def hold_partition(context: dg.OpExecutionContext, ledger: LedgerResource,
                   settings: PipelineSettings, spec: SyncSpec) -> None:
    """Make this run the one loading the partition until it ends: two runs of one partition
    would load its rows twice and both claim them. While another run holds it, wait for that
    run to end (at most ``lease_wait_s``), then fail naming it. A dry run writes nothing, so
    it holds nothing."""
    if is_dry_run(context):
        return

    def ended(lease: Lease) -> bool:
        run = context.instance.get_run_by_id(lease.run_id)
        if run is None:  # a run of another instance (a CLI run): trust it until it is stale
            since = dt.datetime.fromisoformat(lease.acquired_at)
            return dt.datetime.now(dt.UTC) - since > STALE_LEASE
        return run.is_finished

    waited, told = 0.0, False
    while (held := ledger.acquire(spec.name, context.partition_key, context.run_id,
                                  ended)) is not None:
        if waited >= settings.lease_wait_s:
            raise dg.Failure(
                f"{spec.name} {context.partition_key} is being loaded by run {held.run_id} "
                f"(since {held.acquired_at}); this run waited {waited:.0f} s for it to end and "
                "stops so the partition is not loaded twice. Re-run it once that run has "
                "ended (however a run ends, it gives the partition up).", allow_retries=False)
        if not told:
            context.log.warning(f"{spec.name} {context.partition_key} is being loaded by run "
                                f"{held.run_id}: waiting for it to end (at most "
                                f"{settings.lease_wait_s:.0f} s)")
            told = True
        time.sleep(LEASE_POLL_S)
        waited += LEASE_POLL_S
    if told:
        context.log.info(f"the other run ended: this run now loads {spec.name} "
                         f"{context.partition_key}")
