"""Prepare: mapping, coercion, pre-validation into quarantine, order by parent."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from dataclasses import replace

import pyarrow as pa

from dc_to_core.sync.prepare import GROUP, ROW, prepare
from dc_to_core_tests.pipeline_support import account_and_opportunity

OPP = account_and_opportunity().syncs["Opportunity"]


def source(rows: list[dict]) -> pa.Table:
    cols = OPP.source_columns
    return pa.table({c: [r.get(c) for r in rows] for c in cols})


def row(key, parent, **kw) -> dict:
    return {"ExternalId__c": key, "AccountExternalId__c": parent, "Name__c": f"n{key}",
            "StageName__c": "Prospecting", "CloseDate__c": "2025-01-02", "Amount__c": "10.5",
            "Probability__c": "50", **kw}


def test_map_coerce_and_order_by_parent():
    p = prepare(OPP, source([row("O3", "A2"), row("O1", "A9"), row("O2", "A2"),
                             row("O4", None, Description__c="")]))
    assert p.rejected.num_rows == 0
    t = p.ready
    assert t.column_names[0] == "External_Id__c" and t.column_names[-3:] == [
        "Account.External_Id__c", ROW, GROUP]  # the lock group travels with the rows
    keys = t.column("External_Id__c").to_pylist()
    assert keys[0] == "O4" and keys.index("O2") + 1 == keys.index("O3")  # parent, then key
    assert [t.column(ROW)[keys.index(k)].as_py() for k in ("O1", "O2", "O3", "O4")] == \
        [1, 2, 0, 3]
    assert t.column("CloseDate").type == pa.date32()
    assert t.column("CloseDate")[0].as_py() == dt.date(2025, 1, 2)
    assert t.column("Amount").to_pylist()[0] == 10.5
    assert t.column("Description").to_pylist()[0] is None  # empty string → null → #N/A


def test_parents_stay_grouped_in_an_order_shuffled_by_partition():
    rows = [row(f"O{i:04d}", f"A{i % 50:02d}") for i in range(1000)]
    orders = []
    for salt in ("p00", "p01", "p00"):
        parents = prepare(OPP, source(rows), salt=salt).ready.column(
            "Account.External_Id__c").to_pylist()
        runs = [p for i, p in enumerate(parents) if i == 0 or parents[i - 1] != p]
        assert sorted(runs) == sorted(set(parents)) and len(runs) == 50  # each one block
        orders.append(runs)
    assert orders[0] == orders[2] != orders[1]  # stable per partition, different across
    assert orders[0] != sorted(orders[0])


def test_typed_sources_pass_through():
    table = pa.table({"ExternalId__c": ["O1"], "AccountExternalId__c": ["A"],
                      "Name__c": ["n"], "StageName__c": ["Prospecting"],
                      "CloseDate__c": pa.array([dt.date(2025, 3, 4)]),
                      "Amount__c": pa.array([decimal.Decimal("12.50")], pa.decimal128(18, 2)),
                      "Probability__c": pa.array([decimal.Decimal("50")], pa.decimal128(3, 0)),
                      "LeadSource__c": [None], "Description__c": [None]})
    t = prepare(OPP, table).ready
    assert t.column("Amount").type == pa.decimal128(18, 2)
    assert t.column("CloseDate")[0].as_py() == dt.date(2025, 3, 4)


def test_rows_that_cannot_load_are_quarantined_with_reasons():
    p = prepare(OPP, source([row(None, "A"), row("", "A"), row("D", "A"), row("D", "B"),
                             row("X", "A", CloseDate__c="2025-02-30"),
                             row("Y", "A", Amount__c="ten"), row("OK", "A")]))
    assert p.ready.column("External_Id__c").to_pylist() == ["OK"]
    q = p.rejected.to_pylist()
    codes = [r["error_code"] for r in q]
    assert codes.count("MISSING_EXTERNAL_ID") == 2
    assert codes.count("DUPLICATE_EXTERNAL_ID_IN_SOURCE") == 2
    assert {"INVALID_DATE", "INVALID_NUMBER"} <= set(codes)
    bad_date = next(r for r in q if r["error_code"] == "INVALID_DATE")
    assert "CloseDate__c value '2025-02-30'" in bad_date["error_message"]
    assert json.loads(bad_date["row"])["ExternalId__c"] == "X"
    assert all(r["stage"] == "prepare" for r in q)


def test_keys_that_differ_only_in_case_are_one_record_unless_the_field_is_case_sensitive():
    rows = [row("OPP-X", "A"), row("opp-x", "A"), row("Opp-X", "B"), row("OPP-Y", "A")]
    p = prepare(OPP, source(rows))
    assert p.ready.column("External_Id__c").to_pylist() == ["OPP-Y"]
    q = p.rejected.to_pylist()
    assert {r["error_code"] for r in q} == {"DUPLICATE_EXTERNAL_ID_IN_SOURCE"} and len(q) == 3
    assert ("values 'OPP-X' and 'Opp-X' and 'opp-x' differ only in case, and Salesforce "
            "matches Opportunity.External_Id__c ignoring case") in q[0]["error_message"]
    sensitive = prepare(replace(OPP, key_case_sensitive=True), source(rows))
    assert sensitive.rejected.num_rows == 0 and sensitive.ready.num_rows == 4


def test_parents_that_differ_only_in_case_are_one_lock_group():
    rows = [row(f"K{i}", parent) for i, parent in enumerate(["ACC-1", "B", "acc-1", "b",
                                                             "Acc-1"])]
    ready = prepare(OPP, source(rows), salt="s").ready
    parents = [p.lower() for p in ready.column("Account.External_Id__c").to_pylist()]
    assert parents in (["acc-1"] * 3 + ["b"] * 2, ["b"] * 2 + ["acc-1"] * 3)


def test_fingerprint_changes_with_the_rows():
    a = prepare(OPP, source([row("O1", "A"), row("O2", "A")]))
    b = prepare(OPP, source([row("O2", "A"), row("O1", "A")]))
    c = prepare(OPP, source([row("O1", "A")]))
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_the_text_na_is_quarantined_as_bulks_null_marker_in_keys_values_and_parents():
    """Bulk CSV reads ``#N/A`` as null: as a key it matches nothing, as a value it would clear
    the field, as a parent it would clear the lookup. None of them can be sent as text."""
    p = prepare(OPP, source([row("#N/A", "A1"), row("O2", "A1", Name__c="#N/A"),
                             row("O3", "#N/A"), row("O4", "A1", Description__c="#N/A ok"),
                             row("O5", "A1", Amount__c="#N/A")]))
    assert p.ready.column("External_Id__c").to_pylist() == ["O4"]
    got = dict(zip(p.rejected.column("key").to_pylist(),
                   zip(p.rejected.column("error_code").to_pylist(),
                       p.rejected.column("error_message").to_pylist(), strict=True), strict=True))
    assert got["#N/A"][0] == "EXTERNAL_ID_IS_NULL_MARKER" and "MISSING_ARGUMENT" in got["#N/A"][1]
    assert got["O2"] == ("VALUE_IS_NULL_MARKER", "Name__c is the text '#N/A', Bulk API's null "
                         "marker: sent, it would clear Opportunity.Name instead of writing it; "
                         "change the value in Data Cloud")
    assert got["O3"][0] == "VALUE_IS_NULL_MARKER" and "parent" in got["O3"][1]
    assert got["O5"][0] == "INVALID_NUMBER"  # not text: it does not coerce
