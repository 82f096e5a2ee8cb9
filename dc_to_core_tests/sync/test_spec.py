"""Sync declarations: the project's load; every mistake names the file, the sync and the key."""

from __future__ import annotations

import pytest

from dc_to_core.sync.spec import SyncConfigError, load_syncs, parse_sync, sync_set

GOOD = {"name": "A", "source": "A__dlm", "target": "Account",
        "key": {"source": "Id__c", "target": "Ext__c"}, "fields": {"Name": "N__c"}}


def test_the_project_syncs_load_in_dependency_order():
    syncs = load_syncs()
    assert [s.name for s in syncs.ordered()] == ["Account", "Account_hierarchy", "Contact",
                                                 "Opportunity"]
    opp = syncs.syncs["Opportunity"]
    assert opp.parent and opp.parent.relationship == "Account.External_Id__c"
    assert opp.depends_on == ["Account", "Contact"]
    assert opp.target_columns[0] == "External_Id__c"
    assert opp.target_columns[-3:] == ["Account.External_Id__c",
                                       "Primary_Contact__r.External_Id__c",
                                       "Owner.Employee_Id__c"]
    assert {f.target: f.type for f in opp.fields}["CloseDate"] == "date"
    assert opp.file.endswith("defs/opportunity/defs.yaml")
    assert opp.owners == ("team:salesforce-data",)


@pytest.mark.parametrize(("change", "message", "path"), [
    ({"fields": {"Name": {"source": "N__c", "type": "strng"}}},
     "f.yaml: sync 'A', field 'Name': type 'strng' is not one of", ("fields", "Name", "type")),
    ({"fields": {"Name": {"type": "string"}}}, "sync 'A', field 'Name': needs a source column",
     ("fields", "Name")),
    ({"source": "Account"}, "sync 'A': 'source' must be a Data Cloud object", ("source",)),
    ({"colour": "red"}, "sync 'A': unknown keys ['colour']", ("colour",)),
    ({"key": {"source": "Id__c"}}, "sync 'A': 'key' needs", ("key",)),
    ({"fields": {"Ext__c": "E__c"}}, "sync 'A', field 'Ext__c': the external id is mapped",
     ("fields", "Ext__c")),
    ({"operation": "merge"}, "operation 'merge' is not one of upsert, insert, update",
     ("operation",)),
    ({"owners": "me"}, "'owners' must be a list", ("owners",)),
    ({"key": {"source": "Id__c", "target": "Ext__c", "case": "upper"}},
     "sync 'A', key: unknown keys ['case'] (allowed: case_sensitive, source, target)",
     ("key", "case")),
    ({"key": {"source": "Id__c", "target": "Ext__c", "case_sensitive": "yes"}},
     "sync 'A', key: case_sensitive must be true or false", ("key", "case_sensitive")),
    ({"parent": {"sync": "B", "relationship": "B.Ext__c", "source": "B__c", "lock": True}},
     "sync 'A', parent: unknown keys ['lock'] (allowed: relationship, source, sync)",
     ("parent", "lock")),
    ({"fields": {"Name": {"source": "N__c", "compare": "no"}}},
     "sync 'A', field 'Name': compare must be true or false", ("fields", "Name", "compare")),
    ({"deletes": "all"}, "sync 'A': deletes 'all' is not one of none, mirror", ("deletes",)),
    ({"deletes": "mirror", "max_delete_share": 5}, "max_delete_share must be a share between "
     "0 and 1", ("max_delete_share",)),
    ({"deletes": "mirror", "hard_delete": "yes"}, "hard_delete must be true or false",
     ("hard_delete",)),
    ({"hard_delete": True}, "hard_delete and max_delete_share apply to deletes: mirror",
     ("deletes",)),
])
def test_mistakes_name_file_sync_field_and_key(change, message, path):
    with pytest.raises(SyncConfigError) as err:
        parse_sync({**GOOD, **change}, "f.yaml")
    assert message in str(err.value)
    assert err.value.path == path


def test_an_external_id_ignores_case_unless_declared_case_sensitive():
    assert parse_sync(GOOD, "f.yaml").folds_key
    sensitive = parse_sync({**GOOD, "key": {**GOOD["key"], "case_sensitive": True}}, "f.yaml")
    assert not sensitive.folds_key
    assert sensitive.mapping_fingerprint != parse_sync(GOOD, "f.yaml").mapping_fingerprint


def test_deletes_are_opt_in_and_leave_the_mapping_as_it_was():
    plain = parse_sync(GOOD, "f.yaml")
    assert not plain.mirrors_deletes
    mirror = parse_sync({**GOOD, "deletes": "mirror", "hard_delete": True,
                         "max_delete_share": 0.2}, "f.yaml")
    assert mirror.mirrors_deletes and mirror.hard_delete and mirror.max_delete_share == 0.2
    assert mirror.mapping_fingerprint == plain.mapping_fingerprint  # no resend for a policy


def test_unknown_parents_cycles_and_duplicates_name_the_file():
    def spec(name: str, parent: str | None, file: str):
        raw = {**GOOD, "name": name}
        if parent:
            raw["parent"] = {"sync": parent, "relationship": f"{parent}.X__c", "source": "P"}
        return parse_sync(raw, file)

    with pytest.raises(SyncConfigError, match=r"a\.yaml: sync 'A', parent: unknown sync 'Nope'"):
        sync_set([spec("A", "Nope", "a.yaml")])
    with pytest.raises(SyncConfigError, match="A, B form a cycle") as err:
        sync_set([spec("A", "B", "a.yaml"), spec("B", "A", "b.yaml")])
    assert err.value.path == ("parent",)
    with pytest.raises(SyncConfigError, match=r"b\.yaml: sync 'A' is defined twice \(also in a"):
        sync_set([spec("A", None, "a.yaml"), spec("A", None, "b.yaml")])


def test_a_defs_folder_without_syncs_or_with_bad_yaml_says_so(tmp_path):
    with pytest.raises(SyncConfigError, match=r"no dc_to_core\.SalesforceSync declared"):
        load_syncs(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "defs.yaml").write_text("type: [unclosed")
    with pytest.raises(SyncConfigError, match=r"x/defs\.yaml: not valid YAML"):
        load_syncs(tmp_path)
