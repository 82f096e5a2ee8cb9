"""The asset checks that reconcile Data Cloud against Core for the partition just
materialized (the comparisons themselves are ``sync.reconcile``).

- ``counts_reconcile`` (ERROR): every Data Cloud key in the range is in Core unless it was
  quarantined, and Core holds no key the range does not have (but a parent whose deletion
  waits for its children, reported apart). Reported as counts too: Data Cloud rows, Core
  records, quarantined rows.
- ``no_quarantined_rows`` (WARN): the partition's quarantine is empty; else the reasons.
- ``no_duplicate_external_ids`` (ERROR): no external id appears twice in Core in the range.
- ``fields_match`` (ERROR): a checksum of the mapped fields, Data Cloud (as prepared) vs
  Core, and the rows that differ.

Run with the materialization, the checks take the Data Cloud side from the extract that run
saved (with Data Cloud's count after the load, which must still match), so a partition is
read from Data Cloud once per run; run on their own, they read the range again.
"""


import datetime as dt
import threading
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from ..salesforce.datacloud_arrow import combine
from ..sync.changes import row_hashes
from ..sync.deletes import DEFERRED
from ..sync.keys import SettledRange, as_array, folded, settle_core_range
from ..sync.outcome import SAMPLE_ROWS, run_extract
from ..sync.plan import KeyRange, PartitionPlan
from ..sync.prepare import QUARANTINE, prepare
from ..sync.reconcile import FieldsComparison, compare_fields, duplicates, reconcile
from ..sync.spec import SyncSpec
from ..sync.state import DRIFTED, SyncState, stamp
from .assets import asset_key
from .failures import operator_errors
from .resources import BulkApiResource, DataCloudResource, LedgerResource
from .settings import PipelineSettings

T = TypeVar("T")


@dataclass
class SourceRows:
    table: pa.Table
    origin: str              # "this run's extract" or a read by the check
    count_now: int | None    # Data Cloud's count of the range after the load
    ready: pa.Table | None = None  # as the run prepared it (None: prepare when needed)


class RangeReads(Generic[T]):
    """The Data Cloud rows and Core records of a range, read once per run and shared by the
    checks of that run (they run one after another in the run's process). Only the latest
    run's reads are kept."""

    def __init__(self) -> None:
        self._run_id = ""
        self._tables: dict[tuple[str, str], T] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str, what: tuple[str, str], read: Callable[[], T]) -> T:
        with self._lock:
            if run_id != self._run_id:
                self._run_id, self._tables = run_id, {}
            if what not in self._tables:
                self._tables[what] = read()
            return self._tables[what]


def _quarantine(settings: PipelineSettings, spec: SyncSpec, partition: str) -> pa.Table:
    table = settings.latest_quarantine(spec.name, partition)
    return QUARANTINE.empty_table() if table is None else table


def _awaiting_delete(settings: PipelineSettings, spec: SyncSpec, partition: str,
                     unexpected: list[str]) -> set[str]:
    """The unexpected Core keys the partition's latest run found gone from Data Cloud and
    deferred (a parent whose children are still in Core: deleted once they are gone)."""
    deleted = settings.latest_quarantine(spec.name, partition, kind="deleted") if (
        spec.mirrors_deletes and unexpected) else None
    if deleted is None:
        return set()
    waiting = deleted.filter(pc.equal(deleted.column("status"), DEFERRED)).column("key")
    keys = pa.array(unexpected, pa.string())
    hit = pc.is_in(folded(keys, spec.folds_key), value_set=waiting.combine_chunks())
    return set(keys.filter(hit).to_pylist())


def _folded(keys: list[str], spec: SyncSpec) -> list[str]:
    return folded(pa.array(keys, pa.string()), spec.folds_key).to_pylist()


def _sample(rows: list[tuple], names: list[str]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        [dg.TableRecord({n: str(v) for n, v in zip(names, r, strict=True)})
         for r in rows[:SAMPLE_ROWS]],
        schema=dg.TableSchema(columns=[dg.TableColumn(n, "string") for n in names]))


LAST = {"dagster/priority": "-1"}  # after every load step of the run: in a run of a parent
                                   # and its child (``together``), the child's load, and the
                                   # children waiting in other runs, do not wait for them


def build_checks(spec: SyncSpec, plan: PartitionPlan, partitions: dg.PartitionsDefinition,
                 parents: tuple[SyncSpec, ...] = ()) -> list[dg.AssetChecksDefinition]:
    """The four checks of a sync, partitioned like its asset (a preview feature of Dagster
    1.13 that works as documented for one-partition runs; its warning is silenced here).
    They have no automation condition: they run with the load of their partition."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return _build_checks(spec, plan, partitions, parents)


def _build_checks(spec: SyncSpec, plan: PartitionPlan, partitions: dg.PartitionsDefinition,
                  parents: tuple[SyncSpec, ...]) -> list[dg.AssetChecksDefinition]:
    key = asset_key(spec)
    fields = [f.target for f in spec.fields if f.compare] + [
        lk.relationship for lk in spec.lookups]
    # the org finds a related record by either case and answers with its own spelling
    case_sensitive = {p.name for p in parents if not p.folds_key}
    folded_fields = {lk.relationship for lk in spec.lookups if lk.sync not in case_sensitive}
    keep_nulls = {f.target for f in spec.fields if f.keeps_nulls} | {
        lk.relationship for lk in spec.lookups if lk.keeps_nulls}

    reads: RangeReads[SourceRows] = RangeReads()
    core_reads: RangeReads[pa.Table] = RangeReads()
    settled_reads: RangeReads[SettledRange] = RangeReads()

    def source(context: dg.AssetCheckExecutionContext, datacloud: DataCloudResource,
               settings: PipelineSettings, r: KeyRange) -> SourceRows:
        def read() -> SourceRows:
            saved = run_extract(settings.extract_path(spec.name, r.key), context.run.run_id)
            if saved is not None:
                return SourceRows(saved.source, "this run's extract", saved.count_now,
                                  saved.ready)
            with operator_errors(f"reading {spec.source} {r.label}"):
                table = combine(list(datacloud.read_range(
                    spec.source, spec.source_columns[1:], spec.source_key, r.start, r.end,
                    fold=spec.folds_key)), spec.source_columns)
            return SourceRows(table, "Data Cloud, read by the check", table.num_rows)
        return reads.get(context.run.run_id, ("dc", r.key), read)

    columns = [spec.target_key, *fields]

    def resend(ledger: LedgerResource, keys: list[str], recorded_before: str | None = None
               ) -> int:
        """Mark keys the read-back found missing from Core or different there, so the next
        run of the partition sends them again (the state said Core held them)."""
        return SyncState(ledger).mark_retry(spec.name, _folded(keys, spec), recorded_before,
                                            DRIFTED) if keys else 0

    def run_started(context: dg.AssetCheckExecutionContext) -> str:
        started = context.instance.get_run_stats(context.run.run_id).start_time
        return stamp(dt.datetime.fromtimestamp(started, dt.UTC) if started else None)

    def core_range(context: dg.AssetCheckExecutionContext, bulk: BulkApiResource,
                   r: KeyRange) -> pa.Table:
        def read() -> pa.Table:  # a Bulk API 2.0 query job: CSV pages, one call per page
            with operator_errors(f"reading {spec.target} {r.label}"):
                return bulk.read_range(spec.target, columns, spec.target_key, r.start, r.end)
        return core_reads.get(context.run.run_id, ("core", r.key), read)

    def records(context: dg.AssetCheckExecutionContext, bulk: BulkApiResource,
                datacloud: DataCloudResource, settings: PipelineSettings, r: KeyRange
                ) -> SettledRange:
        """Core's records of the range by Data Cloud's rule (see ``settle_core_range``)."""
        def read() -> SettledRange:
            src = source(context, datacloud, settings, r)
            q = _quarantine(settings, spec, context.partition_key)
            key = as_array(src.table.column(spec.source_key))
            expected = key.filter(pc.invert(pc.is_in(key, value_set=as_array(q.column("key")))))
            with operator_errors(f"reading {spec.target} {r.label}"):
                return settle_core_range(
                    core_range(context, bulk, r), spec.target_key, r, spec.folds_key, expected,
                    lambda keys: bulk.read_keys(spec.target, columns, spec.target_key, keys),
                    lambda keys: datacloud.keys_present(spec.source, spec.source_key, keys,
                                                        spec.folds_key))
        return settled_reads.get(context.run.run_id, ("settled", r.key), read)

    def drift(context: dg.AssetCheckExecutionContext, ledger: LedgerResource,
              cmp: FieldsComparison, core: pa.Table, like: pa.Schema) -> dict:
        """Mark the rows that drifted in Core for the next run. Not the rows this run has
        just loaded: they already differ, so the org rewrote them (a trigger, a flow,
        rounding) and sending them again would not change that; what Core holds for them is
        recorded instead, and on a later night such a row has drifted only if Core holds
        something else by then. Report both, by field."""
        state = SyncState(ledger)
        started = run_started(context)
        keys = _folded(cmp.differing, spec)
        fresh = state.recorded_since(spec.name, keys, started)
        held = core.filter(pc.is_in(folded(core.column(spec.target_key), spec.folds_key),
                                    value_set=pa.array(keys, pa.string())))
        now = dict(zip(folded(held.column(spec.target_key), spec.folds_key).to_pylist(),
                       row_hashes(spec, held, like, fields).to_pylist(), strict=True))
        state.set_core_hashes(spec.name, {k: now[k] for k in fresh if k in now})
        rewritten = {k for k, h in state.core_hashes(spec.name, sorted(set(keys) - fresh)
                                                     ).items() if now.get(k) == h} | fresh
        marked = state.mark_retry(spec.name, sorted(set(keys) - rewritten), started, DRIFTED)
        by_field = {f: _folded(ks, spec) for f, ks in sorted(cmp.by_field.items())}
        org = {f: n for f, ks in by_field.items() if (n := len(set(ks) & rewritten))}
        meta: dict = {"rows_drifted": len(keys) - len(rewritten), "marked_for_resend": marked,
                      "differ_right_after_load": len(fresh),
                      "rows_rewritten_by_org": len(rewritten),
                      "drifted_by_field": dg.MetadataValue.json(
                          {f: len(ks) - org.get(f, 0) for f, ks in by_field.items()})}
        if org:
            meta["rewritten_by_org"] = dg.MetadataValue.json(org)
            meta["what_to_do"] = (
                f"the org rewrites {', '.join(org)} when dc_to_core saves a row (it differs "
                "right after its load): such rows are not sent again while Core keeps what "
                "it wrote; set compare: false on the field in the sync's defs.yaml to leave "
                "it out of this check")
        return meta

    @dg.asset_check(asset=key, name="counts_reconcile", partitions_def=partitions, op_tags=LAST,
                    description="Every Data Cloud row of the range is in Core or quarantined.")
    def counts_reconcile(context: dg.AssetCheckExecutionContext, datacloud: DataCloudResource,
                         bulk: BulkApiResource, settings: PipelineSettings,
                         ledger: LedgerResource) -> dg.AssetCheckResult:
        r = plan.range(context.partition_key)
        src = source(context, datacloud, settings, r)
        q = _quarantine(settings, spec, context.partition_key)
        core = records(context, bulk, datacloud, settings, r)
        rec = reconcile(src.table.column(spec.source_key),
                        core.records.column(spec.target_key), q.column("key"), q.num_rows,
                        spec.folds_key)
        changed = src.count_now is not None and src.count_now != rec.dc_rows
        meta = {"range": r.label, "datacloud_rows": rec.dc_rows, "datacloud_read": src.origin,
                "core_records": rec.core_rows, "quarantined_rows": rec.quarantined,
                "missing_in_core": len(rec.missing), "unexpected_in_core": len(rec.unexpected),
                "keys_compared": "ignoring case" if spec.folds_key else "case-sensitive"}
        if core.outside or core.looked_up:  # the org's SOQL range and ours differ near edges
            meta |= {"core_returned_outside_range": core.outside,
                     "looked_up_by_key": core.looked_up, "found_by_key": core.found_by_key}
        if core.unverified:
            meta["missing_not_looked_up"] = core.unverified
        if changed:  # rows came or went after the extract: Core is behind Data Cloud
            meta["datacloud_rows_after_load"] = src.count_now
        if rec.missing:
            meta["missing_sample"] = _sample([(k,) for k in rec.missing], ["key"])
            looked_up = set(rec.missing) - set(core.not_looked_up)  # the rest may be next door
            meta["marked_for_resend"] = resend(ledger, sorted(looked_up))  # deleted in Core
        waiting = _awaiting_delete(settings, spec, context.partition_key, rec.unexpected)
        if waiting:  # gone from Data Cloud, their deletion waits for their children
            meta["unexpected_awaiting_delete"] = len(waiting)
            rec.unexpected = [k for k in rec.unexpected if k not in waiting]
            meta["unexpected_in_core"] = len(rec.unexpected)
        if rec.unexpected:
            meta["unexpected_sample"] = _sample([(k,) for k in rec.unexpected], ["key"])
        return dg.AssetCheckResult(passed=rec.passed and not changed, metadata=meta,
                                   severity=dg.AssetCheckSeverity.ERROR)

    @dg.asset_check(asset=key, name="no_quarantined_rows", partitions_def=partitions,
                    op_tags=LAST,
                    description="The partition loaded without quarantining any row.")
    def no_quarantined_rows(context: dg.AssetCheckExecutionContext,
                            settings: PipelineSettings) -> dg.AssetCheckResult:
        q = _quarantine(settings, spec, context.partition_key)
        reasons = Counter(q.column("error_code").to_pylist()).most_common()
        meta: dict = {"quarantined_rows": q.num_rows}
        if reasons:
            meta["reasons"] = _sample(reasons, ["error_code", "rows"])
        return dg.AssetCheckResult(passed=q.num_rows == 0, metadata=meta,
                                   severity=dg.AssetCheckSeverity.WARN)

    @dg.asset_check(asset=key, name="no_duplicate_external_ids", partitions_def=partitions,
                    op_tags=LAST,
                    description=f"No {spec.target_key} value appears twice in {spec.target}.")
    def no_duplicate_external_ids(context: dg.AssetCheckExecutionContext,
                                  bulk: BulkApiResource) -> dg.AssetCheckResult:
        # Core's own range: keys equal ignoring case sort together in any such collation
        in_core = core_range(context, bulk, plan.range(context.partition_key)).column(
            spec.target_key)
        dup = duplicates(in_core, spec.folds_key)
        meta: dict = {"core_records": len(in_core), "duplicated_keys": len(dup)}
        if dup:
            meta["duplicates_sample"] = _sample(list(dup.items()), ["key", "records"])
        return dg.AssetCheckResult(passed=not dup, metadata=meta,
                                   severity=dg.AssetCheckSeverity.ERROR)

    @dg.asset_check(asset=key, name="fields_match", partitions_def=partitions, op_tags=LAST,
                    description="Mapped fields in Core equal the Data Cloud values (checksum).")
    def fields_match(context: dg.AssetCheckExecutionContext, datacloud: DataCloudResource,
                     bulk: BulkApiResource, settings: PipelineSettings,
                     ledger: LedgerResource) -> dg.AssetCheckResult:
        if spec.operation == "insert":
            return dg.AssetCheckResult(passed=True, metadata={"compared": dg.MetadataValue.text(
                "no: an insert-only sync leaves records as they were created, so Core may "
                "differ from Data Cloud by design")})
        r = plan.range(context.partition_key)
        rows = records(context, bulk, datacloud, settings, r).records
        src = source(context, datacloud, settings, r)
        ready = src.ready if src.ready is not None else prepare(spec, src.table).ready
        skip = set(_quarantine(settings, spec, context.partition_key).column("key").to_pylist())
        cmp = compare_fields(ready, rows, spec.target_key, fields, skip, fold=spec.folds_key,
                             folded_fields=folded_fields, keep_nulls=keep_nulls)
        meta = {"rows_compared": cmp.compared, "datacloud_checksum": cmp.dc_checksum,
                "core_checksum": cmp.core_checksum, "mismatched_values": cmp.mismatched}
        if cmp.mismatches:
            meta["mismatch_sample"] = _sample(cmp.mismatches, ["key", "field", "datacloud",
                                                               "core"])
            meta |= drift(context, ledger, cmp, rows, ready.schema)
        return dg.AssetCheckResult(passed=cmp.passed, metadata=meta,
                                   severity=dg.AssetCheckSeverity.ERROR)

    return [counts_reconcile, no_quarantined_rows, no_duplicate_external_ids, fields_match]
