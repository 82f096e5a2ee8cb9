"""Reconciliation of Data Cloud against Core, per partition: plain functions (tested on their
own) and the asset checks that run them for the partition just materialized.

- ``counts_reconcile`` (ERROR): every Data Cloud key in the range is in Core unless it was
  quarantined, and Core holds no key the range does not have. Reported as counts too:
  Data Cloud rows, Core records, quarantined rows.
- ``no_quarantined_rows`` (WARN): the partition's quarantine is empty; else the reasons.
- ``no_duplicate_external_ids`` (ERROR): no external id appears twice in Core in the range.
- ``fields_match`` (ERROR): a checksum of the mapped fields, Data Cloud (as prepared) vs
  Core, and the rows that differ.

Run with the materialization, the checks take the Data Cloud side from the extract that run
saved (with Data Cloud's count after the load, which must still match), so a partition is
read from Data Cloud once per run; run on their own, they read the range again.
"""


import hashlib
import threading
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .bulk import BulkApiResource
from .datacloud import DataCloudResource
from .dc_arrow import combine, joined_text
from .ops import asset_key, operator_errors
from .outcome import SAMPLE_ROWS, run_extract
from .plan import KeyRange, PartitionPlan
from .prepare import QUARANTINE, prepare
from .settings import PipelineSettings
from .syncs import SyncSpec

MICRO = 1_000_000.0
T = TypeVar("T")
Keys = pa.Array | pa.ChunkedArray | list[str | None]


@dataclass
class Reconciliation:
    dc_rows: int
    core_rows: int
    quarantined: int
    missing: list[str] = field(default_factory=list)     # in DC, not quarantined, not in Core
    unexpected: list[str] = field(default_factory=list)  # in Core, not in the DC range

    @property
    def passed(self) -> bool:
        return not self.missing and not self.unexpected


def reconcile(dc_keys: Keys, core_keys: Keys, quarantined_keys: Keys,
              quarantined_rows: int) -> Reconciliation:
    """Missing: a Data Cloud key neither quarantined nor in Core; unexpected: a Core key
    Data Cloud's range does not have (both distinct and sorted; null keys never match)."""
    dc, core, quarantined = _keys(dc_keys), _keys(core_keys), _keys(quarantined_keys)
    known, listed = pc.unique(dc.drop_null()), pc.unique(core.drop_null())
    missing = known.filter(pc.invert(pc.or_(pc.is_in(known, value_set=listed),
                                            pc.is_in(known, value_set=quarantined))))
    unexpected = listed.filter(pc.invert(pc.is_in(listed, value_set=known)))
    return Reconciliation(len(dc), len(core), quarantined_rows, _sorted(missing),
                          _sorted(unexpected))


def duplicates(keys: Keys) -> dict[str, int]:
    counts = pc.value_counts(_keys(keys).drop_null())
    dup = counts.filter(pc.greater(counts.field("counts"), 1))
    return dict(zip(dup.field("values").to_pylist(), dup.field("counts").to_pylist(),
                    strict=True))


def _keys(keys: Keys) -> pa.Array:
    if isinstance(keys, pa.ChunkedArray):
        return keys.combine_chunks()
    return keys if isinstance(keys, pa.Array) else pa.array(keys, pa.string())


def _sorted(keys: pa.Array) -> list[str]:
    return keys.take(pc.sort_indices(keys)).to_pylist()


def _canonical(arr: pa.Array, like: pa.DataType) -> pa.Array:
    """One comparable form for a column whichever side it came from (Arrow as prepared, or
    Core's text): numbers as integer millionths, dates as ``YYYY-MM-DD``, datetimes
    as UTC ``YYYY-MM-DDTHH:MM:SS``, booleans as bool, other text with empty meaning null."""
    try:
        if _is_number(like):  # integer millionths: float noise (…19000000001) compares equal
            number = pc.cast(_text(arr) if _is_text(arr) else arr, pa.float64())
            return pc.cast(pc.round(pc.multiply(number, MICRO)), pa.int64())
        if pa.types.is_boolean(like):
            return arr if pa.types.is_boolean(arr.type) else pc.is_in(
                pc.utf8_lower(_text(arr)), pa.array(["true", "1"]))
        if pa.types.is_timestamp(like):
            text = _text(arr) if _is_text(arr) else pc.strftime(arr, "%Y-%m-%dT%H:%M:%S")
            return pc.utf8_slice_codeunits(text, 0, 19)
        if pa.types.is_date(like):
            return pc.utf8_slice_codeunits(_text(arr), 0, 10)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass  # a value that does not parse: compared as text, so it shows as a mismatch
    text = _text(arr)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _shown(arr: pa.Array, like: pa.DataType) -> pa.Array:
    """A canonical column as a person reads it (numbers back from millionths)."""
    if _is_number(like) and pa.types.is_integer(arr.type):
        return pc.divide(pc.cast(arr, pa.float64()), MICRO)
    return arr


def _is_text(arr: pa.Array) -> bool:
    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)


def _text(arr: pa.Array) -> pa.Array:
    return arr if _is_text(arr) else pc.cast(arr, pa.string())


@dataclass
class FieldsComparison:
    compared: int
    dc_checksum: str
    core_checksum: str
    mismatched: int                                     # values that differ
    mismatches: list[tuple[str, str, object, object]]  # a sample: key, field, Data Cloud, Core

    @property
    def passed(self) -> bool:
        return not self.mismatched


def _checksum(key: pa.Array, columns: list[pa.Array]) -> str:
    """sha256 of the rows as text (fields joined by U+001F, rows by newlines), built by Arrow:
    the same digest as joining Python strings, without making a string per row."""
    text = [pc.fill_null(_text(c), "\u2205") for c in columns]
    rows = pc.binary_join_element_wise(key, *text, "\x1f")
    return hashlib.sha256(joined_text(rows, "\n")).hexdigest()[:16]


def compare_fields(dc: pa.Table, core: pa.Table, key: str, fields: list[str],
                   skip: set[str], sample: int = SAMPLE_ROWS) -> FieldsComparison:
    """Compare ``fields`` for every key present on both sides (minus ``skip``), vectorised:
    each Data Cloud row meets the first Core record with its key (duplicates have their own
    check), in key order."""
    dc = dc.select([key, *fields])
    if skip:
        dc = dc.filter(pc.invert(pc.is_in(dc.column(key), pa.array(list(skip), pa.string()))))
    at = pc.index_in(dc.column(key), value_set=_keys(core.column(key)), skip_nulls=True)
    dc, at = dc.filter(pc.is_valid(at)), at.drop_null()
    order = pc.sort_indices(dc.column(key))
    dc, at = dc.take(order), at.take(order)
    right = core.select(fields).take(at)
    keys = dc.column(key).combine_chunks()
    left_cols, right_cols, mismatches, mismatched = [], [], [], 0
    for f in fields:
        like = dc.schema.field(f).type
        a = _canonical(dc.column(f).combine_chunks(), like)
        b = _canonical(right.column(f).combine_chunks(), like)
        if a.type != b.type:
            a, b = _text(a), _text(b)
        left_cols.append(a)
        right_cols.append(b)
        same = pc.or_(pc.fill_null(pc.equal(a, b), False),
                      pc.and_(pc.is_null(a), pc.is_null(b)))
        differ = pc.invert(same)
        n = pc.sum(differ).as_py() or 0
        mismatched += n
        if n and len(mismatches) < sample:
            idx = pc.indices_nonzero(differ)[:sample - len(mismatches)]
            mismatches += zip(keys.take(idx).to_pylist(), [f] * len(idx),
                              _shown(a.take(idx), like).to_pylist(),
                              _shown(b.take(idx), like).to_pylist(), strict=True)
    return FieldsComparison(dc.num_rows, _checksum(keys, left_cols),
                            _checksum(keys, right_cols), mismatched, mismatches)


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
    path = Path(settings.state_dir, "quarantine", spec.name, partition, "latest.parquet")
    return pq.read_table(path) if path.exists() else QUARANTINE.empty_table()


def _sample(rows: list[tuple], names: list[str]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        [dg.TableRecord({n: str(v) for n, v in zip(names, r, strict=True)})
         for r in rows[:SAMPLE_ROWS]],
        schema=dg.TableSchema(columns=[dg.TableColumn(n, "string") for n in names]))


def build_checks(spec: SyncSpec, plan: PartitionPlan, partitions: dg.PartitionsDefinition
                 ) -> list[dg.AssetChecksDefinition]:
    """The four checks of a sync, partitioned like its asset (a preview feature of Dagster
    1.13 that works as documented for one-partition runs; its warning is silenced here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return _build_checks(spec, plan, partitions)


def _build_checks(spec: SyncSpec, plan: PartitionPlan, partitions: dg.PartitionsDefinition
                  ) -> list[dg.AssetChecksDefinition]:
    key = asset_key(spec)
    fields = [f.target for f in spec.fields] + ([spec.parent.relationship] if spec.parent
                                                else [])

    reads: RangeReads[SourceRows] = RangeReads()
    core_reads: RangeReads[pa.Table] = RangeReads()

    def source(context: dg.AssetCheckExecutionContext, datacloud: DataCloudResource,
               settings: PipelineSettings, r: KeyRange) -> SourceRows:
        def read() -> SourceRows:
            saved = run_extract(settings.extract_path(spec.name, r.key), context.run.run_id)
            if saved is not None:
                return SourceRows(saved.source, "this run's extract", saved.count_now,
                                  saved.ready)
            with operator_errors(f"reading {spec.source} {r.label}"):
                table = combine(list(datacloud.read_range(
                    spec.source, spec.source_columns[1:], spec.source_key, r.start, r.end)),
                    spec.source_columns)
            return SourceRows(table, "Data Cloud, read by the check", table.num_rows)
        return reads.get(context.run.run_id, ("dc", r.key), read)

    def records(context: dg.AssetCheckExecutionContext, bulk: BulkApiResource, r: KeyRange
                ) -> pa.Table:
        def read() -> pa.Table:  # a Bulk API 2.0 query job: CSV pages, one call per page
            with operator_errors(f"reading {spec.target} {r.label}"):
                return bulk.read_range(spec.target, [spec.target_key, *fields],
                                       spec.target_key, r.start, r.end)
        return core_reads.get(context.run.run_id, ("core", r.key), read)

    @dg.asset_check(asset=key, name="counts_reconcile", partitions_def=partitions,
                    description="Every Data Cloud row of the range is in Core or quarantined.")
    def counts_reconcile(context: dg.AssetCheckExecutionContext, datacloud: DataCloudResource,
                         bulk: BulkApiResource, settings: PipelineSettings
                         ) -> dg.AssetCheckResult:
        r = plan.range(context.partition_key)
        src = source(context, datacloud, settings, r)
        q = _quarantine(settings, spec, context.partition_key)
        rec = reconcile(src.table.column(spec.source_key),
                        records(context, bulk, r).column(spec.target_key), q.column("key"),
                        q.num_rows)
        changed = src.count_now is not None and src.count_now != rec.dc_rows
        meta = {"range": r.label, "datacloud_rows": rec.dc_rows, "datacloud_read": src.origin,
                "core_records": rec.core_rows, "quarantined_rows": rec.quarantined,
                "missing_in_core": len(rec.missing), "unexpected_in_core": len(rec.unexpected)}
        if changed:  # rows came or went after the extract: Core is behind Data Cloud
            meta["datacloud_rows_after_load"] = src.count_now
        if rec.missing:
            meta["missing_sample"] = _sample([(k,) for k in rec.missing], ["key"])
        if rec.unexpected:
            meta["unexpected_sample"] = _sample([(k,) for k in rec.unexpected], ["key"])
        return dg.AssetCheckResult(passed=rec.passed and not changed, metadata=meta,
                                   severity=dg.AssetCheckSeverity.ERROR)

    @dg.asset_check(asset=key, name="no_quarantined_rows", partitions_def=partitions,
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
                    description=f"No {spec.target_key} value appears twice in {spec.target}.")
    def no_duplicate_external_ids(context: dg.AssetCheckExecutionContext,
                                  bulk: BulkApiResource) -> dg.AssetCheckResult:
        in_core = records(context, bulk, plan.range(context.partition_key)).column(
            spec.target_key)
        dup = duplicates(in_core)
        meta: dict = {"core_records": len(in_core), "duplicated_keys": len(dup)}
        if dup:
            meta["duplicates_sample"] = _sample(list(dup.items()), ["key", "records"])
        return dg.AssetCheckResult(passed=not dup, metadata=meta,
                                   severity=dg.AssetCheckSeverity.ERROR)

    @dg.asset_check(asset=key, name="fields_match", partitions_def=partitions,
                    description="Mapped fields in Core equal the Data Cloud values (checksum).")
    def fields_match(context: dg.AssetCheckExecutionContext, datacloud: DataCloudResource,
                     bulk: BulkApiResource, settings: PipelineSettings
                     ) -> dg.AssetCheckResult:
        r = plan.range(context.partition_key)
        rows = records(context, bulk, r)
        src = source(context, datacloud, settings, r)
        ready = src.ready if src.ready is not None else prepare(spec, src.table).ready
        skip = set(_quarantine(settings, spec, context.partition_key).column("key").to_pylist())
        cmp = compare_fields(ready, rows, spec.target_key, fields, skip)
        meta = {"rows_compared": cmp.compared, "datacloud_checksum": cmp.dc_checksum,
                "core_checksum": cmp.core_checksum, "mismatched_values": cmp.mismatched}
        if cmp.mismatches:
            meta["mismatch_sample"] = _sample(cmp.mismatches, ["key", "field", "datacloud",
                                                               "core"])
        return dg.AssetCheckResult(passed=cmp.passed, metadata=meta,
                                   severity=dg.AssetCheckSeverity.ERROR)

    return [counts_reconcile, no_quarantined_rows, no_duplicate_external_ids, fields_match]
