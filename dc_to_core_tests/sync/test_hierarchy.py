"""Loops in a self-lookup are found among the partition's rows and spelled out."""

from __future__ import annotations

import pyarrow as pa

from dc_to_core.sync.hierarchy import cycle_message, cycles


def test_rows_on_a_loop_are_found_and_rows_leading_into_it_are_not():
    keys = pa.array(["a", "b", "c", "d", "e", "f"])
    parents = pa.array(["b", "c", "a", "d", "a", "elsewhere"])
    loops = cycles(keys, parents)
    assert sorted(loops) == [0, 1, 2, 3]  # e only points into the loop; f's parent is not here
    assert loops[1] == [1, 2, 0, 1] and loops[3] == [3, 3]


def test_the_message_shows_the_loop_from_the_row():
    assert cycle_message(["ACC-2", "ACC-3", "ACC-1", "ACC-2"], "Account.Parent") == (
        "ACC-2 is its own ancestor through Account.Parent in Data Cloud (ACC-2 → ACC-3 → ACC-1 "
        "→ ACC-2); Salesforce refuses a loop in a hierarchy. Break the loop in Data Cloud; the "
        "record is loaded, only its parent is not set")


def test_a_row_without_a_key_is_no_ones_parent():
    keys = pa.array([None, "ROOT"])
    parents = pa.array(["ROOT", None])  # null must not match null
    assert cycles(keys, parents) == {}
