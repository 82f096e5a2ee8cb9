"""Partition plans: contiguous ranges covering the key space; gaps and overlaps rejected."""

from __future__ import annotations

import re

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
    plan = plan_from_boundaries("Opportunity", ["OPP-1", "OPP-5"], 100)
    assert plan.keys == ["p00", "p01", "p02"]
    assert [(r.start, r.end) for r in plan.ranges] == [(None, "OPP-1"), ("OPP-1", "OPP-5"),
                                                       ("OPP-5", None)]
    save_plan(plan, tmp_path)
    assert load_plan(OPP, tmp_path).ranges == plan.ranges
    assert plan.range("p01").label == "[OPP-1, OPP-5)"


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
