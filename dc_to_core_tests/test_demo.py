"""``dc-to-core demo`` end to end on a small org: every partition of both syncs loads, rows
are accounted for, checks pass, and the summary table says so."""

from __future__ import annotations

import re
import sqlite3

from click.testing import CliRunner

from dc_to_core.cli import main
from dc_to_core.demo import PartitionRow, summary_table


def test_demo_loads_every_partition_and_summarises(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--opportunities", "600", "--accounts", "9",
                                       "--bad-share", "0.02", "--partitions", "2",
                                       "--keep", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = {tuple(line.split()[:2]): line.split() for line in result.output.splitlines()
            if re.match(r"^(Account|Account_hierarchy|Contact|Opportunity)\s+p0\d", line)}
    assert sorted(rows) == [(sync, p) for sync in ("Account", "Account_hierarchy", "Contact",
                                                   "Opportunity") for p in ("p00", "p01")]
    total = next(line for line in result.output.splitlines() if line.startswith("total"))
    extracted, loaded, quarantined = (int(x.replace(",", "")) for x in total.split()[1:4])
    # 9 accounts (twice: the records, then their hierarchy), 18 contacts, 600 opportunities
    assert extracted == 636 and loaded + quarantined == extracted and quarantined > 0
    assert "FAILED" not in result.output and "run failed" not in result.output
    assert "materializing partitions: 8/8 partitions (100%), done in " in (
        result.stderr)  # not a terminal: plain progress lines
    with sqlite3.connect(tmp_path / "org" / "core.db") as db:
        in_core = sum(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                      for t in ("Account", "Contact", "Opportunity"))
        parents = db.execute("SELECT COUNT(ParentId) FROM Account").fetchone()[0]
    rows_of = {s: sum(int(r[4].replace(",", "")) for k, r in rows.items() if k[0] == s)
               for s in ("Account", "Account_hierarchy")}
    assert in_core == loaded - rows_of["Account_hierarchy"]  # the same records, twice
    assert parents > 0 and rows_of["Account_hierarchy"] == rows_of["Account"]
    assert list((tmp_path / "state" / "quarantine" / "Opportunity").glob("*/latest.parquet"))


def test_summary_table_marks_failed_checks_and_runs():
    table = summary_table([
        PartitionRow("Opportunity", "p00", "[-inf, +inf)", 10, 9, 1, ["counts_reconcile"]),
        PartitionRow("Opportunity", "p01", "[-inf, +inf)", 0, 0, 0, error="boom"),
        PartitionRow("Account", "p00", "[-inf, +inf)", 5, 5, 0, [], ["no_quarantined_rows"]),
    ])
    assert "FAILED: counts_reconcile" in table and "run failed" in table
    assert "passed (warn: no_quarantined_rows)" in table
    assert table.splitlines()[-1].split()[:4] == ["total", "15", "14", "1"]
