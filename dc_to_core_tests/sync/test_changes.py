"""Change detection: row hashes in canonical form, and the split of a night's prepared rows
into unchanged, still refused and to send, against the sync state."""

from __future__ import annotations

import pyarrow as pa

from dc_to_core.sync.changes import changes, recorded, row_hashes
from dc_to_core.sync.prepare import HASH, prepare
from dc_to_core.sync.spec import load_syncs
from dc_to_core.sync.state import DRIFTED, LOADED, REFUSED, RETRY, STALE, state_rows

OPP = load_syncs().syncs["Opportunity"]


def source(rows: list[dict]) -> pa.Table:
    cols = OPP.source_columns
    return pa.table({c: pa.array([r.get(c) for r in rows], pa.string()) for c in cols})


def row(key: str, name: str = "n", amount: str = "10.5", parent: str = "ACC-1") -> dict:
    return {"ExternalId__c": key, "AccountExternalId__c": parent, "Name__c": name,
            "StageName__c": "Prospecting", "CloseDate__c": "2025-01-02", "Amount__c": amount,
            "Probability__c": "50"}


def ready(rows: list[dict]) -> pa.Table:
    return prepare(OPP, source(rows)).ready


def test_a_row_hashes_the_same_from_any_run_and_differs_when_a_value_does():
    a = row_hashes(OPP, ready([row("K1"), row("K2", name="other")]))
    b = row_hashes(OPP, ready([row("K2", name="other"), row("K1")]))  # another prepare
    assert sorted(a.to_pylist()) == sorted(b.to_pylist()) and a[0] != a[1]
    assert row_hashes(OPP, ready([row("K9")]))[0] == a[0]  # values, not the key (the state's)
    same = row_hashes(OPP, ready([row("K1", amount="10.50")]))  # the same number
    assert same[0] == row_hashes(OPP, ready([row("K1")]))[0]
    for changed in (row("K1", name="m"), row("K1", amount="11"), row("K1", parent="ACC-2")):
        assert row_hashes(OPP, ready([changed]))[0] != same[0]


def test_a_night_sends_only_new_changed_and_retryable_rows():
    night = ready([row("SAME"), row("CHANGED", name="new"), row("NEW"), row("REFUSED"),
                   row("REFUSED-FIXED", name="fixed"), row("LOCKED"), row("EDITED"),
                   row("OLD-MAPPING")])
    before = ready([row("SAME"), row("CHANGED", name="old"), row("REFUSED"),
                    row("REFUSED-FIXED", name="broken"), row("LOCKED"), row("EDITED"),
                    row("OLD-MAPPING")])
    was = {"SAME": ("006A", LOADED, None), "CHANGED": ("006B", LOADED, None),
           "REFUSED": (None, REFUSED, "STRING_TOO_LONG"),
           "REFUSED-FIXED": (None, REFUSED, "STRING_TOO_LONG"),
           "LOCKED": ("006C", RETRY, "UNABLE_TO_LOCK_ROW"),
           "EDITED": ("006D", DRIFTED, None),  # the checks found it edited in Core
           "OLD-MAPPING": ("006E", STALE, None)}  # recorded under another mapping
    keys = before.column("External_Id__c").to_pylist()  # in the prepared (parent) order
    state = state_rows(pa.array([k.lower() for k in keys]),
                       pa.array([was[k][0] for k in keys], pa.string()),
                       row_hashes(OPP, before), pa.array([was[k][1] for k in keys]),
                       pa.array([was[k][2] for k in keys], pa.string()))
    c = changes(OPP, night, state)
    assert sorted(c.send.column("External_Id__c").to_pylist()) == [
        "CHANGED", "EDITED", "LOCKED", "NEW", "OLD-MAPPING", "REFUSED-FIXED"]
    assert c.unchanged.column("External_Id__c").to_pylist() == ["SAME"]
    assert c.refused.column("External_Id__c").to_pylist() == ["REFUSED"]
    assert c.refused.column("error_code").to_pylist() == ["STRING_TOO_LONG"]
    assert (c.retried, c.drifted) == (1, 1) and HASH in c.send.column_names
    assert sorted(c.to_mark) == ["changed", "old-mapping", "refused-fixed"]  # not yet marked
    assert HASH not in c.unchanged.column_names
    order = night.column("External_Id__c").to_pylist()
    sent = c.send.column("External_Id__c").to_pylist()
    assert sent == [k for k in order if k in sent]  # the prepared (parent) order is kept


def test_an_empty_state_or_a_full_refresh_sends_everything():
    night = ready([row("A"), row("B")])
    state = state_rows(pa.array(["a", "b"]), pa.array(["006A", "006B"]),
                       row_hashes(OPP, night), pa.array([LOADED] * 2), pa.array([None, None],
                                                                                pa.string()))
    assert changes(OPP, night, state).send.num_rows == 0
    full = changes(OPP, night, state, full_refresh=True)
    assert full.send.num_rows == 2 and sorted(full.to_mark) == ["a", "b"]
    first = changes(OPP, night, state.slice(0, 0))
    assert first.send.num_rows == 2 and first.to_mark == []  # nothing recorded to mark


def test_the_state_a_load_establishes_comes_from_the_orgs_results():
    sent = changes(OPP, ready([row("OK"), row("LOCK"), row("LONG"), row("ODD"), row("GONE")]),
                   state_rows(pa.array([], pa.string()), pa.array([], pa.string()),
                              pa.array([], pa.int64()), pa.array([], pa.string()),
                              pa.array([], pa.string()))).send
    order = sent.column("External_Id__c").to_pylist()
    results = {"OK": ("loaded", "006A", None), "LOCK": ("failed", None, "UNABLE_TO_LOCK_ROW"),
               "LONG": ("failed", None, "STRING_TOO_LONG"),
               "ODD": ("failed", None, "UNKNOWN_EXCEPTION"), "GONE": ("unprocessed", None, None)}
    outcome = pa.table({
        "status": [results[k][0] for k in order], "sf_id": [results[k][1] for k in order],
        "created": [results[k][0] == "loaded" for k in order],
        "error_code": pa.array([results[k][2] for k in order], pa.string()),
        "error_message": pa.array([None] * 5, pa.string()), "job_id": ["750"] * 5})
    got = {r["key"]: r for r in recorded(OPP, sent, outcome).to_pylist()}
    assert {k: (r["status"], r["sf_id"], r["error_code"]) for k, r in got.items()} == {
        "ok": (LOADED, "006A", None), "lock": (RETRY, None, "UNABLE_TO_LOCK_ROW"),
        "long": (REFUSED, None, "STRING_TOO_LONG"), "odd": (RETRY, None, "UNKNOWN_EXCEPTION"),
        "gone": (RETRY, None, "UNPROCESSED")}
    assert got["ok"]["row_hash"] == sent.column(HASH)[order.index("OK")].as_py()


def test_a_key_spelled_in_another_case_is_the_same_record():
    night = ready([row("opp-x")])
    state = state_rows(pa.array(["opp-x"]), pa.array(["006A"]),
                       row_hashes(OPP, ready([row("OPP-X")])), pa.array([LOADED]),
                       pa.array([None], pa.string()))
    assert changes(OPP, night, state).unchanged.num_rows == 1
