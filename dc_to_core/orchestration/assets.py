"""The op graph that materializes one partition of a sync, and the asset factory.

extract (pre-flight: the sync checked against the org's describe, ``sync.preflight``; then
keyset pages → Arrow; pool ``datacloud_read``) → prepare (map, coerce, pre-validate with the
org's field constraints, order by parent) → changes (against the sync state: only new,
changed and retryable rows go on; keys gone from the source checked, ``sync.deletes``) →
[parents: a child waits for its parents' runs, ``parents.py``] → load (Bulk upserts,
resumable via the ledger; pool ``bulk_api``) → repass (transient failures, regrouped by
parent, after backoff; pool ``bulk_api_repass``) → [deletes, for ``deletes: mirror``; pool
``bulk_api_deletes``] → finalize (every row loaded, unchanged or
quarantined; the state written from the org's results; metadata; the extract kept for the
checks of the run).
Arrow tables travel between ops as Arrow IPC files (``arrow_io``).
"""


import inspect
import json
import time
from collections.abc import Iterator, Mapping, Sequence

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from ..salesforce.bulk_results import OUTCOME
from ..salesforce.datacloud_arrow import combine
from ..salesforce.describe import ObjectInfo
from ..sync.budget import Budget, BudgetExceeded, forecast
from ..sync.changes import (
    adopted,
    against_core,
    changes,
    core_ids,
    kept_rows,
    read_core_state,
    recorded,
)
from ..sync.deletes import (
    ALLOW_TAG,
    DEFERRED,
    DELETING,
    TRANSIENT,
    Child,
    DeleteRefused,
    candidates,
    delete_gone,
    guard,
    merged,
)
from ..sync.deletes import settled as deletes_settled
from ..sync.deletes import under_way as deletes_under_way
from ..sync.loading import (
    LoadStats,
    LoadTarget,
    load_round,
    planned_jobs,
    repass,
    settle_stale_jobs,
)
from ..sync.outcome import account, save_extract
from ..sync.plan import PartitionPlan
from ..sync.preflight import PreflightError, check, describe_objects
from ..sync.prepare import fingerprint, prepare
from ..sync.spec import SyncSpec
from ..sync.state import SyncState
from .failures import operator_errors
from .io_manager import ArrowIOManager
from .lease import hold_partition
from .metadata import metadata
from .parents import await_parents
from .preview import (
    DRY_RUN_TAG,
    PREVIEW,
    budget_verdict,
    is_dry_run,
    need_json,
    preview_metadata,
    preview_of,
    with_preview,
)
from .resources import BulkApiResource, DataCloudResource, LedgerResource, RestApiResource
from .settings import PipelineSettings
from .sources import source_key

RETRY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL,
                       jitter=dg.Jitter.PLUS_MINUS)
POOL = "bulk_api"
REPASS_POOL = "bulk_api_repass"  # its own slots: a re-pass never queues behind the next loads
DELETE_POOL = "bulk_api_deletes"  # nor a finished load's deletes (holding its run slot)
READ_POOL = "datacloud_read"  # extracts run a few at a time, so the first load starts early
FINGERPRINT, STATS = b"dc_to_core.fingerprint", b"dc_to_core.stats"
RETRIED, ADOPTED = b"dc_to_core.retried", b"dc_to_core.adopted"
DRIFTED_ROWS, STATE_CPU = b"dc_to_core.drifted", b"dc_to_core.state_cpu_s"
DELETED_PATH = b"dc_to_core.deleted_path"
DESCRIBE = b"dc_to_core.describe"  # the target's describe, read by the extract's pre-flight
FULL_REFRESH_TAG = "dc_to_core/full_refresh"  # "true": send every row, rebuild the state


def asset_key(spec: SyncSpec) -> dg.AssetKey:
    """``core/<Target>``; a hierarchy pass is ``core/<Target>/hierarchy``."""
    return dg.AssetKey(["core", spec.target, *(["hierarchy"] if spec.hierarchy_of else [])])


def _stats(table: pa.Table) -> LoadStats:
    raw = (table.schema.metadata or {}).get(STATS)
    if not raw:
        return LoadStats()
    data = json.loads(raw)
    return LoadStats(jobs=data["jobs"], rounds=data["rounds"], resumed_jobs=data["resumed"],
                     forecast=data.get("forecast"), lock_failed=data.get("lock_failed", []))


def _with_stats(table: pa.Table, stats: LoadStats) -> pa.Table:
    meta = {**(table.schema.metadata or {}), STATS: json.dumps(
        {"jobs": stats.jobs, "rounds": stats.rounds, "resumed": stats.resumed_jobs,
         "forecast": stats.forecast, "lock_failed": stats.lock_failed})}
    return table.replace_schema_metadata(meta)


def build_sync_asset(spec: SyncSpec, plan: PartitionPlan, partitions: dg.PartitionsDefinition,
                     parents: tuple[SyncSpec, ...] = (), source_partitioned_alike: bool = True,
                     children: tuple[Child, ...] = (), together: tuple[str, ...] = (),
                     parent_partitions: Mapping[str, Sequence[str]] | None = None
                     ) -> dg.AssetsDefinition:
    """One partitioned graph asset (``core/<Target>``) for one sync. Each partition reads the
    same partition of ``datacloud/<object>``, unless that object's partitions are another
    sync's (``source_partitioned_alike`` false): then it depends on all of them. It waits for
    every partition of the syncs its lookups resolve by (``parents``). ``children`` are the
    child syncs' objects, whose records must be gone before a parent is deleted. A parent
    named in ``together`` has one partition, of this sync's one partition key: its mapping
    is the identity (the same thing as all of its partitions), so Dagster may load it and
    this sync in one run (``conditions.sync_condition``). ``parent_partitions``: each parent
    sync's partition keys; before its first Bulk job, a partition waits for the runs loading
    them (``parents.await_parents``), so that the automation can start it while they load."""
    name = spec.name.lower()
    io = dg.Out(io_manager_key="arrow_io")
    after = {f"after_{p.name.lower()}": p for p in parents}
    loaded_by = {lk.relationship: p.target for lk in spec.lookups for p in parents
                 if p.name == lk.sync}

    @dg.op(name=f"{name}_extract", pool=READ_POOL, retry_policy=RETRY, out=io,
           ins={"source": dg.In(dg.Nothing), **{a: dg.In(dg.Nothing) for a in after}},
           description=f"Check the sync against the org's describe of {spec.target}, then "
                       f"keyset-page {spec.source} for the partition's key range into Arrow.")
    def extract(context: dg.OpExecutionContext, datacloud: DataCloudResource,
                core: RestApiResource, ledger: LedgerResource, settings: PipelineSettings
                ) -> pa.Table:
        hold_partition(context, ledger, settings, spec)
        org = preflight_check(context, core, datacloud)
        r = plan.range(context.partition_key)
        with operator_errors(f"reading {spec.source} {r.label}"):
            batches = list(datacloud.read_range(spec.source, spec.source_columns[1:],
                                                spec.source_key, r.start, r.end,
                                                fold=spec.folds_key, progress=context.log.info))
        table = combine(batches, spec.source_columns)
        context.log.info(f"extracted {table.num_rows} rows of {spec.source} {r.label}")
        return table.replace_schema_metadata({**(table.schema.metadata or {}),
                                              DESCRIBE: org.to_json().encode()})

    def preflight_check(context: dg.OpExecutionContext, core: RestApiResource,
                        datacloud: DataCloudResource) -> ObjectInfo:
        """The target's describe, after checking the sync against it (and its lookups'
        related objects) and against the Data Cloud object's metadata."""
        with operator_errors(f"describing {spec.target} for the pre-flight check"):
            try:
                org, related = describe_objects(spec, core.describe_object)
                columns = datacloud.columns(spec.source)
                if columns is None:
                    raise PreflightError(spec, [f"source {spec.source!r}: Data Cloud has no "
                                                "such object (its metadata does not list it)"])
                check(spec, org, related, columns, loaded_by)
            except PreflightError as exc:
                raise dg.Failure(f"{exc}\nFix the sync file (or the org), then re-run.",
                                 allow_retries=False) from None
        context.log.info(f"pre-flight: {spec.name} matches {spec.target} in the org "
                         f"({len(spec.fields) + 1} fields"
                         + "".join(f", lookup {lk.relationship}" for lk in spec.lookups)
                         + ")")
        return org

    @dg.op(name=f"{name}_prepare", out={"ready": io, "rejected": io},
           description="Map and coerce fields, reject rows that cannot load, order by parent.")
    def prepare_op(context: dg.OpExecutionContext, bulk: BulkApiResource, source: pa.Table
                   ) -> tuple[pa.Table, pa.Table]:
        described = (source.schema.metadata or {}).get(DESCRIBE)
        p = prepare(spec, source, salt=context.partition_key,
                    org=ObjectInfo.from_json(described) if described else None,
                    chunk_rows=bulk.chunk_rows)
        ready = p.ready.replace_schema_metadata({FINGERPRINT: p.fingerprint.encode()})
        context.log.info(f"{ready.num_rows} rows ready, {p.rejected.num_rows} rejected before "
                         "upload")
        return ready, p.rejected

    outs = {"send": io, "kept": io, **({"gone": io} if spec.mirrors_deletes else {})}

    @dg.op(name=f"{name}_changes", retry_policy=RETRY, out=outs,
           description="Compare the prepared rows with what Core holds (the sync state): "
                       "new, changed and retryable rows go on, unchanged ones do not; keys "
                       "gone from the source are checked before they may be deleted.")
    def changes_op(context: dg.OpExecutionContext, datacloud: DataCloudResource,
                   bulk: BulkApiResource, core: RestApiResource, ledger: LedgerResource,
                   settings: PipelineSettings, source: pa.Table, ready: pa.Table
                   ) -> Iterator[dg.Output]:
        hold_partition(context, ledger, settings, spec)  # the state of the range is this run's
        full = context.run.tags.get(FULL_REFRESH_TAG, "").lower() == "true"
        state = SyncState(ledger)
        r = plan.range(context.partition_key)
        cpu = time.process_time()
        known = state.read_range(spec.name, r, spec.folds_key, spec.mapping_fingerprint)
        cpu = time.process_time() - cpu
        gone = candidates(spec, source, known)
        dry, refusal = is_dry_run(context), None
        try:  # before anything of the partition is sent: a short read must stop it whole
            with operator_errors(f"checking {spec.source} {r.label} for removed rows"):
                guard(spec, f"{spec.name} {context.partition_key}", gone, known.num_rows,
                      context.run.tags.get(ALLOW_TAG, "").lower() == "true",
                      lambda keys: datacloud.keys_present(spec.source, spec.source_key, keys,
                                                          spec.folds_key))
        except DeleteRefused as exc:
            if not dry:
                raise dg.Failure(str(exc), allow_retries=False) from None
            refusal, gone = str(exc), gone.slice(0, 0)  # a dry run reports what a run does
        held = None
        if not known.num_rows and ready.num_rows and not full:  # a first run, or a new org
            with operator_errors(f"reading {spec.target} {r.label} to adopt what it holds"):
                held = read_core_state(spec, bulk, r, ready.schema, core.count_range)
        started = time.process_time()  # the state's cost: not the reads of the orgs
        c = changes(spec, ready, known if held is None else held, full_refresh=full)
        held_now = None  # insert- or update-only: what Core holds decides, not the state
        if spec.operation != "upsert" and c.send.num_rows:
            with operator_errors(f"looking up in {spec.target} the records to "
                                 f"{spec.operation}"):
                c, held_now = against_core(spec, c, core_ids(spec, bulk, c, held))
        if dry:
            adopt = 0 if held is None else adopted(spec, held, c, source, r).num_rows
        else:
            state.mark_retry(spec.name, c.to_mark)  # before they go: see SyncState.mark_retry
            adopt = 0 if held is None else state.record(spec.name, spec.mapping_fingerprint,
                                                        adopted(spec, held, c, source, r))
            if held_now is not None and held_now.num_rows:  # an insert-only sync's: in Core
                state.record(spec.name, spec.mapping_fingerprint, held_now)
        cpu += time.process_time() - started
        send = c.send.replace_schema_metadata({FINGERPRINT: fingerprint(spec, c.send).encode(),
                                               RETRIED: str(c.retried).encode(),
                                               DRIFTED_ROWS: str(c.drifted).encode(),
                                               STATE_CPU: f"{cpu:.4f}".encode(),
                                               ADOPTED: str(adopt).encode()})
        send = with_preview(send, new=c.new, delete_refused=refusal)
        context.log.info(
            f"{send.num_rows} of {ready.num_rows} rows to send ({c.retried} retried, "
            f"{c.drifted} drifted in Core), "
            f"{c.unchanged_rows} unchanged, {c.refused.num_rows} refused before and unchanged"
            + (" (full refresh: every row is sent)" if full else
               f"; {known.num_rows} rows known in the range")
            + ("" if held is None else f"; the state was empty: {held.num_rows} records read "
               f"from {spec.target}, {adopt} of them recorded as Core holds them")
            + (f"; {gone.num_rows} gone from Data Cloud, to delete" if spec.mirrors_deletes
               else ""))
        yield dg.Output(send, "send")
        yield dg.Output(kept_rows(spec, c), "kept")
        if spec.mirrors_deletes:
            yield dg.Output(gone, "gone")

    def target(context: dg.OpExecutionContext, bulk: BulkApiResource, ledger: LedgerResource,
               settings: PipelineSettings, core: RestApiResource, send: pa.Table
               ) -> LoadTarget:
        fp = (send.schema.metadata or {}).get(FINGERPRINT, b"").decode()
        return LoadTarget(spec, context.partition_key, fp, bulk, ledger, context.run_id,
                          before_job=Budget(settings.limit_share).guard(core.limits, (
                              f"{spec.name} {context.partition_key}: the next Bulk job")),
                          progress=context.log.info)

    def keep_what_was_done(ledger: LedgerResource, sent: pa.Table,
                           outcome: pa.Table | None) -> None:
        """A load the budget stopped records what the org did (as finalize would), so the
        next run does not send it again."""
        if outcome is not None and outcome.num_rows:
            SyncState(ledger).record(spec.name, spec.mapping_fingerprint,
                                     recorded(spec, sent, outcome))

    waits = {asset_key(p): tuple((parent_partitions or {}).get(p.name, ())) for p in parents}

    @dg.op(name=f"{name}_parents", ins={"send": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing),
           description="Wait for the loads of the parents' partitions planned before this "
                       "one (the automation starts a child while its parents load).")
    def parents_op(context: dg.OpExecutionContext, settings: PipelineSettings) -> None:
        if not is_dry_run(context):
            await_parents(context, asset_key(spec), waits,
                          f"{spec.name} {context.partition_key}", settings.lease_wait_s)

    @dg.op(name=f"{name}_load", pool=POOL, retry_policy=RETRY, out=io,
           ins={"parents": dg.In(dg.Nothing)} if parents else None,
           description=f"Upsert into {spec.target} by {spec.target_key} with Bulk API 2.0.")
    def load(context: dg.OpExecutionContext, bulk: BulkApiResource, ledger: LedgerResource,
             settings: PipelineSettings, core: RestApiResource, send: pa.Table) -> pa.Table:
        hold_partition(context, ledger, settings, spec)  # a retry from failure may start here
        stats = LoadStats()
        t = target(context, bulk, ledger, settings, core, send)
        what = f"{spec.name} {context.partition_key} ({{}} job(s) of {send.num_rows:,} rows)"
        with operator_errors(f"loading {spec.target} {context.partition_key}"):
            need = forecast(planned_jobs(t, send), bulk.chunk_rows)
            stats.forecast = need_json(need)
            if is_dry_run(context):  # what the budget would say, and nothing sent
                stats.forecast["budget"], stats.forecast["budget_refusal"] = budget_verdict(
                    settings, core, need, what)
                return _with_stats(OUTCOME.empty_table(), stats)
            settle_stale_jobs(t)
            if need.jobs:  # the whole partition must fit before its first job is created
                Budget(settings.limit_share).check(core.limits(), need,
                                                   what.format(need.jobs))
                context.log.info(f"forecast: {need.jobs} Bulk job(s), {need.batches} "
                                 f"batch(es), about {need.api_calls} API calls; within the "
                                 f"budget ({settings.limit_share:.0%} of the org's daily "
                                 "allocations)")
            try:
                outcome = load_round(t, send, 0, stats)
            except BudgetExceeded as stop:  # what the org did before it is in the state
                if stop.rows is not None:
                    keep_what_was_done(ledger, send.take(stop.rows), stop.outcome)
                raise
        context.log.info(f"{len(stats.jobs)} job(s), {stats.resumed_jobs} resumed")
        return _with_stats(outcome, stats)

    @dg.op(name=f"{name}_repass", pool=REPASS_POOL, retry_policy=RETRY, out=io,
           description="Resubmit rows that failed transiently, by parent, with backoff.")
    def repass_op(context: dg.OpExecutionContext, bulk: BulkApiResource,
                  ledger: LedgerResource, settings: PipelineSettings, core: RestApiResource,
                  send: pa.Table, outcome: pa.Table) -> pa.Table:
        hold_partition(context, ledger, settings, spec)  # ... or here
        if is_dry_run(context):
            return outcome
        stats = _stats(outcome)
        t = target(context, bulk, ledger, settings, core, send)
        with operator_errors(f"re-passing {spec.target} {context.partition_key}"):
            try:
                final = repass(t, send, outcome, settings.repass_rounds,
                               settings.wall(settings.repass_backoff_s), stats)
            except BudgetExceeded:  # the first round's results are in the state
                keep_what_was_done(ledger, send, outcome)
                raise
        return _with_stats(final, stats)

    @dg.op(name=f"{name}_deletes", pool=DELETE_POOL, retry_policy=RETRY, out=io,
           ins={"gone": dg.In(), "after": dg.In(dg.Nothing)},
           description=f"Delete from {spec.target} the records whose key is gone from "
                       f"{spec.source} (children before parents), by Salesforce Id.")
    def deletes_op(context: dg.OpExecutionContext, bulk: BulkApiResource,
                   datacloud: DataCloudResource, ledger: LedgerResource,
                   settings: PipelineSettings, core: RestApiResource, gone: pa.Table
                   ) -> pa.Table:
        hold_partition(context, ledger, settings, spec)
        if is_dry_run(context):  # what Core holds of them, and the delete jobs that would go
            with operator_errors(f"reading {spec.target} for the dry run's deletes"):
                planned = delete_gone(spec, bulk, gone.column("key").to_pylist(),
                                      list(children), lambda rows: None, plan_only=True)
            ids = planned.rows.filter(pc.equal(planned.rows.column("status"), DELETING))
            need = forecast(bulk.job_rows(ids.select(["sf_id"])) if ids.num_rows else [],
                            bulk.chunk_rows)
            deferred = pc.sum(pc.equal(planned.rows.column("status"), DEFERRED)).as_py() or 0
            return gone.replace_schema_metadata({PREVIEW: json.dumps(
                {**need_json(need), "rows": ids.num_rows, "deferred": deferred}).encode()})
        keys = gone.column("key").to_pylist()
        with operator_errors(f"checking {spec.source} again before deleting"):
            back = datacloud.keys_present(spec.source, spec.source_key, keys, spec.folds_key)
        keys = [k for k in keys if k not in back]  # since the changes step (a retry, days on)

        state = SyncState(ledger)
        earlier = settings.run_file(spec.name, context.partition_key, context.run_id, "deleted")

        def keep(rows: pa.Table) -> str:  # on file, and in the state, before the job runs
            path = settings.write_quarantine(spec.name, context.partition_key, context.run_id,
                                             merged(earlier, rows), kind="deleted")
            state.mark_retry(spec.name, deletes_under_way(rows), status=DELETING)
            return path

        with operator_errors(f"deleting from {spec.target} {context.partition_key}"):
            done = delete_gone(spec, bulk, keys, list(children), keep, settings.repass_rounds,
                               settings.wall(settings.repass_backoff_s),
                               before_job=Budget(settings.limit_share).guard(core.limits, (
                                   f"deleting from {spec.target} {context.partition_key}: "
                                   "the next delete job")),
                               progress=context.log.info)
        final = merged(earlier, done.rows)  # an earlier attempt's deletes count as deleted
        path = settings.write_quarantine(spec.name, context.partition_key, context.run_id,
                                         final, kind="deleted")
        # what Core no longer holds leaves the state (a crash before this line leaves them
        # marked deleting: the next run finds them gone, and forgets them then)
        state.forget(spec.name, deletes_settled(final))
        context.log.info(f"{len(keys)} keys gone from {spec.source}"
                         + (f" ({len(back)} back in it since the changes step)" if back else "")
                         + f": {len(done.jobs)} delete job(s); the rows in {path}")
        return final.replace_schema_metadata({STATS: json.dumps(
            {"jobs": done.jobs, "rounds": 0, "resumed": 0}), DELETED_PATH: path.encode()})

    def observe_preview(context: dg.OpExecutionContext, source: pa.Table, rejected: pa.Table,
                        send: pa.Table, kept: pa.Table, outcome: pa.Table,
                        deleted: pa.Table | None) -> dg.AssetObservation:
        last = context.instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=asset_key(spec), asset_partitions=[context.partition_key]), limit=1)
        meta = {k: v.value for k, v in (last.records[0].asset_materialization.metadata.items()
                                        if last.records else [])}
        pace = (meta.get("rows_sent") or 0) / meta["duration_s"] if meta.get("duration_s") \
            else None
        report = preview_metadata(
            source.num_rows, send, rejected, kept, plan.range(context.partition_key).label,
            _stats(outcome).forecast or {}, preview_of(deleted) if deleted is not None else {},
            pace)
        context.log.info(f"dry run of {spec.name} {context.partition_key}: nothing written; "
                         + ", ".join(f"{k} {v}" for k, v in report.items()
                                     if isinstance(v, int | str) and k != "range"))
        return dg.AssetObservation(asset_key(spec), partition=context.partition_key,
                                   metadata=report, tags={DRY_RUN_TAG: "true"})

    @dg.op(name=f"{name}_finalize", retry_policy=RETRY,
           out=dg.Out(dg.Nothing, is_required=False),
           description="Record what Core holds; account for every row (loaded, unchanged or "
                       "quarantined) and report.")
    def finalize(context: dg.OpExecutionContext, datacloud: DataCloudResource,
                 ledger: LedgerResource, settings: PipelineSettings, source: pa.Table,
                 rejected: pa.Table, ready: pa.Table, send: pa.Table, kept: pa.Table,
                 outcome: pa.Table, deleted: pa.Table | None = None
                 ) -> Iterator[dg.Output | dg.AssetObservation]:
        hold_partition(context, ledger, settings, spec)  # ... or here
        if is_dry_run(context):  # an observation of what the night would do; no output
            yield observe_preview(context, source, rejected, send, kept, outcome, deleted)
            _cleanup(settings, context.run_id)
            return
        # what Core holds now, from the org's own results (one transaction): a crash before
        # it leaves these rows unrecorded, so the next run sends them again
        cpu = time.process_time()
        written = SyncState(ledger).record(spec.name, spec.mapping_fingerprint,
                                           recorded(spec, send, outcome))
        cpu = time.process_time() - cpu + float((send.schema.metadata or {}).get(
            STATE_CPU, b"0"))
        # every job of this load is collected now: a later run of the partition must send the
        # rows again, not resume jobs whose rows failed (the ledger is for crashed loads), nor
        # jobs a crashed earlier load left for other rows
        ledger.forget_partition(spec.name, context.partition_key)
        r = plan.range(context.partition_key)
        started = context.instance.get_run_stats(context.run_id).start_time or time.time()
        stats = _stats(outcome)
        if deleted is not None:
            stats.jobs += _stats(deleted).jobs
        result = account(spec, r, context.partition_key, source, rejected, send, outcome, kept,
                         stats, time.time() - started,
                         int((send.schema.metadata or {}).get(RETRIED, b"0")))
        result.deleted = deleted
        context.log.info(f"sync state: {written} rows recorded from the org's results")
        with operator_errors(f"counting {spec.source} {r.label}"):
            result.source_count = datacloud.count_range(spec.source, spec.source_key, r.start,
                                                        r.end, spec.folds_key)
        save_extract(settings.extract_path(spec.name, context.partition_key), source, ready,
                     context.run_id, result.source_count)
        path = settings.write_quarantine(spec.name, context.partition_key, context.run_id,
                                         result.quarantine)
        deleted_path = None if deleted is None else (deleted.schema.metadata or {}).get(
            DELETED_PATH, b"").decode()
        meta = metadata(result, path, deleted_path)
        sent_meta = send.schema.metadata or {}
        meta["rows_adopted"] = int(sent_meta.get(ADOPTED, b"0"))
        meta["rows_drifted"] = int(sent_meta.get(DRIFTED_ROWS, b"0"))  # healed in Core now
        meta["state_cpu_s"] = round(cpu, 3)  # reading, diffing and writing the sync state
        planned = _stats(outcome).forecast or {}
        meta["forecast_bulk_jobs"] = int(planned.get("jobs", 0))  # the first round's, before it
        meta["forecast_bulk_batches"] = int(planned.get("batches", 0))
        if not result.accounted:
            raise dg.Failure(f"{spec.name} {context.partition_key}: {result.extracted} rows "
                             f"extracted but {result.loaded} loaded + {result.quarantined} "
                             "quarantined; rows are unaccounted for. Re-run the partition.",
                             metadata=meta, allow_retries=False)
        if result.transient_left:
            raise dg.Failure(f"{spec.name} {context.partition_key}: {result.transient_left} rows "
                             f"still failed with transient errors after {result.stats.rounds} "
                             f"re-pass rounds (see {path}). Re-run the partition (backfill "
                             "failed partitions) when the org is quieter.", metadata=meta,
                             allow_retries=False)
        if result.deletes(TRANSIENT):  # refused deletes are reported, and tried next run
            raise dg.Failure(f"{spec.name} {context.partition_key}: "
                             f"{result.deletes(TRANSIENT)} records gone from {spec.source} "
                             f"could not be deleted from {spec.target} for locks (see "
                             f"{deleted_path}); they stay in the sync state. Re-run the "
                             "partition when the org is quieter.", metadata=meta,
                             allow_retries=False)
        _cleanup(settings, context.run_id)
        yield dg.Output(None, metadata=meta)

    def loaded(send: object) -> object:
        return load(send, parents=parents_op(send)) if parents else load(send)

    def wire(source: object) -> object:
        ready, rejected = prepare_op(source)
        if not spec.mirrors_deletes:
            send, kept = changes_op(source, ready)
            return finalize(source, rejected, ready, send, kept, repass_op(send, loaded(send)))
        send, kept, gone = changes_op(source, ready)
        final = repass_op(send, loaded(send))
        deleted = deletes_op(gone, after=final)  # after the upserts: children may re-parent
        return finalize(source, rejected, ready, send, kept, final, deleted)

    def partition(source: object, **loaded: object) -> object:
        return wire(extract(source=source, **loaded))

    partition.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=object)
         for n in ("source", *after)], return_annotation=object)
    load_partition = dg.graph(name=f"{name}_partition")(partition)

    inputs = {"source": source_key(spec), **{a: asset_key(p) for a, p in after.items()}}
    return dg.AssetsDefinition.from_graph(
        load_partition, keys_by_output_name={"result": asset_key(spec)},
        keys_by_input_name=inputs,
        partition_mappings={**{a: dg.IdentityPartitionMapping() if p.name in together
                               else dg.AllPartitionMapping() for a, p in after.items()},
                            **({} if source_partitioned_alike
                               else {"source": dg.AllPartitionMapping()})} or None,
        partitions_def=partitions, group_name="core",
        descriptions_by_output_name={"result": f"{spec.target} loaded from {spec.source} "
                                                f"(sync {spec.name}), one partition per "
                                                f"{spec.source_key} range."},
        metadata_by_output_name={"result": {
            "sync": spec.name, "source": spec.source, "external_id": spec.target_key,
            "dagster/column_schema": column_schema(spec)}},
        tags_by_output_name={"result": {"dagster/kind/salesforce": ""}},
        owners_by_output_name={"result": list(spec.owners)},
        code_versions_by_output_name={"result": spec.mapping_fingerprint})


def column_schema(spec: SyncSpec) -> dg.TableSchema:
    """The Core fields a sync writes, with the Data Cloud column each comes from."""
    columns = [dg.TableColumn(spec.target_key, "string", description=f"external id, from "
                              f"{spec.source_key}")]
    columns += [dg.TableColumn(f.target, f.type, description=f"from {f.source}" if f.source
                               else f"the constant {f.value!r}") for f in spec.fields]
    columns += [dg.TableColumn(lk.relationship, "string", description=(
        f"the related {lk.name}'s {lk.through}, from {lk.source} ("
        + (f"loaded by sync {lk.sync}" if lk.sync else "a record already in Core")
        + (", locks it" if lk.locks_parent else "") + ")")) for lk in spec.lookups]
    return dg.TableSchema(columns=columns)


def _cleanup(settings: PipelineSettings, run_id: str) -> None:
    ArrowIOManager(base_dir=str(settings.path("intermediate", "x").parent)).cleanup_run(
        run_id, settings.intermediate_retention_days)
