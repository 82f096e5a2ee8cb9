"""``dc-to-core bench`` smoke test (50,000 rows): correctness only, never timings. Every
strategy ran against the same org; dc_to_core accounted for every row; the seed replays ran."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pyarrow as pa
import pytest
from click.testing import CliRunner

from dc_to_core.bench.org import BenchOrg
from dc_to_core.bench.report import StrategyResult, markdown
from dc_to_core.bench.run import ALL, BenchConfig, _clock, _overrides
from dc_to_core.bench.strategies import pages
from dc_to_core.cli import main
from dc_to_core.emulator import load_profile

ROWS = 50_000  # the smoke's size: correctness only, in minutes


@pytest.mark.bench
def test_bench_smoke_accounts_for_every_row(tmp_path, monkeypatch, postgres):
    monkeypatch.setenv("DC_TO_CORE_AUTOMATION_INTERVAL_S", "5")  # the daemon's, in minutes
    out = tmp_path / "results"
    result = CliRunner().invoke(main, ["bench", "--rows", str(ROWS), "--rows-per-partition",
                                       str(ROWS // 2), "--no-next-night",
                                       "--busy-time-scale", "0",  # the
                                       "--out", str(out), "--work",  # profile's clock
                                       str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    body = json.loads((out / "bench.json").read_text())
    by_name = {r["name"]: r for r in body["results"]}
    assert list(by_name) == ALL
    assert all("error" not in r["extra"] for r in by_name.values()), by_name
    ours = by_name["dc_to_core"]
    assert ours["lost"] == 0 and ours["loaded"] + ours["quarantined"] == ROWS
    assert ours["extra"]["failed_runs"] == 0 and ours["extra"]["failed_error_checks"] == 0
    assert ours["extra"]["runs"] == 3  # Account, its hierarchy pass and Contact, 1 partition
                                       # each (1,000 and 2,000 rows): one run; Opportunity 2
    # as deployed: the daemon launched a run worker per run, sampled with the rest of it
    assert ours["extra"]["run_worker_processes"] == 3, ours["extra"]
    assert ours["extra"]["run_peak_rss_mb"] > 50
    assert set(ours["extra"]["deployment_cpu_s_by_process"]) >= {"daemon", "code server",
                                                                 "run worker"}
    # the client's CPU is the deployment's; the bench's own watching is apart
    assert ours["client_cpu_s"] == ours["extra"]["deployment_cpu_s"]
    assert ours["extra"]["bench_process_cpu_s"] > 0
    timeline = ours["extra"]["timeline"]
    assert max(timeline["records"]) == ROWS and max(timeline["busy_workers"]) > 0
    assert ours["throughput_vs_capacity"] is not None
    assert by_name["ceiling"]["success_rate"] == 1.0
    for name in ("seed Test3", "seed Test4", "seed Test7", "seed Test8"):
        seed = by_name[name]
        assert seed["loaded"] > 0 and seed["bulk_jobs"] >= ROWS // 2000, seed
        assert seed["bulk_batches"] >= seed["bulk_jobs"]  # one batch per job at least
    nightly = by_name["dc_to_core incremental"]  # the next night, after a day of changes
    day, night = nightly["extra"]["day_of_changes"], nightly["extra"]
    assert nightly["rows"] == ROWS + day["added"] - day["removed"]
    assert nightly["lost"] == 0 and night["failed_runs"] == 0
    assert day["updated"] == ROWS // 100 and day["removed"] == ROWS // 500
    assert day["edited_in_core"] > 0
    assert night["rows_deleted"] == day["removed"]  # mirrored, within the 5 % guard
    assert 0.9 * day["added"] <= night["rows_created"] <= day["added"]  # bad rows stay out
    assert night["rows_sent"] < ROWS // 10 and night["rows_unchanged"] > ROWS * 0.9
    assert "next_night" not in night  # --no-next-night (test_pipeline heals Core edits)
    assert (out / "bench.png").stat().st_size > 10_000
    assert (out / "timeline.png").stat().st_size > 10_000
    assert "| dc_to_core | 100.00 %" in (out / "bench.md").read_text()


def test_markdown_reports_ratios_and_losses():
    def result(name: str, loaded: int, emulated_s: float) -> StrategyResult:
        return StrategyResult(name, "", 1000, loaded, 0, emulated_s, 1.0, 10, 1, 1, 0, 0.5, 99.0)

    seed = result("seed", 500, 7200)
    seed.extra["time_scale"] = 20
    rows = [r.as_dict(ceiling) for ceiling in [result("ceiling", 1000, 3600)]
            for r in (ceiling, seed)]
    table = markdown(rows, {"rows": 1000, "accounts": 10, "profile": "default",
                            "time_scale": 50, "workers": 8, "lock_timeout_s": 10, "row_ms": 6})
    assert "| seed | 50.00 % | 500 | 2.00 h |" in table
    assert "| 250 | 0.25x | — |" in table
    assert "slower clock than the profile's (seed 20)" in table


def test_strategies_whose_client_never_waits_run_in_real_time_by_default():
    fast = BenchConfig(overrides=("time_scale=50",))
    assert _clock("dc_to_core", fast) == _clock("ceiling", fast) == ("time_scale=1",)
    assert _clock("seed Test3", fast) == ("time_scale=10",)
    assert _clock("seed Test8", fast) == ()  # keeps up at 50
    assert _clock("dc_to_core", BenchConfig(overrides=("time_scale=50",),
                                            busy_time_scale=None)) == ()


def test_seed_pages_are_exactly_job_sized_whatever_the_batches():
    batches = [pa.record_batch({"k": list(range(start, start + n))})
               for start, n in ((0, 300), (300, 450), (750, 1), (751, 500))]
    sizes = [t.num_rows for t in pages(batches, 500)]
    assert sizes == [500, 500, 251]
    assert [t.column("k")[0].as_py() for t in pages(batches, 500)] == [0, 500, 1000]


def test_profile_overrides_nest_for_faults():
    overrides = _overrides(("faults.error_rate=0.1", "time_scale=5"))
    assert overrides == {"faults": {"error_rate": "0.1"}, "time_scale": "5"}
    profile = load_profile("default", **overrides)
    assert (profile.faults.error_rate, profile.time_scale) == (0.1, 5.0)


def test_the_bench_renews_a_session_the_org_expired(make_server):
    """Seed Test8 runs 12 emulated hours; the org's sessions last 2."""
    server = make_server(token_ttl_s=30.0)  # 0.15 wall s at time scale 200
    org = BenchOrg(SimpleNamespace(url=server.url, ca_file=str(server.ca_file)))
    first = org.emulated_now()
    time.sleep(0.5)
    assert org.emulated_now() > first + 30


def test_peak_rss_is_the_process_own_not_its_parents_at_the_fork(tmp_path):
    script = textwrap.dedent("""
        import multiprocessing as mp
        from dc_to_core.bench.report import peak_rss_mb

        def child(q):
            q.put(peak_rss_mb())

        if __name__ == "__main__":
            held = bytearray(400 * 1024 * 1024)
            held[::4096] = b"x" * len(held[::4096])  # touched: resident
            ctx = mp.get_context("spawn")
            q = ctx.Queue()
            p = ctx.Process(target=child, args=(q,))
            p.start()
            print(peak_rss_mb(), q.get())
            p.join()
    """)
    path = tmp_path / "rss.py"  # spawn re-imports the main module from its file
    path.write_text(script)
    parent, child = map(float, subprocess.run([sys.executable, str(path)], capture_output=True,
                                              text=True, check=True).stdout.split())
    assert parent > 400 and child < 200  # ru_maxrss gave the child the parent's 400 MB
