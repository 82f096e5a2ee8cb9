"""A partition's result as Dagster metadata: numbers stay numbers so the UI plots the nights."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

from ..sync.deletes import ALREADY_GONE, DEFERRED, DELETED, FAILED, TRANSIENT
from ..sync.outcome import SAMPLE_ROWS, PartitionResult


def reasons_table(result: PartitionResult) -> dg.TableMetadataValue:
    records = [dg.TableRecord({"error_code": code, "rows": n})
               for code, n in result.by_code.items()]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=[
        dg.TableColumn("error_code", "string"), dg.TableColumn("rows", "int")]))


def sample_table(quarantine: pa.Table) -> dg.TableMetadataValue:
    head = quarantine.slice(0, SAMPLE_ROWS).to_pylist()
    records = [dg.TableRecord({k: (str(v)[:200] if v is not None else "") for k, v in r.items()
                               if k != "stage"}) for r in head]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=[
        dg.TableColumn(c, "string") for c in ("key", "error_code", "error_message", "row")]))


def metadata(result: PartitionResult, quarantine_path: str, deleted_path: str | None = None
             ) -> dict:
    rate = result.extracted / result.duration_s if result.duration_s else 0.0
    out = {
        "range": result.range.label, "range_start": result.range.start or "",
        "range_end": result.range.end or "",
        "rows_extracted": result.extracted, "rows_loaded": result.loaded,
        "rows_created": result.created, "rows_updated": result.updated,
        "rows_quarantined": result.quarantined, "rows_sent": result.sent,
        "rows_unchanged": result.unchanged, "rows_retried": result.retried,
        "dagster/partition_row_count": result.loaded,  # rows Core holds: sent now or unchanged
        "bulk_jobs": len(result.stats.jobs), "bulk_batches": result.stats.batches,
        "repass_rounds": result.stats.rounds, "resumed_jobs": result.stats.resumed_jobs,
        # rows that met a held lock (UNABLE_TO_LOCK_ROW): in the first round, then in all
        "rows_lock_failed_first_round": (result.stats.lock_failed or [0])[0],
        "rows_lock_failed": sum(result.stats.lock_failed),
        "rows_per_s": round(rate, 1), "duration_s": round(result.duration_s, 2),
        "quarantined_by_code": reasons_table(result),
        "quarantine_path": dg.MetadataValue.path(quarantine_path),
        "bulk_job_ids": dg.MetadataValue.json([j.get("id") for j in result.stats.jobs]),
    }
    if result.deleted is not None:  # deletes: mirror
        out |= {"rows_deleted": result.deletes(DELETED),
                "rows_already_gone": result.deletes(ALREADY_GONE),
                "rows_delete_deferred": result.deletes(DEFERRED),
                "rows_delete_failed": result.deletes(FAILED) + result.deletes(TRANSIENT)}
        if deleted_path:
            out["deleted_path"] = dg.MetadataValue.path(deleted_path)
    if result.source_count is not None:
        out["source_count_after_load"] = result.source_count
    for code, n in result.by_code.items():
        out[f"quarantined_{code.lower()}"] = n
    if result.quarantined:
        out["quarantine_sample"] = sample_table(result.quarantine)
    return out
