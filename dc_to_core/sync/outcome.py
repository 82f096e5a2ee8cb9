"""The end of a partition's load: every extracted row is loaded or quarantined with its reason.

``account`` joins the prepare rejects and the load outcome into one quarantine table and the
counts the materialization reports (the Dagster layer renders them as metadata).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from ..salesforce.bulk_results import LOADED
from .arrow_files import SUFFIX, arrow_schema, read_arrow, write_arrow
from .loading import TRANSIENT_CODES, LoadStats
from .plan import KeyRange
from .prepare import QUARANTINE, ROW, quarantine_table, source_rows_json
from .spec import SyncSpec

SAMPLE_ROWS = 20
EXTRACT_RUN, EXTRACT_COUNT = b"dc_to_core.run_id", b"dc_to_core.source_count"


class RunExtract(NamedTuple):
    source: pa.Table        # the rows the run read from Data Cloud
    ready: pa.Table         # those rows as prepared and sent
    count_now: int | None   # Data Cloud's count of the range after the load


@dataclass
class PartitionResult:
    sync: str
    partition: str
    range: KeyRange
    extracted: int
    loaded: int              # rows Core holds as the source has them: sent now or unchanged
    created: int
    quarantine: pa.Table
    stats: LoadStats = field(default_factory=LoadStats)
    duration_s: float = 0.0
    source_count: int | None = None
    sent: int = 0            # rows uploaded (first attempts; re-passes are in the stats)
    unchanged: int = 0       # rows Core already held as they are: not sent
    retried: int = 0         # rows sent again because their last error can heal
    deleted: pa.Table | None = None  # keys gone from the source (sync.deletes), if mirrored

    def deletes(self, status: str) -> int:
        """Keys gone from the source whose delete ended ``status`` (sync.deletes)."""
        if self.deleted is None:
            return 0
        return int(pc.sum(pc.equal(self.deleted.column("status"), status)).as_py() or 0)

    @property
    def quarantined(self) -> int:
        return self.quarantine.num_rows

    @property
    def updated(self) -> int:
        return self.loaded - self.created - self.unchanged

    @property
    def by_code(self) -> dict[str, int]:
        return dict(Counter(self.quarantine.column("error_code").to_pylist()).most_common())

    @property
    def transient_left(self) -> int:
        codes = self.quarantine.column("error_code").to_pylist()
        return sum(1 for c in codes if c in TRANSIENT_CODES or c == "UNPROCESSED")

    @property
    def accounted(self) -> bool:
        return self.extracted == self.loaded + self.quarantined


def account(spec: SyncSpec, key_range: KeyRange, partition: str, source: pa.Table,
            rejected: pa.Table, sent: pa.Table, outcome: pa.Table, kept: pa.Table,
            stats: LoadStats, duration_s: float, retried: int = 0) -> PartitionResult:
    """The partition's result from the prepare rejects, the rows ``sent`` with their
    ``outcome``, and the rows ``kept`` back (``sync.changes.kept_rows``): unchanged rows
    count as loaded, rows the org refused before and that did not change are quarantined
    again with the org's code."""
    loaded_mask = pc.equal(outcome.column("status"), LOADED)
    failed = pc.indices_nonzero(pc.invert(loaded_mask)).to_pylist()
    rows = sent.column(ROW).to_pylist()
    codes = outcome.column("error_code").to_pylist()
    messages = outcome.column("error_message").to_pylist()
    statuses = outcome.column("status").to_pylist()
    keys = sent.column(spec.target_key).to_pylist()
    load_quarantine = quarantine_table(
        [keys[i] for i in failed],
        [codes[i] or statuses[i].upper() for i in failed],
        [messages[i] or f"the org left this row {statuses[i]}" for i in failed],
        "load", source_rows_json(source, [rows[i] for i in failed]))
    refused = kept.filter(pc.equal(kept.column("kind"), "refused"))
    refused_codes = refused.column("error_code").to_pylist()
    still_refused = quarantine_table(
        refused.column("key").to_pylist(), refused_codes,
        [f"the org refused this row ({code}) when it was last sent, and its Data Cloud row "
         "has not changed since, so it was not sent again; fix the row in Data Cloud"
         for code in refused_codes],
        "unchanged", source_rows_json(source, refused.column(ROW).to_pylist()))
    missing = kept.filter(pc.equal(kept.column("kind"), "missing"))
    not_in_core = quarantine_table(
        missing.column("key").to_pylist(), missing.column("error_code").to_pylist(),
        [f"{spec.target} holds no record with {spec.target_key} {k!r}, and sync {spec.name} "
         "only updates (operation: update): it never creates records. Load the record first, "
         "or make the sync an upsert" for k in missing.column("key").to_pylist()],
        "changes", source_rows_json(source, missing.column(ROW).to_pylist()))
    quarantine = pa.concat_tables([rejected.cast(QUARANTINE), load_quarantine, still_refused,
                                   not_in_core])
    unchanged = kept.num_rows - refused.num_rows - missing.num_rows
    loaded = int(pc.sum(loaded_mask).as_py() or 0) + unchanged
    created = int(pc.sum(pc.and_(loaded_mask, pc.fill_null(outcome.column("created"), False))
                         ).as_py() or 0)
    return PartitionResult(spec.name, partition, key_range, source.num_rows, loaded, created,
                           quarantine, stats, duration_s, sent=sent.num_rows,
                           unchanged=unchanged, retried=retried)


def save_extract(path: Path, source: pa.Table, ready: pa.Table, run_id: str,
                 source_count: int | None) -> None:
    """Keep the partition's extract and its prepared rows (the latest run's only) for the
    checks of the same run: they reconcile Core against the rows this run read and sent, not
    a second Data Cloud read and prepare."""
    meta = {**(source.schema.metadata or {}), EXTRACT_RUN: run_id.encode(),
            EXTRACT_COUNT: str(-1 if source_count is None else source_count).encode()}
    write_arrow(_ready_path(path), ready)
    write_arrow(path, source.replace_schema_metadata(meta))  # last: it marks the pair whole


def run_extract(path: Path, run_id: str) -> RunExtract | None:
    """The extract, prepared rows and Data Cloud count after the load saved by run
    ``run_id``, or None."""
    if not path.exists():
        return None
    meta = arrow_schema(path).metadata or {}
    if meta.get(EXTRACT_RUN, b"").decode() != run_id:
        return None
    count = int(meta.get(EXTRACT_COUNT, b"-1"))
    return RunExtract(read_arrow(path), read_arrow(_ready_path(path)),
                      None if count < 0 else count)


def _ready_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(SUFFIX) + ".ready" + SUFFIX)
