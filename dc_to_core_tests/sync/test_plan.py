"""Partition plans: contiguous ranges covering the key space; gaps and overlaps rejected."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import yaml

from dc_to_core.sync.plan import (
    KeyRange,
    PartitionPlan,
    PlanError,
    load_plan,
    plan_from_boundaries,
    save_plan,
    validate,
)
from dc_to_core.sync.spec import load_syncs

OPP = load_syncs().syncs["Opportunity"]


def test_boundaries_become_contiguous_ranges(tmp_path):
    plan = plan_from_boundaries("Opportunity", ["opp-1", "opp-5"], 100)
    assert plan.keys == ["p00", "p01", "p02"]
    assert [(r.start, r.end) for r in plan.ranges] == [(None, "opp-1"), ("opp-1", "opp-5"),
                                                       ("opp-5", None)]
    save_plan(plan, tmp_path)
    assert load_plan(OPP, tmp_path).ranges == plan.ranges
    assert plan.range("p01").label == "[opp-1, opp-5)"


def test_a_key_that_ignores_case_cuts_the_folded_key_space(tmp_path):
    """External_Id__c is case-insensitive (the default): bounds are read lower-cased, so
    OPP-X and opp-x fall in one range; bounds that are no longer ordered ask for a re-plan."""
    folding = replace(OPP, key_case_sensitive=False)
    save_plan(plan_from_boundaries("Opportunity", ["OPP-1", "OPP-5"], 100), tmp_path)
    assert [(r.start, r.end) for r in load_plan(folding, tmp_path).ranges] == [
        (None, "opp-1"), ("opp-1", "opp-5"), ("opp-5", None)]
    assert load_plan(replace(OPP, key_case_sensitive=True), tmp_path).range("p01").start == (
        "OPP-1")
    save_plan(plan_from_boundaries("Opportunity", ["B", "a"], 100), tmp_path)
    with pytest.raises(PlanError, match="compared in lower case; re-plan with dc-to-core plan "
                                        "Opportunity"):
        load_plan(folding, tmp_path)


def test_a_sync_without_a_plan_file_has_one_partition(tmp_path):
    plan = load_plan(OPP, tmp_path)
    assert plan.keys == ["p00"] and plan.ranges[0] == KeyRange("p00", None, None)


@pytest.mark.parametrize(("ranges", "message"), [
    ([("a", None, "m"), ("b", "n", None)], "gap between a [-inf, m) and b [n, +inf)"),
    ([("a", None, "m"), ("b", "k", None)], "overlap between a"),
    ([("a", "c", "m"), ("b", "m", None)], "must start open"),
    ([("a", None, "m"), ("b", "m", "z")], "must end open"),
    ([("a", None, "m"), ("a", "m", None)], "used twice"),
    ([("a", None, "m"), ("b", "m", "m"), ("c", "m", None)], "empty or reversed"),
])
def test_gaps_and_overlaps_are_rejected(ranges, message, tmp_path):
    plan = PartitionPlan("Opportunity", tuple(KeyRange(*r) for r in ranges))
    with pytest.raises(PlanError, match=re.escape(message)):
        validate(plan, "plan")
    path = tmp_path / "Opportunity.yaml"
    path.write_text(yaml.safe_dump({"sync": "Opportunity", "partitions": [
        {"key": k, "start": s, "end": e} for k, s, e in ranges]}))
    with pytest.raises(PlanError, match=str(path)):
        load_plan(OPP, tmp_path)


def test_unreadable_plan_file(tmp_path):
    (tmp_path / "Opportunity.yaml").write_text("partitions: 3\n")
    with pytest.raises(PlanError, match="expected partitions"):
        load_plan(OPP, tmp_path)
