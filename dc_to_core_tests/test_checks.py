"""Reconciliation logic as plain functions."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa

from dc_to_core.checks import compare_fields, duplicates, reconcile


def test_reconcile_keys():
    r = reconcile(["a", "b", "c", None, "d"], ["a", "b", "z"], ["c", None], 2)
    assert r.missing == ["d"] and r.unexpected == ["z"] and not r.passed
    assert (r.dc_rows, r.core_rows, r.quarantined) == (5, 3, 2)
    assert reconcile(["a", "b"], ["a"], ["b"], 1).passed


def test_duplicates():
    assert duplicates(["a", "b", "a", None, None]) == {"a": 2}


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
