"""Keys as a sync compares them: folded ranges, case-only twins, and a Core range settled
against Data Cloud's rule whatever order the org's SOQL gives text near a boundary."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from dc_to_core.sync.keys import in_range, settle_core_range
from dc_to_core.sync.plan import KeyRange
from dc_to_core.sync.reconcile import compare_fields, duplicates, reconcile

R = KeyRange("p01", "opp-5", "opp-9")


def test_a_folded_range_takes_every_case_of_its_keys():
    keys = pa.array(["OPP-5", "opp-5a", "Opp-8", "OPP-9", "opp-4", None])
    assert in_range(keys, R, fold=True).to_pylist() == [True, True, True, False, False, False]
    # byte order would put every upper-case key below "opp-5"
    assert in_range(keys, R, fold=False).to_pylist() == [False, True, False, False, False,
                                                         False]
    assert in_range(keys, KeyRange("p00", None, "opp-5"), fold=True).to_pylist()[-1] is True


class UpperCaseOrg:
    """An org whose SOQL compares text upper-cased (locale casing: '_' sorts above letters,
    as in SOQL for some locales), holding ``records``: its range answer differs from Data
    Cloud's lower-cased one at the edges; lookups by key are exact (ignoring case)."""

    def __init__(self, records: list[str]) -> None:
        self.records = records
        self.asked: list[list[str]] = []

    def soql_range(self, r: KeyRange) -> pa.Table:
        up = [k for k in self.records if (r.start is None or k.upper() >= r.start.upper())
              and (r.end is None or k.upper() < r.end.upper())]
        return pa.table({"External_Id__c": pa.array(up, pa.string()),
                         "Name": pa.array([f"n {k}" for k in up], pa.string())})

    def by_key(self, keys: list[str]) -> pa.Table:
        self.asked.append(keys)
        wanted = {k.lower() for k in keys}
        found = [k for k in self.records if k.lower() in wanted]
        return pa.table({"Name": [f"n {k}" for k in found], "External_Id__c": found})


def test_a_core_range_is_settled_by_data_clouds_rule_not_the_orgs_collation():
    """Lower-cased, "opp9" < "opp^9" < "opp_" <= "opp_1" < "oppa-1" < "oppb"; upper-cased,
    "OPPA-1" sorts below "OPP_" and "OPP_1" above "OPPB", so the org answers both ranges
    differently from Data Cloud. Settled, each range holds exactly Data Cloud's keys (and
    the record Data Cloud lacks, reported once)."""
    low, mid = KeyRange("p00", None, "opp_"), KeyRange("p01", "opp_", "oppb")
    dc = {low: ["OPP9"], mid: ["OPPA-1", "opp_1"]}
    org = UpperCaseOrg(["OPPA-1", "opp_1", "opp^9", "OPP9"])
    everywhere = {"oppa-1", "opp_1", "opp9"}  # opp^9 is in Core only

    def settle(r: KeyRange):
        return settle_core_range(org.soql_range(r), "External_Id__c", r, True, dc[r],
                                 org.by_key, lambda keys: everywhere & set(keys))

    first = settle(low)
    assert sorted(first.records.column("External_Id__c").to_pylist()) == ["OPP9", "opp^9"]
    assert first.outside == 1 and first.looked_up == 0  # OPPA-1 came back here: dropped
    assert org.asked == []
    second = settle(mid)
    assert second.records.column("External_Id__c").to_pylist() == ["OPPA-1", "opp_1"]
    assert org.asked == [["OPPA-1", "opp_1"]] and second.found_by_key == 2
    one = reconcile(dc[low], first.records.column("External_Id__c"), [], 0, fold=True)
    two = reconcile(dc[mid], second.records.column("External_Id__c"), [], 0, fold=True)
    assert (one.missing, one.unexpected) == ([], ["opp^9"])
    assert two.passed


def test_a_record_only_core_holds_is_reported_by_the_range_the_org_returned_it_in():
    r = KeyRange("p01", "opp-5", "opp-9")
    core = pa.table({"External_Id__c": ["OPP-6", "ZZZ-orphan", "OPP-2"], "Name": ["a", "b", "c"]})
    settled = settle_core_range(core, "External_Id__c", r, True, ["OPP-6"],
                                lambda keys: core.slice(0, 0),
                                lambda keys: {"opp-2"})  # OPP-2 belongs to another range
    assert sorted(settled.records.column("External_Id__c").to_pylist()) == ["OPP-6",
                                                                            "ZZZ-orphan"]
    rec = reconcile(["OPP-6"], settled.records.column("External_Id__c"), [], 0, fold=True)
    assert rec.unexpected == ["ZZZ-orphan"] and not rec.missing
    assert settled.outside == 2


def test_lookups_by_key_are_capped_and_counted():
    r = KeyRange("p00", None, None)
    empty = pa.table({"External_Id__c": pa.array([], pa.string())})
    asked: list[list[str]] = []
    settled = settle_core_range(empty, "External_Id__c", r, True, [f"K{i}" for i in range(5)],
                                lambda keys: asked.append(keys) or empty, lambda keys: set(),
                                verify_at_most=3)
    assert [len(a) for a in asked] == [3] and settled.unverified == 2


def test_checks_compare_keys_ignoring_case_when_the_field_does():
    assert reconcile(["opp-x", "OPP-Y"], ["OPP-X", "opp-y"], [], 0, fold=True).passed
    rec = reconcile(["opp-x"], ["OPP-X"], [], 0, fold=False)
    assert (rec.missing, rec.unexpected) == (["opp-x"], ["OPP-X"])
    assert duplicates(["OPP-X", "opp-x", "OPP-Z"], fold=True) == {"opp-x": 2}
    assert duplicates(["OPP-X", "opp-x"], fold=False) == {}
    dc = pa.table({"External_Id__c": ["opp-x"], "Name": ["same"]})
    core = pa.table({"External_Id__c": ["OPP-X"], "Name": ["same"]})
    cmp = compare_fields(dc, core, "External_Id__c", ["Name"], set(), fold=True)
    assert cmp.compared == 1 and cmp.passed
    assert compare_fields(dc, core, "External_Id__c", ["Name"], set()).compared == 0
    # the org answers a parent found by acc-1 with the parent's own spelling, ACC-1
    rel = "Account.External_Id__c"
    dc, core = dc.append_column(rel, pa.array(["acc-1"])), core.append_column(
        rel, pa.array(["ACC-1"]))
    assert not compare_fields(dc, core, "External_Id__c", ["Name", rel], set(), fold=True).passed
    assert compare_fields(dc, core, "External_Id__c", ["Name", rel], set(), fold=True,
                          folded_fields={rel}).passed
    assert pc.sum(in_range(["a"], R, True)).as_py() == 0
