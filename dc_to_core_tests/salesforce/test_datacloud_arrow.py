"""Arrow helpers for Data Cloud pages."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pytest

from dc_to_core.salesforce.datacloud_arrow import (
    UNPARSED,
    DataCloudTypeError,
    joined_text,
    schema_from_connect,
    to_batch,
)


def test_joined_text_is_the_bytes_python_would_join():
    values = pa.array(["OPP-1", "", "Änderung ✓", "x" * 1000, "last"])
    for part in (values, values.slice(1, 3), values.slice(5)):
        expected = "\x1f".join(part.to_pylist()).encode()
        assert bytes(joined_text(part, "\x1f")) == expected
    assert bytes(joined_text(pa.array([], pa.string()), "\n")) == b""


SCHEMA = schema_from_connect([
    {"name": "Id", "type": "Varchar"}, {"name": "Amount", "type": "Numeric", "precision": 18,
                                        "scale": 2},
    {"name": "Count", "type": "Integer"}, {"name": "Won", "type": "Boolean"},
    {"name": "Close", "type": "Date"}, {"name": "Modified", "type": "TimestampTZ"}])
TEXT_ROWS = [["A-1", "10.50", "3", "true", "2026-01-31", "2026-10-29T21:36:43.000+00:00"],
             ["A-2", None, None, None, None, "2026-10-29 21:36:43.000 UTC"],
             ["A-3", "7.125", "0", "false", "2026-02-01", "2026-10-30T00:00:00Z"]]
EXPECTED = {"Id": ["A-1", "A-2", "A-3"],
            "Amount": [Decimal("10.50"), None, Decimal("7.13")],  # rounded half away from 0
            "Count": [3, None, 0], "Won": [True, None, False],
            "Close": [dt.date(2026, 1, 31), None, dt.date(2026, 2, 1)],
            "Modified": [dt.datetime(2026, 10, 29, 21, 36, 43, tzinfo=dt.UTC),
                         dt.datetime(2026, 10, 29, 21, 36, 43, tzinfo=dt.UTC),
                         dt.datetime(2026, 10, 30, tzinfo=dt.UTC)]}


def test_text_page_is_typed_by_the_metadata():
    batch = to_batch(TEXT_ROWS, SCHEMA)
    assert batch.schema == SCHEMA
    assert batch.to_pydict() == EXPECTED


def test_json_numbers_and_booleans_read_like_their_text():
    rows = [[r[0], r[1], None if r[2] is None else int(r[2]),
             None if r[3] is None else r[3] == "true", r[4], r[5]] for r in TEXT_ROWS]
    rows[0][1] = 10.5
    assert to_batch(rows, SCHEMA).to_pydict() == EXPECTED


@pytest.mark.parametrize("as_text", [True, False])
def test_values_that_do_not_parse_are_null_and_flagged(as_text):
    rows = [list(r) for r in TEXT_ROWS]
    rows[1][2] = "three" if as_text else {"n": 3}
    rows[2][4] = "31.02.2026"
    batch = to_batch(rows, SCHEMA)
    assert batch.schema.names == [*SCHEMA.names, UNPARSED]
    assert batch.column("Count").to_pylist() == [3, None, 0]
    assert batch.column("Close").to_pylist() == [dt.date(2026, 1, 31), None, None]
    flags = [None if f is None else json.loads(f) for f in batch.column(UNPARSED).to_pylist()]
    assert flags == [None, {"Count": rows[1][2]},
                     {"Close": "31.02.2026"}]


def test_rows_of_the_wrong_width_are_refused_and_an_empty_page_keeps_its_schema():
    with pytest.raises(DataCloudTypeError, match="6 values"):
        to_batch([TEXT_ROWS[0], TEXT_ROWS[1][:5]], SCHEMA)
    empty = to_batch([], SCHEMA)
    assert empty.num_rows == 0 and empty.schema == SCHEMA
