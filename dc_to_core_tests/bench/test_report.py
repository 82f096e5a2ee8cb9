"""bench.json, bench.md and the charts from made-up results: the org's capacity, the timeline
summary, the files written. No emulator, no timings."""

from __future__ import annotations

import json

import pytest

from dc_to_core.bench.report import StrategyResult, capacity_rows_per_hour, markdown, write

# 10 workers * 100 rows / ((50 + 9.5 * 100) / 1000 s) * 3600 = 3,600,000 rows per hour
PROFILE = {"workers": 10, "txn_rows": 100, "txn_base_ms": 50.0, "row_ms": 9.5,
           "chunk_rows": 1000}
META = {"rows": 1000, "accounts": 10, "profile": "made-up", "time_scale": 50, "workers": 10,
        "lock_timeout_s": 5, "row_ms": 9.5, "profile_values": PROFILE}


def result(name: str, loaded: int, emulated_s: float, **extra: object) -> StrategyResult:
    """A result of 1,000 rows, ``loaded`` of them in ``emulated_s``."""
    return StrategyResult(name, "", 1000, loaded, 0, emulated_s, 1.0, 10, 1, 1, 0, 0.5, 99.0,
                          extra=dict(extra))


def test_capacity_is_every_worker_committing_full_transactions():
    assert capacity_rows_per_hour(PROFILE) == pytest.approx(3_600_000)


def test_write_puts_the_capacity_into_meta_and_each_result(tmp_path):
    # ceiling: 1,000 rows in 1 s = 3,600,000 rows/h = the capacity; ours half of it
    paths = write([result("ceiling", 1000, 1.0), result("dc_to_core", 1000, 2.0)], META,
                  tmp_path, draw=None)
    body = json.loads(paths["json"].read_text())
    assert body["meta"]["capacity_rows_per_hour"] == 3_600_000
    assert "capacity_rows_per_hour" not in META  # the caller's dict is left alone
    ours = body["results"][1]
    assert ours["throughput_vs_ceiling"] == 0.5 and ours["throughput_vs_capacity"] == 0.5
    table = paths["markdown"].read_text()
    assert "| vs ceiling | vs capacity | org busy |" in table
    assert "| 1,800,000 | 0.50x | 0.50x | — |" in table
    assert "Org capacity (`vs capacity`): 3,600,000 rows per emulated hour" in table
    assert "10 * 100 / 1 s * 3600" in table


def test_markdown_without_profile_values_has_no_capacity():
    rows = [result("ceiling", 1000, 3600).as_dict(None)]
    table = markdown(rows, {k: v for k, v in META.items() if k != "profile_values"})
    assert rows[0]["throughput_vs_capacity"] is None
    assert "| 1,000 | — | — | — |" in table and "Org capacity" not in table
