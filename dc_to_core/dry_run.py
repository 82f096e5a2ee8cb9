"""``dc-to-core preview``: what tonight would do, without doing it.

Runs each selected partition as a dry run (``dc_to_core/dry_run=true``, see
``orchestration.preview``) in this process, against the org the ``DC_TO_CORE_*`` settings
name, on the Dagster instance of ``DAGSTER_HOME`` when set (so the forecast load time uses the
last nights' pace, and the reports appear in the UI as observations), and prints one line per
partition: rows to create, update, delete, left unchanged and quarantined, the Bulk jobs,
batches and API calls, and the limit budget's verdict.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import click
import dagster as dg

from .orchestration.preview import DRY_RUN_TAG
from .orchestration.project import QUIET, build_definitions
from .orchestration.resources import resources_from_env
from .orchestration.settings import limit_share
from .progress import progress
from .salesforce.errors import SalesforceError
from .sync.budget import Budget, BudgetExceeded, Need

COLUMNS = ("sync", "partition", "range", "extracted", "create", "update", "delete",
           "unchanged", "quarantined", "jobs", "batches", "api calls", "budget")
FROM_METADATA = {"extracted": "rows_extracted", "create": "rows_would_create",
                 "update": "rows_would_update", "delete": "rows_would_delete",
                 "unchanged": "rows_unchanged", "quarantined": "rows_quarantined",
                 "jobs": "bulk_jobs", "batches": "bulk_batches", "api calls": "api_calls_estimate"}


@dataclass
class PreviewRow:
    sync: str
    partition: str
    values: dict
    error: str = ""

    def cells(self) -> list[str]:
        if self.error:
            return [self.sync, self.partition, "", *[""] * 9, "FAILED (below)"]
        v = self.values
        return [self.sync, self.partition, str(v.get("range", "")),
                *[f"{int(v.get(FROM_METADATA[c], 0)):,}" for c in COLUMNS[3:12]],
                str(v.get("budget", ""))]


def _row(sync: str, partition: str, result: dg.ExecuteInProcessResult) -> PreviewRow:
    for event in result.all_events:
        if event.event_type_value == "ASSET_OBSERVATION":
            meta = event.event_specific_data.asset_observation.metadata  # type: ignore[union-attr]
            return PreviewRow(sync, partition, {k: v.value for k, v in meta.items()})
    failure = next((e.step_failure_data.error.message for e in result.all_events
                    if e.is_step_failure and e.step_failure_data.error), "")
    failure = failure.removeprefix("dagster._core.definitions.events.Failure: ").strip()
    return PreviewRow(sync, partition, {}, failure or "the dry run ended without a report")


def text_table(head: list[str], body: list[list[str]], left: int = 3) -> str:
    """Columns aligned (the first ``left`` to the left, numbers to the right)."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i < left or i == len(widths) - 1 else f"{{:>{w}}}"
                    for i, w in enumerate(widths))
    return "\n".join(line.rstrip() for line in [
        fmt.format(*head), fmt.format(*["-" * w for w in widths]), *[fmt.format(*b) for b in body]])


def _all_together(need: Need, read_limits: Callable[[], dict] | None, partitions: int
                  ) -> tuple[str, str]:
    """The budget's verdict on every previewed partition at once (each row's own verdict
    looks at that partition alone)."""
    if not need.jobs:
        return "nothing to send", ""
    try:
        share = limit_share(os.environ)
        limits = (read_limits or resources_from_env(resolve=True)["core"].limits)()  # type: ignore[attr-defined]
        Budget(share).check(limits, need, f"the {partitions} partitions together")
    except BudgetExceeded as exc:
        return exc.short, str(exc)
    except (SalesforceError, ValueError) as exc:
        return "unknown", f"the budget could not be checked: {exc}"
    return f"fits ({share:.0%} of the org's daily allocations)", ""


def run_preview(syncs: list[str], partition: str | None,
                echo: Callable[[str], None] = click.echo, defs: dg.Definitions | None = None,
                instance: dg.DagsterInstance | None = None,
                read_limits: Callable[[], dict] | None = None) -> list[PreviewRow]:
    """Dry-run every partition of ``syncs`` (or only ``partition``) and print the table, with
    the budget's verdict on all of them together (``read_limits``: the org's ``/limits``,
    by default through the ``DC_TO_CORE_*`` settings)."""
    defs = defs or build_definitions()
    home = os.environ.get("DAGSTER_HOME") if instance is None else None
    own = instance is None
    if instance is None:
        instance = dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral()
    todo = []
    for sync in syncs:
        keys = defs.resolve_job_def(f"load_{sync}").partitions_def.get_partition_keys()
        if partition is not None and partition not in keys:
            raise click.BadParameter(f"sync {sync} has no partition {partition!r} (it has "
                                     f"{', '.join(keys)})", param_hint="--partition")
        todo += [(sync, p) for p in ([partition] if partition else keys)]
    rows = []
    with (contextlib.nullcontext() if not own else instance,
          progress("dry runs", len(todo), "partitions") as bar):
        for sync, p in todo:
            bar.update(detail=f"{sync} {p}")
            result = defs.resolve_job_def(f"load_{sync}").execute_in_process(
                partition_key=p, instance=instance, raise_on_error=False, run_config=QUIET,
                tags={DRY_RUN_TAG: "true"})
            rows.append(_row(sync, p, result))
            bar.advance()
    sums = {c: sum(int(r.values.get(FROM_METADATA[c], 0)) for r in rows) for c in COLUMNS[3:12]}
    need = Need(sums["jobs"], sums["batches"], sums["api calls"])
    verdict, refusal = _all_together(need, read_limits, len(rows))
    total = ["total", "", "", *[f"{sums[c]:,}" for c in COLUMNS[3:12]], verdict]
    echo(text_table(list(COLUMNS), [*[r.cells() for r in rows], total]))
    if refusal:
        echo(f"all together: {refusal}")
    for r in rows:
        if r.error or r.values.get("budget_refusal"):
            echo(f"{r.sync} {r.partition}: {r.error or r.values['budget_refusal']}")
    echo("nothing was written to Core, the ledger or the sync state"
         + (f"; the reports are observations on the instance at {home}" if home else ""))
    return rows
