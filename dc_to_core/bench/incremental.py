"""The benchmark's incremental night: after a first night has loaded everything, a day of
changes — in Data Cloud 1 % of the Opportunities updated, 0.5 % added and 0.2 % removed, and
in Core 0.1 % edited by someone else — then the next night is measured.

The changes are deterministic (by row position), written to the seeded Data Cloud file
directly (the emulator reads it live) and to Core through the Bulk API (as another
integration would). ``preserved`` restores the Data Cloud file afterwards, so the strategies
that follow meet the seeded org.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from .org import OPPORTUNITIES_DMO, BenchOrg

UPDATED, ADDED, REMOVED, EDITED_IN_CORE = 100, 200, 500, 1000  # one row in N


def change_a_day(org: BenchOrg, data_dir: Path) -> dict[str, int]:
    """Apply the day's changes; returns how many rows of each kind."""
    table = f'"{OPPORTUNITIES_DMO}"'
    with contextlib.closing(sqlite3.connect(data_dir / "datacloud.db", timeout=60)) as dc:
        cols = [r[1] for r in dc.execute(f"PRAGMA table_info({table})")]
        names = ", ".join(f'"{c}"' for c in cols)
        copied = ", ".join('"ExternalId__c" || \'-new\'' if c == "ExternalId__c" else f'"{c}"'
                           for c in cols)  # next to its original: spread over the partitions
        edited = [r[0] for r in dc.execute(f'SELECT "ExternalId__c" FROM {table} WHERE rowid % '
                                           f"{EDITED_IN_CORE} = 19")]  # none updated, removed
        with dc:
            updated = dc.execute(f"UPDATE {table} SET \"Name__c\" = \"Name__c\" || ' (v2)', "
                                 "\"LastModifiedDate__c\" = strftime('%Y-%m-%dT%H:%M:%SZ') "
                                 f"WHERE rowid % {UPDATED} = 7").rowcount
            removed = dc.execute(f"DELETE FROM {table} WHERE rowid % {REMOVED} = 3").rowcount
            added = dc.execute(f"INSERT INTO {table} ({names}) SELECT {copied} FROM {table} "
                               f"WHERE rowid % {ADDED} = 11").rowcount
        total = dc.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    outcome = org.bulk().upsert("Opportunity", "External_Id__c", pa.table({
        "External_Id__c": edited, "Name": ["edited in Core"] * len(edited)}))
    return {"updated": updated, "added": added, "removed": removed,
            "edited_in_core": outcome.loaded, "rows_after": total}


@contextlib.contextmanager
def preserved(data_dir: Path) -> Iterator[None]:
    """Restore the seeded Data Cloud file after the block, through SQLite's backup API (safe
    with readers open on it)."""
    db = data_dir / "datacloud.db"
    keep = data_dir / "datacloud.db.before-incremental"
    _copy(db, keep)
    try:
        yield
    finally:
        _copy(keep, db)
        keep.unlink(missing_ok=True)


def _copy(source: Path, target: Path) -> None:
    with contextlib.closing(sqlite3.connect(source, timeout=60)) as src, contextlib.closing(
            sqlite3.connect(target, timeout=60)) as dst:
        src.backup(dst)
