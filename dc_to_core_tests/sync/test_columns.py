"""Fields with policies and lookups in a sync file: what they become, and every mistake named
by file, sync, field and key."""

from __future__ import annotations

import pytest

from dc_to_core.sync.spec import SyncConfigError, parse_sync, sync_set

GOOD = {"name": "Opp", "source": "O__dlm", "target": "Opportunity",
        "key": {"source": "Id__c", "target": "Ext__c"}, "fields": {"Name": "N__c"}}
ACC = {"name": "Acc", "source": "A__dlm", "target": "Account",
       "key": {"source": "Id__c", "target": "External_Id__c"}, "fields": {"Name": "N__c"}}


def opp(**change: object):
    return parse_sync({**GOOD, **change}, "o.yaml")


def test_lookups_resolve_by_another_sync_or_by_records_in_core():
    spec = opp(lookups={"Account.External_Id__c": {"source": "A__c", "sync": "Acc",
                                                   "locks_parent": True},
                        "Owner.Employee_Id__c": "U__c"})
    assert [lk.relationship for lk in spec.lookups] == ["Account.External_Id__c",
                                                        "Owner.Employee_Id__c"]
    assert spec.depends_on == ["Acc"] and [lk.name for lk in spec.locking] == ["Account"]
    assert spec.source_columns == ["Id__c", "N__c", "A__c", "U__c"]
    assert spec.target_columns[-2:] == ["Account.External_Id__c", "Owner.Employee_Id__c"]
    assert spec.lookups[1].reference_field == "OwnerId" and spec.lookups[1].sync is None
    syncs = sync_set([parse_sync(ACC, "a.yaml"), spec])
    assert [s.name for s in syncs.ordered()] == ["Acc", "Opp"]
    assert [s.name for s in syncs.children("Acc")] == ["Opp"]


def test_parent_is_a_locking_lookup_and_keeps_the_mapping_version():
    via_parent = opp(parent={"sync": "Acc", "relationship": "Account.External_Id__c",
                             "source": "A__c"})
    via_lookups = opp(lookups={"Account.External_Id__c": {"source": "A__c", "sync": "Acc",
                                                          "locks_parent": True}})
    assert via_parent.lookups == via_lookups.lookups and via_parent.parent.locks_parent
    assert via_parent.mapping_fingerprint == via_lookups.mapping_fingerprint


def test_a_self_lookup_becomes_a_hierarchy_pass_on_the_same_partitions():
    spec = parse_sync({**ACC, "lookups": {"Parent.External_Id__c": {"source": "P__c",
                                                                    "sync": "Acc"}}}, "a.yaml")
    assert not spec.lookups and [lk.name for lk in spec.hierarchy] == ["Parent"]
    assert "P__c" not in spec.source_columns  # the Accounts load without it first
    second = spec.hierarchy_pass()
    assert second.name == "Acc_hierarchy" and second.operation == "update"
    assert second.target_columns == ["External_Id__c", "Parent.External_Id__c"]
    syncs = sync_set([spec])
    assert [s.name for s in syncs.ordered()] == ["Acc", "Acc_hierarchy"]
    assert [s.name for s in syncs.planned()] == ["Acc"]


def test_field_policies():
    spec = opp(fields={"Name": "N__c", "Type": {"value": "New Customer"},
                       "StageName": {"source": "S__c", "map": {"won": "Closed Won"},
                                     "default": "Prospecting"},
                       "Probability": {"source": "P__c", "type": "number", "default": 10},
                       "Description": {"source": "D__c", "on_null": "keep"}})
    f = {m.target: m for m in spec.fields}
    assert f["Type"].source is None and f["Type"].value == "New Customer"
    assert f["StageName"].mapping == (("won", "Closed Won"),)
    assert f["Probability"].default == "10" and f["Description"].keeps_nulls
    assert "Type" in spec.target_columns and spec.source_columns == [
        "Id__c", "N__c", "S__c", "P__c", "D__c"]
    assert spec.mapping_fingerprint != opp(fields={
        "Name": "N__c", "Description": "D__c"}).mapping_fingerprint


@pytest.mark.parametrize(("change", "message", "path"), [
    ({"fields": {"Name": {"source": "N__c", "on_nul": "keep"}}},
     "o.yaml: sync 'Opp', field 'Name': unknown keys ['on_nul'] (allowed: compare, default, "
     "empty_as_null, map, on_null, source, type, value)", ("fields", "Name", "on_nul")),
    ({"fields": {"Name": {"source": "N__c", "on_null": "ignore"}}},
     "field 'Name': on_null 'ignore' is not one of clear, keep", ("fields", "Name", "on_null")),
    ({"fields": {"Name": {"source": "N__c", "value": "x"}}},
     "field 'Name': needs exactly one of source (a Data Cloud column) and value",
     ("fields", "Name")),
    ({"fields": {"Amount": {"value": "lots", "type": "number"}}},
     "field 'Amount': value 'lots' is not a valid number", ("fields", "Amount", "value")),
    ({"fields": {"CloseDate": {"source": "C__c", "type": "date", "default": "31/12/2026"}}},
     "field 'CloseDate': default '31/12/2026' is not a valid date",
     ("fields", "CloseDate", "default")),
    ({"fields": {"Stage": {"source": "S__c", "map": {True: "Won"}}}},
     "field 'Stage': map entry True: 'Won' must be text to text", ("fields", "Stage", "map")),
    ({"fields": {"Amount": {"source": "A__c", "type": "number", "map": {"a": "1"}}}},
     "map translates text values (picklists)", ("fields", "Amount", "map")),
    ({"lookups": {"Account": "A__c"}},
     "sync 'Opp', lookup 'Account': 'Account' is not a relationship column", ("lookups",
                                                                              "Account")),
    ({"lookups": {"Account.External_Id__c": {"source": "A__c", "lock": True}}},
     "lookup 'Account.External_Id__c': unknown keys ['lock'] (allowed: locks_parent, on_null, "
     "source, sync)", ("lookups", "Account.External_Id__c", "lock")),
    ({"lookups": {"Account.External_Id__c": "A__c", "account.Other__c": "B__c"}},
     "relationship 'account' is declared twice", ("lookups",)),
    ({"lookups": {"Account.External_Id__c": "A__c"}, "fields": {"AccountId": "X__c"}},
     "field 'accountid' is also set by a lookup", ("fields", "accountid")),
    ({"key": {"source": "Id__c", "target": "Id"}},
     "a key on the Salesforce Id matches only records that exist", ("key", "target")),
    ({"operation": "insert", "deletes": "mirror"}, "deletes: mirror needs operation: upsert",
     ("deletes",)),
])
def test_mistakes_name_the_file_the_sync_and_the_field(change, message, path):
    with pytest.raises(SyncConfigError) as err:
        opp(**change)
    assert message in str(err.value)
    assert err.value.path == path


def test_a_lookup_by_another_sync_goes_through_that_syncs_key():
    spec = opp(lookups={"Account.Name": {"source": "A__c", "sync": "Acc"}})
    with pytest.raises(SyncConfigError, match=r"o\.yaml: sync 'Opp', lookup 'Account\.Name': "
                       r"sync Acc loads Account by External_Id__c, so the column must be "
                       r"Account\.External_Id__c") as err:
        sync_set([parse_sync(ACC, "a.yaml"), spec])
    assert err.value.path == ("lookups", "Account.Name")
    with pytest.raises(SyncConfigError, match=r"lookup 'Account\.External_Id__c': unknown sync "
                       r"'Acct'"):
        sync_set([opp(lookups={"Account.External_Id__c": {"source": "A__c", "sync": "Acct"}})])


def test_a_self_lookup_needs_updates_and_an_id_key_is_case_sensitive():
    with pytest.raises(SyncConfigError, match="a self-lookup is set by a second pass") as err:
        parse_sync({**ACC, "operation": "insert", "lookups": {
            "Parent.External_Id__c": {"source": "P__c", "sync": "Acc"}}}, "a.yaml")
    assert err.value.path == ("lookups", "Parent.External_Id__c")
    by_id = opp(operation="update", key={"source": "SfId__c", "target": "Id"})
    assert not by_id.folds_key  # 006…aBc and 006…abc are two records
