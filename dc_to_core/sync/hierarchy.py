"""Loops in a hierarchy (a self-lookup such as Account.Parent): rows that are their own
ancestor through the partition's rows. Salesforce refuses a record as its own ancestor, so
these rows are quarantined before upload with the loop spelled out; a loop through rows of
other partitions is refused by the org, with its code."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CYCLE = "HIERARCHY_CYCLE"
# what the org answers a parent that would make a loop *as Core holds the hierarchy now*: in
# a hierarchy pass it can heal once other rows are written (a swap: A under B, B no longer
# under A), so the re-pass sends it again after them, and the next night if still refused
LOOP_REFUSAL = "FIELD_INTEGRITY_EXCEPTION"


def heal_in_order(hierarchy_pass: bool) -> tuple[str, ...]:
    """The codes worth another try within a load of this kind of sync (beyond locks)."""
    return (LOOP_REFUSAL,) if hierarchy_pass else ()


def cycles(keys: pa.Array, parents: pa.Array) -> dict[int, list[int]]:
    """{row: the loop through it, as rows, from that row back to it} for every row on a loop
    of ``parents`` (folded keys; a parent not among ``keys`` ends a chain)."""
    nxt = np.asarray(pc.fill_null(pc.index_in(parents, value_set=keys, skip_nulls=True),
                                  -1).to_numpy(zero_copy_only=False), np.int64)
    n = len(nxt)
    if not n:
        return {}
    reach = nxt.copy()  # reach = nxt applied 2^k times; once 2^k >= n, it sits on a loop
    for _ in range(int(np.ceil(np.log2(n + 1))) + 1):
        reach = np.where(reach >= 0, reach[np.maximum(reach, 0)], -1)
    out: dict[int, list[int]] = {}
    for start in np.unique(reach[reach >= 0]).tolist():
        if start in out:
            continue
        loop, at = [start], int(nxt[start])
        while at != start:
            loop.append(at)
            at = int(nxt[at])
        for at, i in enumerate(loop):
            out[i] = loop[at:] + loop[:at + 1]
    return out


def cycle_message(path: list[str], field: str) -> str:
    """Why the row ``path[0]`` is quarantined (``path``: the loop's keys, back to it)."""
    key = path[0]
    shown = " → ".join(str(k) for k in path[:6]) + (" → …" if len(path) > 6 else "")
    return (f"{key} is its own ancestor through {field} in Data Cloud ({shown}); Salesforce "
            "refuses a loop in a hierarchy. Break the loop in Data Cloud; the record is loaded, "
            "only its parent is not set")
