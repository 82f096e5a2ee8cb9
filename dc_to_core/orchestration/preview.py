"""Dry runs: a run tagged ``dc_to_core/dry_run=true`` reads, prepares, checks against the
org and diffs like a night, then reports what the night would do instead of doing it.

Nothing is written to Core, to the ledger (no lease, no job), or to the sync state; no file
the checks read is replaced. The partition's report is an observation of its asset (so the
UI shows it next to the nights, and the asset is not marked materialized): the rows that
would be created, updated, deleted, left unchanged and quarantined (by reason), the Bulk jobs
and batches (exactly what the run would send), the API calls (estimated polls included), the
budget's verdict, and the load time the partition's last load's pace forecasts.
"""

from __future__ import annotations

import json
from collections import Counter

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from ..salesforce.rest import RestApi
from ..sync.budget import Budget, BudgetExceeded, Need
from .settings import PipelineSettings

DRY_RUN_TAG = "dc_to_core/dry_run"
PREVIEW = b"dc_to_core.preview"  # the changes step's counts, on the rows to send


def is_dry_run(context: dg.OpExecutionContext) -> bool:
    return context.run.tags.get(DRY_RUN_TAG, "").lower() == "true"


def with_preview(table: pa.Table, **counts: object) -> pa.Table:
    """``table`` carrying more of the preview's counts in its schema metadata."""
    meta = table.schema.metadata or {}
    known = json.loads(meta.get(PREVIEW, b"{}"))
    return table.replace_schema_metadata({**meta, PREVIEW: json.dumps({**known, **counts})})


def preview_of(table: pa.Table) -> dict:
    return json.loads((table.schema.metadata or {}).get(PREVIEW, b"{}"))


def need_json(need: Need) -> dict:
    return {"jobs": need.jobs, "batches": need.batches, "api_calls": need.api_calls}


def codes_of(*tables: pa.Table) -> Counter:
    """Quarantine reasons by code, over tables with an ``error_code`` column."""
    found: Counter = Counter()
    for t in tables:
        if t.num_rows:
            counts = pc.value_counts(t.column("error_code").combine_chunks())
            found.update(dict(zip(counts.field("values").to_pylist(),
                                  counts.field("counts").to_pylist(), strict=True)))
    return found


def budget_verdict(settings: PipelineSettings, core: RestApi, need: Need, what: str
                   ) -> tuple[str, str]:
    """What the limit budget would say to a run that sends ``need``: (in short, in full)."""
    if not need.jobs:
        return "nothing to send", ""
    try:
        Budget(settings.limit_share).check(core.limits(), need, what.format(need.jobs))
    except BudgetExceeded as exc:
        return exc.short, str(exc)
    return f"fits ({settings.limit_share:.0%} of the org's daily allocations)", ""


def preview_metadata(extracted: int, send: pa.Table, rejected: pa.Table, kept: pa.Table,
                     range_label: str, load: dict, deletes: dict, last_pace: float | None
                     ) -> dict:
    """What the night would do to one partition, as Dagster metadata (``load`` and
    ``deletes``: the forecasts of the load and delete steps)."""
    p = preview_of(send)
    refused = kept.filter(pc.is_in(kept.column("kind"), pa.array(["refused", "missing"])))
    by_code = codes_of(rejected, refused)
    meta: dict = {
        "dry_run": True, "range": range_label, "rows_extracted": extracted,
        "rows_would_create": int(p.get("new", 0)),
        "rows_would_update": send.num_rows - int(p.get("new", 0)),
        "rows_would_delete": int(deletes.get("rows", 0)),
        "rows_delete_deferred": int(deletes.get("deferred", 0)),  # children still in Core
        "rows_unchanged": kept.num_rows - refused.num_rows,
        "rows_quarantined": sum(by_code.values()),
        "quarantined_by_code": dg.MetadataValue.table(
            [dg.TableRecord({"error_code": c, "rows": n}) for c, n in by_code.most_common()],
            schema=dg.TableSchema(columns=[dg.TableColumn("error_code", "string"),
                                           dg.TableColumn("rows", "int")])),
        "bulk_jobs": int(load.get("jobs", 0)) + int(deletes.get("jobs", 0)),
        "bulk_batches": int(load.get("batches", 0)) + int(deletes.get("batches", 0)),
        "api_calls_estimate": int(load.get("api_calls", 0)) + int(deletes.get("api_calls", 0)),
        "budget": str(load.get("budget") or "nothing to send"),
    }
    if load.get("budget_refusal"):
        meta["budget_refusal"] = str(load["budget_refusal"])
    if p.get("delete_refused"):
        meta["deletes_refused"] = str(p["delete_refused"])
    if last_pace:  # rows per second the partition's last load sent at
        meta["forecast_load_s"] = round(send.num_rows / last_pace, 1)
    return meta
