"""bench.json, bench.md and the charts from made-up results: the org's capacity, the timeline
summary, the files written. No emulator, no timings."""

from __future__ import annotations

import json

import pytest

from dc_to_core.bench.report import StrategyResult, capacity_rows_per_hour, markdown, write
from dc_to_core.bench.timeline import lock_wait_rate, summary

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


# 10 workers; 60 s samples: 2 busy, 3, then 8 for three minutes (> 5: the startup gap ends at
# 180 s), 6, 5 (the last with at least half busy, at 360 s), 1 until 420 s; the strategy ends
# at 450 s.
TIMELINE = {"t_s": [60, 120, 180, 240, 300, 360, 420],
            "busy_workers": [2, 3, 8, 8, 6, 5, 1],
            "records": [0, 50, 200, 400, 600, 900, 1000],
            "lock_wait_s": [0, 0, 0, 30, 30, 30, 30]}


def test_the_timeline_summary_gives_startup_gap_tail_and_mean_busy():
    assert summary(TIMELINE, 10, end_s=450) == {
        "startup_gap_s": 180, "tail_s": 90, "mean_busy_workers": round(33 / 7, 2)}
    assert summary(TIMELINE, 20)["startup_gap_s"] is None  # never more than half of 20 busy
    assert summary({"t_s": [], "busy_workers": []}, 10) is None
    assert lock_wait_rate(TIMELINE) == [0, 0, 0, 0.5, 0, 0, 0]


def test_as_dict_and_markdown_summarise_timelines_only_where_there_are_some(tmp_path):
    timed = result("dc_to_core", 1000, 450, timeline=TIMELINE)
    rows = [r.as_dict(None, None, 10) for r in (result("ceiling", 1000, 60), timed)]
    assert "timeline_summary" not in rows[0]
    assert rows[1]["timeline_summary"]["tail_s"] == 90
    table = markdown(rows, META)
    assert "| dc_to_core | 3.0 min | 1.5 min | 4.7 |" in table
    assert "startup gap" not in markdown(rows[:1], META)


def test_write_draws_bench_and_timeline_charts_when_matplotlib_exists(tmp_path):
    pytest.importorskip("matplotlib")
    paths = write([result("ceiling", 1000, 1.0),
                   result("dc_to_core", 1000, 450, timeline=TIMELINE)], META, tmp_path)
    assert paths["chart"].stat().st_size > 1000 and paths["timeline"].stat().st_size > 1000
    assert "timeline" not in write([result("ceiling", 1000, 1.0)], META, tmp_path / "none")
