"""Bad input, end to end: every bad row is quarantined with its reason, every hostile but valid
value arrives in Core byte for byte, and configuration mistakes stop the run with a message
that names the mistake. Nothing is silently dropped."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dc_to_core.emulator.csvio import read_upload
from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core.salesforce.bulk_csv import bulk_table, write_rows
from dc_to_core_tests.pipeline_support import (
    assert_reconciled,
    failure_messages,
    make_project,
    outcomes,
)

COLUMNS = ["ExternalId__c", "Name__c", "StageName__c", "CloseDate__c", "Amount__c",
           "Description__c", "AccountExternalId__c", "LastModifiedDate__c"]
HOSTILE = {  # valid values that break naive CSV, spreadsheets or encodings
    "BAD-hostile": ('=SUM(A1)+"x"', 'comma, "quote", and\nnewline\r\nCRLF'),
    "BAD-nonbmp": ("𝄞 music ✓ ünïcode", "emoji 😀 and CJK 漢字"),
    "BAD-ctrl": ("bell\x07 and tab\t", "nul-free control \x01\x1f chars"),
    "BAD-key'quote": ("key with a quote", "O'Brien"),
}
BAD = {  # key → the reason it cannot load
    "BAD-long-name": "STRING_TOO_LONG",
    "BAD-picklist": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
    "BAD-no-parent": "INVALID_CROSS_REFERENCE_KEY",
    "BAD-bad-date": "INVALID_SOURCE_VALUE",
    "BAD-dup": "DUPLICATE_EXTERNAL_ID_IN_SOURCE",
    "BAD-Twin": "DUPLICATE_EXTERNAL_ID_IN_SOURCE",  # ... and bad-twin: one case-insensitive key
    "bad-twin": "DUPLICATE_EXTERNAL_ID_IN_SOURCE",
    None: "MISSING_EXTERNAL_ID",
    "#N/A": "EXTERNAL_ID_IS_NULL_MARKER",  # Bulk's null marker: no key (never an orphan)
    "BAD-na-name": "VALUE_IS_NULL_MARKER",  # ... the text would arrive as null
}


def _row(key: str | None, name: str = "n", stage: str = "Prospecting",
         date: str = "2025-01-02", description: str = "", parent: str = "ACC-0000001"
         ) -> list:
    return [key, name, stage, date, 10.5, description, parent, "2025-01-01T00:00:00Z"]


def bad_rows() -> list[list]:
    rows = [_row(k, name, description=d) for k, (name, d) in HOSTILE.items()]
    rows += [_row("BAD-long-name", name="x" * 121), _row("BAD-picklist", stage="Nope"),
             _row("BAD-no-parent", parent="ACC-NOT-THERE"), _row("BAD-bad-date",
                                                                    date="2025-13-45"),
             _row("BAD-dup"), _row("BAD-dup", name="second"), _row("BAD-Twin"),
             _row("bad-twin", name="twin"), _row(None), _row("#N/A"),
             _row("BAD-na-name", name="#N/A")]
    return rows


@pytest.fixture
def project(make_server, tmp_path):
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=5, opportunities=200, seed=9))
    server.org.storage.insert_dc_rows("Opportunity_Staging__dlm", COLUMNS, bad_rows())
    return make_project(server, tmp_path, partitions=1)


def test_bad_rows_are_quarantined_with_reasons_and_hostile_text_arrives_intact(project):
    with dg.instance_for_test() as instance:
        results = [project.run("Account", "p00", instance),
                   project.run("Opportunity", "p00", instance)]
    done = outcomes(project, results)
    assert_reconciled(project, done)
    quarantine = pq.read_table(done[1][1]["quarantine_path"]).to_pylist()
    reasons: dict = {}
    for row in quarantine:
        reasons.setdefault(row["key"], set()).add(row["error_code"])
        assert row["error_message"] and row["row"].startswith("{")
    assert {k: BAD[k] in reasons.get(k, set()) for k in BAD} == {k: True for k in BAD}, reasons
    assert len([r for r in quarantine if r["key"] == "BAD-dup"]) == 2  # both copies, not one
    back = project.live["bulk"].read_range(
        "Opportunity", ["External_Id__c", "Name", "Description"], "External_Id__c", "BAD-",
        "BAD-~").to_pylist()
    got = {r["External_Id__c"]: (r["Name"], r["Description"]) for r in back}
    assert got == HOSTILE


text_values = st.one_of(st.none(), st.text(st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(text_values, text_values), min_size=1, max_size=20))
def test_bulk_csv_round_trips_any_text(rows):
    """What the client writes is what the org reads: any text, null as #N/A, '' kept."""
    table = pa.table({"A": [a for a, _ in rows], "B": [b for _, b in rows]})
    data = write_rows(bulk_table(table), header=True)
    back = read_upload(data)
    assert back.column("A").to_pylist() == ["#N/A" if a is None else a for a, _ in rows]
    assert back.column("B").to_pylist() == ["#N/A" if b is None else b for _, b in rows]


def test_an_empty_secret_says_not_set_not_refused(project, monkeypatch):
    monkeypatch.setenv("DC_TO_CORE_CLIENT_SECRET", "")
    with dg.instance_for_test() as instance:
        result = project.run("Account", "p00", instance)
    said = " ".join(failure_messages(result))
    assert not result.success
    assert "DC_TO_CORE_CLIENT_SECRET" in said and "not set" in said, said
    assert "refused" not in said
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
