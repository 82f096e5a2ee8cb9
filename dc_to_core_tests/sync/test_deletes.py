"""The delete guards and the file of deleted rows, as plain functions (the pipeline tests in
``test_deletes.py`` drive them against the emulator)."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from dc_to_core.sync.deletes import (
    ALREADY_GONE,
    DELETED,
    DELETING,
    DeleteRefused,
    candidates,
    deleted_schema,
    guard,
    merged,
)
from dc_to_core.sync.spec import load_syncs
from dc_to_core.sync.state import LOADED

OPP = dataclasses.replace(load_syncs().syncs["Opportunity"], deletes="mirror",
                          max_delete_share=0.25)


def state(keys: list[str], statuses: list[str] | None = None) -> pa.Table:
    return pa.table({"key": keys, "status": statuses or [LOADED] * len(keys)})


def test_candidates_are_the_state_keys_tonights_read_lacks_whatever_their_case():
    read = pa.table({"ExternalId__c": ["OPP-1", None, "Opp-3"]})
    gone = candidates(OPP, read, state(["opp-1", "opp-2", "opp-3", "OPP-4"]))
    assert gone.column("key").to_pylist() == ["opp-2", "opp-4"]  # folded as the sync folds
    plain = dataclasses.replace(OPP, deletes="none")
    assert candidates(plain, read, state(["opp-2"])).num_rows == 0


def test_the_share_counts_keys_found_gone_tonight_not_deletes_under_way():
    none_present = lambda keys: set()  # noqa: E731
    guard(OPP, "p", state(["a", "b"]), 8, False, none_present)  # 25 %: allowed
    with pytest.raises(DeleteRefused, match="max_delete_share"):
        guard(OPP, "p", state(["a", "b", "c"]), 8, False, none_present)
    guard(OPP, "p", state(["a", "b", "c"]), 8, True, none_present)  # the tag allows it
    # deferred parents and refused deletes from earlier nights do not pile up into a refusal
    guard(OPP, "p", state(["a", "b", "c", "d"], [LOADED, LOADED, DELETING, DELETING]), 8,
          False, none_present)
    with pytest.raises(DeleteRefused, match="read was incomplete"):
        guard(OPP, "p", state(["a"]), 8, False, lambda keys: {"a"})


def test_a_retried_delete_keeps_the_last_values_its_first_attempt_saw():
    schema = deleted_schema(OPP)

    def rows(status: str, sf_id: str | None, name: str | None) -> pa.Table:
        row = dict.fromkeys(schema.names)
        row |= {"key": "opp-1", "sf_id": sf_id, "status": status, "Name": name}
        return pa.Table.from_pylist([row], schema=schema)

    first = rows(DELETING, "006A", "last name")
    again = merged(first, rows(ALREADY_GONE, None, None))  # the first attempt deleted it
    assert again.to_pylist() == rows(DELETED, "006A", "last name").to_pylist()
    assert merged(None, first).equals(first)
