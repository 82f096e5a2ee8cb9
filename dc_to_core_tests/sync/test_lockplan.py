"""Lock groups: rows sharing any locking parent go together (connected components), shuffled
by partition; components too large to keep whole are split by their first parent."""

from __future__ import annotations

import pyarrow as pa

from dc_to_core.sync.lockplan import lock_plan


def groups_of(plan) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for i, g in enumerate(plan.group.to_pylist()):
        out.setdefault(g, set()).add(i)
    return out


def test_rows_sharing_either_parent_form_one_group():
    accounts = pa.array(["A1", "A1", "A2", "A3", "A4", None, "A5"])
    depots = pa.array(["D1", "D2", "D2", "D3", None, "D9", None])
    plan = lock_plan([accounts, depots], chunk_rows=10, salt="p00")
    got = sorted(map(sorted, groups_of(plan).values()))
    assert got == [[0, 1, 2], [3], [4], [5], [6]]  # A1-D2-A2 chain; a row missing a parent
    assert plan.components == 5 and plan.largest == 3 and plan.split == 0
    assert len(set(plan.rank.to_pylist())) == 5  # one rank per group: no two interleave


def test_the_order_of_groups_is_shuffled_by_partition():
    accounts = pa.array([f"A{i}" for i in range(50)])
    depots = pa.array([f"D{i // 2}" for i in range(50)])
    ranks = [lock_plan([accounts, depots], 10, salt).rank.to_pylist() for salt in ("p0", "p1")]
    order = [sorted(range(50), key=r.__getitem__) for r in ranks]
    assert order[0] != order[1]


def test_a_component_too_large_for_its_waves_is_split_by_its_first_parent():
    # every account shares depot D0 with the next: one chain of 40 rows
    accounts = pa.array([f"A{i // 2}" for i in range(40)])
    depots = pa.array([f"D{(i + 1) // 2}" for i in range(40)])
    whole = lock_plan([accounts, depots], chunk_rows=10, salt="p", max_waves=4)
    assert whole.split == 0 and len(groups_of(whole)) == 1
    split = lock_plan([accounts, depots], chunk_rows=5, salt="p", max_waves=4)
    assert split.split == 40 and len(groups_of(split)) == 20  # one group per account
    by_account = {a: g for a, g in zip(accounts.to_pylist(), split.group.to_pylist(),
                                       strict=True)}
    assert len(set(by_account.values())) == 20


def test_no_rows_no_groups():
    plan = lock_plan([pa.array([], pa.string()), pa.array([], pa.string())], 10, "p")
    assert len(plan.group) == 0
