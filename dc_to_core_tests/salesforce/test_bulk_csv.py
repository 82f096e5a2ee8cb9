"""Arrow → Bulk CSV: Salesforce value formats, #N/A for null, jobs cut on the chunk grid."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io

import pyarrow as pa

from dc_to_core.salesforce.bulk_csv import MAX_JOB_BYTES, bulk_table, split_jobs, write_rows


def test_value_formats():
    table = pa.table({
        "d": pa.array([dt.date(2025, 1, 31), None]),
        "ts": pa.array([dt.datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC), None],
                       pa.timestamp("us", tz="UTC")),
        "naive": pa.array([dt.datetime(2025, 1, 2, 3, 4, 5), None], pa.timestamp("s")),
        "b": pa.array([True, None]), "i": pa.array([7, None]),
        "dec": pa.array([decimal.Decimal("12.50"), None], pa.decimal128(18, 2)),
        "s": pa.array(["", None])})
    rows = list(csv.reader(io.StringIO(write_rows(bulk_table(table), header=True).decode())))
    assert rows[0] == ["d", "ts", "naive", "b", "i", "dec", "s"]
    assert rows[1] == ["2025-01-31", "2025-01-02T03:04:05.678Z", "2025-01-02T03:04:05.000Z", "true",
                       "7", "12.50", ""]
    assert rows[2] == ["#N/A"] * 7


def test_jobs_break_on_the_grid_and_respect_the_byte_limit():
    n = 1_000
    table = pa.table({"External_Id__c": [f"K{i:05d}" for i in range(n)], "Name": ["x" * 90] * n})
    jobs = list(split_jobs(table, max_bytes=30_000, grid=100))
    assert [j.start for j in jobs] == sorted(j.start for j in jobs) and jobs[-1].stop == n
    assert all(len(j.data) <= 30_000 for j in jobs) and len(jobs) > 1
    assert all(j.start % 100 == 0 for j in jobs)
    assert sum(len(j.data.splitlines()) - 1 for j in jobs) == n
    big_chunk = list(split_jobs(table, max_bytes=30_000, grid=1_000))  # one chunk too big
    assert len(big_chunk) > 1 and all(len(j.data) <= 30_000 for j in big_chunk)


def test_a_table_over_100_mb_becomes_several_jobs_at_the_real_limit():
    n = 760_000  # ≈ 113 MB of CSV
    table = pa.table({"External_Id__c": pa.array([f"OPP-{i:09d}" for i in range(n)]),
                      "Description": pa.array(["d" * 130] * n)})
    jobs = list(split_jobs(table))
    assert len(jobs) == 2 and sum(j.stop - j.start for j in jobs) == n
    assert all(len(j.data) <= MAX_JOB_BYTES for j in jobs)
    assert jobs[0].stop % 10_000 == 0
