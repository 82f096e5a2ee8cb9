"""Client-side validation and the pre-flight checks, against describes in Salesforce's shape
(the emulator's, built from its schema), without a server."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from dc_to_core.emulator.api.rest import _describe_field, _system_field
from dc_to_core.emulator.schema import SYSTEM_FIELDS, load_schema
from dc_to_core.salesforce.describe import ObjectInfo
from dc_to_core.sync.preflight import PreflightError, check
from dc_to_core.sync.prepare import prepare
from dc_to_core.sync.spec import parse_sync

SCHEMA = load_schema()


def described(name: str) -> ObjectInfo:
    obj = SCHEMA.core[name]
    raw = {"name": name, "fields": [_system_field(n) for n in SYSTEM_FIELDS]
           + [_describe_field(f) for f in obj.fields.values()]}
    return ObjectInfo.from_describe(raw)


def opportunity(**fields: object) -> object:
    return parse_sync({
        "name": "Opportunity", "source": "Opportunity_Staging__dlm", "target": "Opportunity",
        "key": {"source": "ExternalId__c", "target": "External_Id__c"},
        "parent": {"sync": "Account", "relationship": "Account.External_Id__c",
                   "source": "AccountExternalId__c"},
        "fields": fields or {"Name": "Name__c", "StageName": "StageName__c",
                             "CloseDate": {"source": "CloseDate__c", "type": "date"},
                             "Amount": {"source": "Amount__c", "type": "number"}}},
        "syncs.yaml")


def test_describe_round_trips_through_json():
    info = described("Opportunity")
    assert ObjectInfo.from_json(info.to_json()) == info
    stage = info.field("stagename")
    assert stage.restricted_picklist and "Closed Won" in stage.picklist_values
    assert info.field("Name").required_on_create and not info.field("Id").required_on_create


def test_the_shipped_mapping_matches_the_demo_org():
    check(opportunity(), described("Opportunity"), described("Account"))


@pytest.mark.parametrize("fields, words", [
    ({"Name": "Name__c", "StageName": "StageName__c", "Closedate": "CloseDate__c"},
     "CloseDate' : Opportunity.CloseDate is a date field but the sync declares CloseDate__c "
     "as type string; declare type: date"),
    ({"StageName": "StageName__c", "CloseDate": {"source": "CloseDate__c", "type": "date"}},
     "field 'Name': Opportunity.Name is required to create a record"),
    ({"Name": "Name__c", "StageName": "StageName__c", "CloseDate": {
        "source": "CloseDate__c", "type": "date"}, "Amont": "Amount__c"},
     "field 'Amont': Opportunity has no such field in the org (did you mean Amount?)"),
])
def test_mismatches_are_named_with_what_the_org_says(fields, words):
    with pytest.raises(PreflightError) as err:
        check(opportunity(**fields), described("Opportunity"), described("Account"))
    assert words.replace("' :", "':") in str(err.value)
    assert str(err.value).startswith("syncs.yaml: sync 'Opportunity' does not match the org")


def test_a_key_declared_with_the_wrong_case_sensitivity_is_refused():
    spec = opportunity()
    info = described("Opportunity")
    key = info.field("External_Id__c")
    fields = {**info.fields, "external_id__c": type(key)(**{**key.__dict__,
                                                           "case_sensitive": True})}
    with pytest.raises(PreflightError, match=r"set key\.case_sensitive: true"):
        check(spec, ObjectInfo(info.name, fields), described("Account"))


def test_values_the_org_would_refuse_are_quarantined_with_its_codes():
    spec = opportunity(**{"Name": "Name__c", "StageName": "StageName__c",
                          "CloseDate": {"source": "CloseDate__c", "type": "date"},
                          "Amount": {"source": "Amount__c", "type": "number"}})
    rows = {  # key -> (name, stage, close date, amount), expected code or None
        "OK": (("fine", "Prospecting", dt.date(2025, 1, 2), 10.5), None),
        "LONG": (("x" * 121, "Prospecting", dt.date(2025, 1, 2), 1.0), "STRING_TOO_LONG"),
        "STAGE": (("n", "Sideways", dt.date(2025, 1, 2), 1.0),
                  "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        "NONAME": ((None, "Prospecting", dt.date(2025, 1, 2), 1.0), "REQUIRED_FIELD_MISSING"),
        "BIG": (("n", "Prospecting", dt.date(2025, 1, 2), 1e16), "NUMBER_OUTSIDE_VALID_RANGE"),
        "OLD": (("n", "Prospecting", dt.date(1600, 1, 2), 1.0), "FIELD_INTEGRITY_EXCEPTION"),
    }
    names, stages, dates, amounts = zip(*(r for r, _ in rows.values()), strict=True)
    source = pa.table({"ExternalId__c": list(rows), "Name__c": list(names),
                       "StageName__c": list(stages), "CloseDate__c": list(dates),
                       "Amount__c": list(amounts),
                       "AccountExternalId__c": ["ACC-1"] * len(rows)})
    p = prepare(spec, source, org=described("Opportunity"))
    got = dict(zip(p.rejected.column("key").to_pylist(),
                   p.rejected.column("error_code").to_pylist(), strict=True))
    assert got == {k: code for k, (_, code) in rows.items() if code}
    assert p.ready.column("External_Id__c").to_pylist() == ["OK"]
    message = p.rejected.column("error_message").to_pylist()
    assert f"Opportunity Name: data value too large: {'x' * 40} (max length=120)" in message
    assert prepare(spec, source).rejected.num_rows == 0  # without describe: the org decides


def test_an_empty_cell_is_left_to_the_org_and_a_non_number_is_invalid_as_it_says():
    """An empty cell leaves the field as it is (the org checks nothing); NaN is no number."""
    spec = opportunity(**{"Name": "Name__c",
                          "StageName": {"source": "StageName__c", "empty_as_null": False},
                          "CloseDate": {"source": "CloseDate__c", "type": "date"},
                          "Amount": {"source": "Amount__c", "type": "number"}})
    source = pa.table({"ExternalId__c": ["EMPTY", "NAN"], "Name__c": ["n", "n"],
                       "StageName__c": ["", "Prospecting"],
                       "CloseDate__c": [dt.date(2025, 1, 2)] * 2,
                       "Amount__c": [1.0, float("nan")],
                       "AccountExternalId__c": ["ACC-1"] * 2})
    p = prepare(spec, source, org=described("Opportunity"))
    assert p.rejected.column("key").to_pylist() == ["NAN"]
    assert p.rejected.column("error_code").to_pylist() == ["INVALID_FIELD"]
    assert p.rejected.column("error_message")[0].as_py().startswith(
        "Failed to deserialize field at col 5. Due to, 'nan' is not a valid value for the "
        "type xsd:double")


def test_each_lookup_is_checked_against_the_related_objects_describe():
    spec = parse_sync({
        "name": "Opportunity", "source": "Opportunity_Staging__dlm", "target": "Opportunity",
        "key": {"source": "ExternalId__c", "target": "External_Id__c"},
        "lookups": {"Acount.External_Id__c": "A__c", "Account.Name": "B__c"},
        "fields": {"Name": "Name__c", "StageName": "StageName__c",
                   "CloseDate": {"source": "CloseDate__c", "type": "date"}}}, "syncs.yaml")
    with pytest.raises(PreflightError) as err:
        check(spec, described("Opportunity"), {"Account.Name": described("Account")})
    said = str(err.value)
    assert "lookup 'Acount.External_Id__c': Opportunity has no relationship named 'Acount'" in said
    assert "did you mean Account?" in said
    assert ("lookup 'Account.Name': Account.Name is neither an external id nor an idLookup "
            "field") in said


def test_a_lookup_must_point_at_the_object_its_sync_loads_and_updates_need_no_new_records():
    spec = opportunity()
    with pytest.raises(PreflightError, match=r"Opportunity\.AccountId points at Account, not at "
                       r"Contact"):
        check(spec, described("Opportunity"), described("Account"),
              loaded_by={"Account.External_Id__c": "Contact"})
    update = parse_sync({
        "name": "Opportunity", "source": "Opportunity_Staging__dlm", "target": "Opportunity",
        "operation": "update", "key": {"source": "ExternalId__c", "target": "External_Id__c"},
        "fields": {"Amount": {"source": "Amount__c", "type": "number"}}}, "syncs.yaml")
    check(update, described("Opportunity"))  # Name and StageName are not needed to update


def test_a_key_or_lookup_column_with_decimals_is_refused_before_it_matches_nothing():
    spec = opportunity()
    columns = {"ExternalId__c": "VARCHAR", "AccountExternalId__c": "DECIMAL(38,18)",
               "Name__c": "VARCHAR", "StageName__c": "VARCHAR", "CloseDate__c": "DATE",
               "Amount__c": "DECIMAL(18,2)"}
    with pytest.raises(PreflightError) as err:
        check(spec, described("Opportunity"), described("Account"), columns)
    assert "source column 'AccountExternalId__c': Data Cloud holds it as DECIMAL(38,18)" in str(
        err.value)
    assert "Amount__c" not in str(err.value)  # a number field may have decimals
    check(spec, described("Opportunity"), described("Account"),
          {**columns, "AccountExternalId__c": "DECIMAL(9,0)"})
