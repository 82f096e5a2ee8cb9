"""Reconciliation logic as plain functions."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa

from dc_to_core.sync.reconcile import compare_fields, duplicates, reconcile


def test_reconcile_keys():
    r = reconcile(["a", "b", "c", None, "d"], ["a", "b", "z"], ["c", None], 2)
    assert r.missing == ["d"] and r.unexpected == ["z"] and not r.passed
    assert (r.dc_rows, r.core_rows, r.quarantined) == (5, 3, 2)
    assert reconcile(["a", "b"], ["a"], ["b"], 1).passed
    chunked = reconcile(pa.chunked_array([["d", "a"], ["b", "d", "e"]]), pa.array(["b", "y", "x"]),
                        pa.array([], pa.string()), 0)  # columns as the checks pass them
    assert chunked.missing == ["a", "d", "e"] and chunked.unexpected == ["x", "y"]
    assert (chunked.dc_rows, chunked.core_rows) == (5, 3)


def test_duplicates():
    assert duplicates(["a", "b", "a", None, None]) == {"a": 2}
    assert duplicates(pa.chunked_array([["k", "j"], ["k", "k"]])) == {"k": 3}


def test_compare_fields_normalises_both_sides():
    dc = pa.table({"K": ["1", "2", "3"], "Amount": pa.array(
        [decimal.Decimal("10.50"), None, decimal.Decimal("2")], pa.decimal128(18, 2)),
        "CloseDate": [dt.date(2025, 1, 2)] * 3, "Name": ["x", "", "y"]})
    core = pa.table({"K": ["1", "2", "3"], "Amount": [10.5, None, 3.0],
                     "CloseDate": ["2025-01-02"] * 3, "Name": ["x", None, "y"]})
    cmp = compare_fields(dc, core, "K", ["Amount", "CloseDate", "Name"], skip=set())
    assert cmp.compared == 3 and cmp.mismatches == [("3", "Amount", 2.0, 3.0)]
    assert cmp.dc_checksum != cmp.core_checksum
    fixed = compare_fields(dc, core, "K", ["Amount", "CloseDate", "Name"], skip={"3"})
    assert fixed.passed and fixed.dc_checksum == fixed.core_checksum


def test_compare_fields_reads_core_text_as_the_bulk_query_returns_it():
    n = 1_000
    dc = pa.table({"K": [f"k{i:04d}" for i in range(n)],
                   "Amount": pa.array([i * 0.1 + 752750.19 for i in range(n)]),  # float noise
                   "Won": pa.array([i % 2 == 0 for i in range(n)]),
                   "At": pa.array([dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)] * n,
                                  pa.timestamp("us", tz="UTC")),
                   "CloseDate": pa.array([dt.date(2025, 1, 2)] * n),
                   "Name": [None if i % 7 == 0 else f"n{i}" for i in range(n)]})
    core = pa.table({"K": [f"k{i:04d}" for i in reversed(range(n))],  # any order
                     "Amount": [str(round(i * 0.1 + 752750.19, 2)) for i in reversed(range(n))],
                     "Won": ["true" if i % 2 == 0 else "false" for i in reversed(range(n))],
                     "At": ["2025-01-02T03:04:05.000Z"] * n, "CloseDate": ["2025-01-02"] * n,
                     "Name": [None if i % 7 == 0 else f"n{i}" for i in reversed(range(n))]})
    fields = ["Amount", "Won", "At", "CloseDate", "Name"]
    cmp = compare_fields(dc, core, "K", fields, skip=set())
    assert cmp.passed and cmp.compared == n and cmp.dc_checksum == cmp.core_checksum
    wrong = core.set_column(4, "CloseDate", pa.array(["2025-01-03"] * n))
    cmp = compare_fields(dc, wrong, "K", fields, skip={"k0001"}, sample=5)
    assert cmp.mismatched == n - 1 and len(cmp.mismatches) == 5
    assert cmp.mismatches[0] == ("k0000", "CloseDate", "2025-01-02", "2025-01-03")
