"""Result CSVs joined back to input rows, including blank and repeated keys."""

from __future__ import annotations

import pyarrow as pa

from dc_to_core.salesforce.bulk_results import (
    JobResults,
    join_outcomes,
    parse_error,
    read_result_csv,
)


def test_parse_error():
    assert parse_error("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--"
                       ) == ("UNABLE_TO_LOCK_ROW",
                             "unable to obtain exclusive access to this record")
    assert parse_error("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"
                       ) == ("REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]")
    assert parse_error("something odd") == ("UNKNOWN_ERROR", "something odd")


def test_join_by_key_and_by_content():
    uploaded = pa.table({"K": ["a", "b", "#N/A", "#N/A", "c"], "Name": ["1", "2", "3", "4", "5"]})
    ok = read_result_csv(b'"sf__Id","sf__Created","K","Name"\n"001A","true","a","1"\n'
                         b'"001B","false","#N/A","4"\n')
    failed = read_result_csv(b'"sf__Id","sf__Error","K","Name"\n'
                             b'"","STRING_TOO_LONG:Name: too long:Name --","#N/A","3"\n'
                             b'"","UNABLE_TO_LOCK_ROW:busy:--","b","2"\n')
    unprocessed = read_result_csv(b'"K","Name"\n')
    results = JobResults("750X", ok, failed, unprocessed)
    out = join_outcomes(uploaded.select(["K"]), "K", results, lambda: uploaded).to_pydict()
    assert out["status"] == ["loaded", "failed", "failed", "loaded", "unprocessed"]
    assert out["sf_id"] == ["001A", None, None, "001B", None]
    assert out["created"] == [True, None, None, False, None]
    assert out["error_code"] == [None, "UNABLE_TO_LOCK_ROW", "STRING_TOO_LONG", None,
                                 "NOT_REPORTED"]
    assert out["job_id"] == ["750X"] * 5
