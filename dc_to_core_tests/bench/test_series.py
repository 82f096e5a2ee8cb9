"""The scale series from two made-up bench runs. No emulator."""

from __future__ import annotations

import importlib.util
import json

from dc_to_core.bench.report import StrategyResult, write
from dc_to_core.bench.series import write_series
from dc_to_core_tests.bench.test_report import META


def bench_run(out, n: int, ours_s: float, batches: int, **extra: object):
    """A bench.json of ``n`` rows: the ceiling in ``n / 1000`` emulated s (3,600,000 rows/h,
    META's capacity), dc_to_core in ``ours_s``."""
    def result(name: str, emulated_s: float, **x: object) -> StrategyResult:
        return StrategyResult(name, "", n, n, 0, emulated_s, 1.0, 10, batches, 1, 0,
                              n / 1e6 * 20, 900.0, extra=dict(x))

    write([result("ceiling", n / 1000), result("dc_to_core", ours_s, **extra)],
          {**META, "rows": n}, out, draw=None)
    return out


def test_write_series_tabulates_and_draws_every_size(tmp_path):
    small = bench_run(tmp_path / "rows_500000", 500_000, 1000, 52, rows_per_partition=250_000,
                      run_peak_rss_mb=640.0)
    big = bench_run(tmp_path / "rows_2000000", 2_000_000, 2500, 202,
                    rows_per_partition=250_000, failed_error_checks=1)
    paths = write_series([(2_000_000, big / "bench.json"), (500_000, small)], tmp_path)
    points = json.loads(paths["json"].read_text())["points"]
    assert [p["rows"] for p in points] == [500_000, 2_000_000]  # smallest first
    assert points[0]["dc_to_core_vs_ceiling"] == 0.5 and points[1]["ceiling_vs_capacity"] == 1
    assert points[1]["dc_to_core_vs_capacity"] == 0.8
    assert points[0]["run_peak_rss_mb"] == 640 and points[1]["run_peak_rss_mb"] == 900
    table = paths["markdown"].read_text()
    assert "| 500,000 | 250,000 | 0.50x | 0.50x | 1.00x | 20.00 | 640 MB | 1.04 | 0 | 0 |" \
        in table
    assert "| 2,000,000 | 250,000 | 0.80x | 0.80x | 1.00x | 20.00 | 900 MB | 1.01 | 0 | 1 |" \
        in table
    if importlib.util.find_spec("matplotlib"):
        assert paths["chart"].stat().st_size > 1000
    else:
        assert "chart" not in paths
