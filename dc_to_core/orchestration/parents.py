"""A child partition's load waits for its parents' loads: the nightly automation starts a
child's run as soon as every parent partition is being loaded (``conditions.py``), so its
extract, prepare and changes overlap the parents' loads; only its Bulk upserts need the parents
in Core (their external ids resolve there, and they are the records the children lock).

The wait holds no pool slot, so the parents' own loads are never kept from ``bulk_api``; it
stops early, naming the parent, when a parent's latest load failed or is being retried (a
retry queues behind the children, which would otherwise hold the run slots it needs); the
automation requests the child again once that parent has loaded."""

import time
from collections.abc import Mapping, Sequence

import dagster as dg
from dagster._core.storage.tags import RETRY_NUMBER_TAG, WILL_RETRY_TAG

from .preview import is_dry_run
from .settings import PipelineSettings

PARENT_POLL_S = 2.0
AGAIN = ("sync_automation requests this partition again once {what} has loaded (or "
         "re-run it then)")


class ParentNotLoaded(Exception):
    """A parent partition whose latest load failed, is being retried or never ran."""


def parent_state(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> str | None:
    """None once the parent partition's latest load succeeded; "loading" while its run is
    under way; raises ``ParentNotLoaded`` when waiting cannot end well."""
    what = f"{key.to_user_string()} {partition}"
    planned = instance.get_latest_planned_materialization_info(key, partition)
    run = instance.get_run_by_id(planned.run_id) if planned else None
    if run is None:
        done = instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=key, asset_partitions=[partition]), limit=1)
        if done.records:
            return None
        raise ParentNotLoaded(f"{what} has never been loaded")
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return None
    if run.is_finished:
        retry = " (it will be retried)" if run.tags.get(WILL_RETRY_TAG) == "true" else ""
        raise ParentNotLoaded(f"{what}: its latest load, run {run.run_id}, ended "
                              f"{run.status.value}{retry}")
    if run.tags.get(RETRY_NUMBER_TAG) and run.status in (dg.DagsterRunStatus.QUEUED,
                                                          dg.DagsterRunStatus.NOT_STARTED):
        raise ParentNotLoaded(f"{what} is being retried by run {run.run_id}, which waits for "
                              "a run slot")
    return "loading"


def await_parents(context: dg.OpExecutionContext, settings: PipelineSettings,
                  parents: Mapping[dg.AssetKey, Sequence[str]], name: str) -> None:
    """Return once every partition of every parent is loaded by its latest run; fail, saying
    which and what happens next, when one cannot be (``parent_state``) or after
    ``parent_wait_s``. A dry run sends nothing, so it does not wait."""
    if is_dry_run(context) or not parents:
        return
    pending = [(k, p) for k, ps in parents.items() for p in ps]
    started, told = time.monotonic(), False
    while True:
        try:
            pending = [(k, p) for k, p in pending
                       if parent_state(context.instance, k, p) is not None]
        except ParentNotLoaded as exc:
            raise dg.Failure(f"{name}: not loaded, because a parent is not: {exc}. "
                             + AGAIN.format(what="it"), allow_retries=False) from None
        if not pending:
            if told:
                context.log.info(f"{name}: every parent partition is loaded; loading")
            return
        waited = time.monotonic() - started
        what = ", ".join(f"{k.to_user_string()} {p}" for k, p in pending)
        if waited >= settings.parent_wait_s:
            raise dg.Failure(f"{name}: waited {waited:.0f} s for its parents to load and "
                             f"stops ({what} still loading). " + AGAIN.format(what="every "
                             "parent partition"), allow_retries=False)
        if not told:
            context.log.info(f"{name}: extracted and prepared; its load waits for {what} "
                             f"(at most {settings.parent_wait_s:.0f} s)")
            told = True
        time.sleep(PARENT_POLL_S)
