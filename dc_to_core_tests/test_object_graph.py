"""Object graphs through the real pipeline, declared in YAML only (an org schema of the test's
own and sync files): hierarchies across partitions, several lookups resolved by other syncs
or by records already in Core, insert-only and update-only syncs, and field policies."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from dc_to_core_tests.pipeline_support import (
    Project,
    defs_package,
    failure_messages,
    make_project,
)
from dc_to_core_tests.support import OrgClient, csv_text

ORG = """
core:
  User:
    key_prefix: "005"
    fields:
      LastName: {type: string, length: 80, required: true}
      Employee_Id__c: {type: string, length: 20, external_id: true}
  Account:
    key_prefix: "001"
    fields:
      Name: {type: string, length: 255, required: true}
      External_Id__c: {type: string, length: 80, external_id: true}
      Rating: {type: picklist, values: [Hot, Warm, Cold], restricted: true}
      Site: {type: string, length: 80}
      Description: {type: textarea, length: 32000}
      ParentId: {type: reference, to: Account, relationship: Parent}
  Contact:
    key_prefix: "003"
    fields:
      LastName: {type: string, length: 80, required: true}
      External_Id__c: {type: string, length: 80, external_id: true}
      AccountId: {type: reference, to: Account, relationship: Account, locks_parent: true}
  Opportunity:
    key_prefix: "006"
    fields:
      Name: {type: string, length: 120, required: true}
      StageName: {type: picklist, required: true, values: [Open, Won, Lost]}
      External_Id__c: {type: string, length: 80, external_id: true}
      AccountId: {type: reference, to: Account, relationship: Account, locks_parent: true}
      Primary_Contact__c: {type: reference, to: Contact, relationship: Primary_Contact__r}
      OwnerId: {type: reference, to: User, relationship: Owner, defaulted_on_create: true}
datacloud:
  Account__dlm: {Key__c: VARCHAR, Name__c: VARCHAR, Rating__c: VARCHAR, Site__c: VARCHAR,
                 Description__c: VARCHAR, ParentKey__c: VARCHAR}
  Contact__dlm: {Key__c: VARCHAR, LastName__c: VARCHAR, AccountKey__c: VARCHAR}
  Opportunity__dlm: {Key__c: VARCHAR, Name__c: VARCHAR, Stage__c: VARCHAR,
                     AccountKey__c: VARCHAR, ContactKey__c: VARCHAR, OwnerKey__c: VARCHAR}
"""
ACCOUNT = """
    name: Account
    source: Account__dlm
    target: Account
    key: {source: Key__c, target: External_Id__c}
    operation: OPERATION
    lookups:
      Parent.External_Id__c: {source: ParentKey__c, sync: Account}
    fields:
      Name: Name__c
      Site: Site__c
      Description: {source: Description__c, on_null: keep}
      Rating: {source: Rating__c, map: {hot: Hot, warm: Warm, cold: Cold}}
"""
CONTACT = """
    name: Contact
    source: Contact__dlm
    target: Contact
    key: {source: Key__c, target: External_Id__c}
    lookups:
      Account.External_Id__c: {source: AccountKey__c, sync: Account, locks_parent: true}
    fields:
      LastName: LastName__c
"""
OPPORTUNITY = """
    name: Opportunity
    source: Opportunity__dlm
    target: Opportunity
    key: {source: Key__c, target: External_Id__c}
    lookups:
      Account.External_Id__c: {source: AccountKey__c, sync: Account, locks_parent: true}
      Primary_Contact__r.External_Id__c: {source: ContactKey__c, sync: Contact}
      Owner.Employee_Id__c: OwnerKey__c      # Users are already in Core
    fields:
      Name: Name__c
      StageName: {source: Stage__c, default: Open}
"""
ACCOUNT_COLUMNS = ["Key__c", "Name__c", "Rating__c", "Site__c", "Description__c",
                   "ParentKey__c"]


def graph_project(make_server, tmp_path: Path, syncs: dict[str, str],
                  boundaries: dict[str, list[str]] | None = None) -> Project:
    schema = tmp_path / "org.yaml"
    schema.write_text(ORG)
    server = make_server(schema_path=schema, time_scale=200.0)
    return make_project(server, tmp_path, partitions=1, defs_module=defs_package(
        tmp_path, syncs), boundaries=boundaries)


def dc_rows(project: Project, obj: str, columns: list[str], rows: list[tuple]) -> None:
    storage = project.server.org.storage
    storage.dc.execute(f'DELETE FROM "{obj}"')
    storage.insert_dc_rows(obj, columns, rows)


def core(project: Project, sql: str) -> list[tuple]:
    return project.server.org.storage.core.execute(sql).fetchall()


def load(project: Project, sync: str, instance: dg.DagsterInstance) -> list[dict]:
    """Every partition of ``sync``, in partition order; their materialization metadata."""
    out = []
    for p in project.partitions(sync):
        result = project.run(sync, p, instance)
        assert result.success, failure_messages(result)
        out.append(project.materialization(result))
    return out


def quarantined(meta: list[dict], code: str) -> int:
    return sum(m.get(f"quarantined_{code.lower()}", 0) for m in meta)


def test_a_hierarchy_whose_parents_sit_in_later_partitions_loads_in_two_passes(
        make_server, tmp_path):
    """Grandchildren (A-…) load in the first partition, their parents (M-…) in the second,
    the roots (Z-…) in the last: the Accounts go first, then the hierarchy pass sets every
    ParentId, and no row fails for a parent that came later. A loop is quarantined."""
    project = graph_project(make_server, tmp_path, {"account": ACCOUNT.replace(
        "OPERATION", "upsert")}, boundaries={"Account": ["M", "Z"]})
    rows = [(f"Z-{i}", f"Root {i}", "hot", None, None, None) for i in range(3)]
    rows += [(f"M-{i}", f"Child {i}", "warm", None, None, f"Z-{i % 3}") for i in range(6)]
    rows += [(f"A-{i}", f"Grandchild {i}", None, None, None, f"M-{i % 6}") for i in range(12)]
    rows += [("C-1", "Loop 1", None, None, None, "C-2"), ("C-2", "Loop 2", None, None, None,
                                                           "C-1")]
    dc_rows(project, "Account__dlm", ACCOUNT_COLUMNS, rows)
    assert project.partitions("Account") == ["p00", "p01", "p02"]
    with dg.instance_for_test() as instance:
        first = load(project, "Account", instance)
        second = load(project, "Account_hierarchy", instance)
    assert sum(m["rows_loaded"] for m in first) == len(rows)  # every record, no parent yet
    assert quarantined(first + second, "INVALID_CROSS_REFERENCE_KEY") == 0
    parent_of = dict(core(project, "SELECT a.External_Id__c, p.External_Id__c FROM Account a "
                                   "LEFT JOIN Account p ON p.Id = a.ParentId"))
    assert all(parent_of[k] == p for k, *_, p in rows if not k.startswith("C-"))
    assert parent_of["C-1"] is None and parent_of["C-2"] is None
    assert quarantined(second, "HIERARCHY_CYCLE") == 2
    assert sum(m["rows_loaded"] + m["rows_quarantined"] for m in second) == len(rows)


def test_an_opportunity_resolves_three_lookups_and_a_missing_contact_is_the_orgs_refusal(
        make_server, tmp_path):
    project = graph_project(make_server, tmp_path, {
        "account": ACCOUNT.replace("OPERATION", "upsert"), "contact": CONTACT,
        "opportunity": OPPORTUNITY})
    OrgClient(project.server).run_job("User", csv_text(["LastName", "Employee_Id__c"], [
        ["Ada", "EMP-1"], ["Bob", "EMP-2"]]), operation="insert")  # loaded by someone else
    dc_rows(project, "Account__dlm", ACCOUNT_COLUMNS, [("ACC-1", "Acme", None, None, None, None)])
    dc_rows(project, "Contact__dlm", ["Key__c", "LastName__c", "AccountKey__c"],
            [("CON-1", "Lovelace", "ACC-1")])
    dc_rows(project, "Opportunity__dlm", ["Key__c", "Name__c", "Stage__c", "AccountKey__c",
                                          "ContactKey__c", "OwnerKey__c"],
            [("OPP-1", "Big deal", "Won", "ACC-1", "CON-1", "EMP-2"),
             ("OPP-2", "No stage", None, "ACC-1", None, "EMP-1"),
             ("OPP-3", "Ghost contact", "Open", "ACC-1", "CON-404", "EMP-1")])
    with dg.instance_for_test() as instance:
        load(project, "Account", instance)
        load(project, "Contact", instance)
        opp = load(project, "Opportunity", instance)
    got = {k: rest for k, *rest in core(project, (
        "SELECT o.External_Id__c, a.External_Id__c, c.External_Id__c, u.Employee_Id__c, "
        "o.StageName FROM Opportunity o JOIN Account a ON a.Id = o.AccountId "
        "LEFT JOIN Contact c ON c.Id = o.Primary_Contact__c JOIN User u ON u.Id = o.OwnerId"))}
    assert got == {"OPP-1": ["ACC-1", "CON-1", "EMP-2", "Won"],
                   "OPP-2": ["ACC-1", None, "EMP-1", "Open"]}  # the default stage
    assert quarantined(opp, "INVALID_CROSS_REFERENCE_KEY") == 1  # the org's code for CON-404


@pytest.mark.parametrize("operation", ["insert", "update"])
def test_insert_only_never_touches_a_record_and_update_only_never_creates_one(
        make_server, tmp_path, operation):
    project = graph_project(make_server, tmp_path, {"account": ACCOUNT.replace(
        "OPERATION", operation).replace("    lookups:\n      Parent.External_Id__c: "
                                        "{source: ParentKey__c, sync: Account}\n", "")})
    OrgClient(project.server).run_job("Account", csv_text(["External_Id__c", "Name"], [
        ["ACC-OLD", "Old name"]]))
    dc_rows(project, "Account__dlm", ACCOUNT_COLUMNS, [
        ("ACC-OLD", "New name", None, None, None, None),
        ("ACC-NEW", "Brand new", None, None, None, None)])
    with dg.instance_for_test() as instance:
        first = load(project, "Account", instance)
        dc_rows(project, "Account__dlm", ACCOUNT_COLUMNS, [
            ("ACC-OLD", "Newer name", None, None, None, None),
            ("ACC-NEW", "Renamed", None, None, None, None)])
        second = load(project, "Account", instance)
    names = dict(core(project, "SELECT External_Id__c, Name FROM Account"))
    if operation == "insert":
        assert names == {"ACC-OLD": "Old name", "ACC-NEW": "Brand new"}
        assert [m["rows_sent"] for m in first + second] == [1, 0]
        assert quarantined(first + second, "NOT_IN_CORE") == 0
    else:
        assert names == {"ACC-OLD": "Newer name"}
        assert quarantined(first, "NOT_IN_CORE") == 1 and quarantined(second, "NOT_IN_CORE") == 1


def test_field_policies_keep_clear_default_and_map(make_server, tmp_path):
    """``on_null: keep`` leaves a Core value when the source turns null, the default
    ``clear`` empties it; a picklist map translates, and a value it does not know is
    quarantined."""
    project = graph_project(make_server, tmp_path, {"account": ACCOUNT.replace(
        "OPERATION", "upsert")})
    dc_rows(project, "Account__dlm", ACCOUNT_COLUMNS, [
        ("ACC-1", "Acme", "hot", "HQ", "Founded 1901", None),
        ("ACC-2", "Globex", "lukewarm", None, None, None)])
    with dg.instance_for_test() as instance:
        first = load(project, "Account", instance)
        dc_rows(project, "Account__dlm", ACCOUNT_COLUMNS, [
            ("ACC-1", "Acme", "cold", None, None, None)])
        load(project, "Account", instance)
    assert quarantined(first, "UNMAPPED_VALUE") == 1  # 'lukewarm': no entry in the map
    assert core(project, "SELECT External_Id__c, Rating, Site, Description FROM Account") == [
        ("ACC-1", "Cold", None, "Founded 1901")]


SHIPMENT_ORG = """
core:
  Account:
    key_prefix: "001"
    fields:
      Name: {type: string, length: 80, required: true}
      External_Id__c: {type: string, length: 80, external_id: true}
  Depot__c:
    key_prefix: "a05"
    fields:
      Name: {type: string, length: 80, required: true}
      Code__c: {type: string, length: 20, external_id: true}
  Shipment__c:
    key_prefix: "a06"
    fields:
      Name: {type: string, length: 80, required: true}
      Ref__c: {type: string, length: 40, external_id: true}
      Weight__c: {type: double, precision: 12, scale: 2}
      Account__c: {type: reference, to: Account, relationship: Account__r, locks_parent: true,
                   required: true}
      Depot__c: {type: reference, to: Depot__c, relationship: Depot__r}
datacloud:
  Account_Home__dlm: {Key__c: VARCHAR, Name__c: VARCHAR}
  Shipment_Home__dlm: {Ref__c: VARCHAR, Name__c: VARCHAR, Weight__c: 'DECIMAL(12,2)',
                       Account__c: VARCHAR, Depot__c: VARCHAR}
"""
SHIPMENT_SYNCS = {
    "account": """
        name: Account
        source: Account_Home__dlm
        target: Account
        key: {source: Key__c, target: External_Id__c}
        fields: {Name: Name__c}
    """,
    "shipment": """
        name: Shipment
        source: Shipment_Home__dlm
        target: Shipment__c
        key: {source: Ref__c, target: Ref__c}
        lookups:
          Account__r.External_Id__c: {source: Account__c, sync: Account, locks_parent: true}
          Depot__r.Code__c: Depot__c
        fields:
          Name: Name__c
          Weight__c: {source: Weight__c, type: number}
    """}


def test_a_new_object_with_two_lookups_needs_yaml_only(make_server, tmp_path):
    """A custom object the product has never heard of: the emulator's schema and the sync
    files, both written here, are all it takes."""
    (tmp_path / "shipments.yaml").write_text(SHIPMENT_ORG)
    server = make_server(schema_path=tmp_path / "shipments.yaml", time_scale=200.0)
    OrgClient(server).run_job("Depot__c", csv_text(["Code__c", "Name"], [["D1", "North"]]),
                              ext="Code__c")
    server.org.storage.insert_dc_rows("Account_Home__dlm", ["Key__c", "Name__c"],
                                      [("A1", "Acme"), ("A2", "Globex")])
    server.org.storage.insert_dc_rows(
        "Shipment_Home__dlm", ["Ref__c", "Name__c", "Weight__c", "Account__c", "Depot__c"],
        [(f"S{i}", f"Shipment {i}", 1.5 * i, f"A{1 + i % 2}", "D1" if i % 3 else None)
         for i in range(30)])
    project = make_project(server, tmp_path, partitions=2,
                           defs_module=defs_package(tmp_path, SHIPMENT_SYNCS))
    with dg.instance_for_test() as instance:
        load(project, "Account", instance)
        results = [project.run("Shipment", p, instance) for p in project.partitions("Shipment")]
    assert all(r.success for r in results), [failure_messages(r) for r in results]
    assert all(all(project.checks(r).values()) for r in results)
    got = core(project, "SELECT count(*), count(Depot__c), count(DISTINCT Account__c) "
                        "FROM Shipment__c")
    assert got == [(30, 20, 2)]


def test_update_only_never_recreates_a_record_deleted_in_core(make_server, tmp_path):
    plain = ACCOUNT.replace("    lookups:\n      Parent.External_Id__c: {source: ParentKey__c, "
                            "sync: Account}\n", "")
    project = graph_project(make_server, tmp_path, {
        "account": plain.replace("OPERATION", "update")})
    client = OrgClient(project.server)
    client.run_job("Account", csv_text(["External_Id__c", "Name"], [["ACC-1", "One"],
                                                                    ["ACC-2", "Two"]]))
    dc_rows(project, "Account__dlm", ACCOUNT_COLUMNS, [
        ("ACC-1", "One v2", None, None, None, None), ("ACC-2", "Two v2", None, None, None, None)])
    with dg.instance_for_test() as instance:
        load(project, "Account", instance)
        project.server.org.storage.core.execute(  # someone deletes it in Core
            "DELETE FROM Account WHERE External_Id__c = 'ACC-2'")
        dc_rows(project, "Account__dlm", ACCOUNT_COLUMNS, [
            ("ACC-1", "One v3", None, None, None, None),
            ("ACC-2", "Two v3", None, None, None, None)])
        later = load(project, "Account", instance)
    assert dict(core(project, "SELECT External_Id__c, Name FROM Account")) == {
        "ACC-1": "One v3"}  # updated by Id; ACC-2 is not created again
    assert sum(m["rows_created"] for m in later) == 0
    assert quarantined(later, "NOT_IN_CORE") == 1


def test_an_insert_only_sync_leaves_its_records_alone_after_its_mapping_changes(
        make_server, tmp_path):
    plain = ACCOUNT.replace("    lookups:\n      Parent.External_Id__c: {source: ParentKey__c, "
                            "sync: Account}\n", "").replace("OPERATION", "insert")
    project = graph_project(make_server, tmp_path, {"account": plain})
    dc_rows(project, "Account__dlm", ACCOUNT_COLUMNS, [("ACC-1", "One", None, "HQ", None, None)])
    with dg.instance_for_test() as instance:  # one instance: the first run's lease ends
        load(project, "Account", instance)
        fewer = plain.replace("      Site: Site__c\n", "")  # another mapping: a stale state
        project = make_project(project.server, tmp_path, partitions=1,
                               defs_module=defs_package(tmp_path / "v2", {"account": fewer}))
        dc_rows(project, "Account__dlm", ACCOUNT_COLUMNS, [("ACC-1", "Renamed", None, None,
                                                            None, None)])
        again = load(project, "Account", instance)
    assert core(project, "SELECT External_Id__c, Name, Site FROM Account") == [
        ("ACC-1", "One", "HQ")]
    assert again[0]["rows_quarantined"] == 0 and again[0]["rows_sent"] == 0


def test_a_hierarchy_rearranged_in_one_night_heals_in_the_re_pass(make_server, tmp_path):
    """B sat under A; tonight A goes under B and B becomes a root. Written in key order, A's
    new parent makes a loop with B's old one, which the org refuses; the re-pass sends A
    again once B is written."""
    project = graph_project(make_server, tmp_path, {"account": ACCOUNT.replace(
        "OPERATION", "upsert")})
    dc_rows(project, "Account__dlm", ACCOUNT_COLUMNS, [("A", "A", None, None, None, None),
                                                       ("B", "B", None, None, None, "A")])
    with dg.instance_for_test() as instance:
        load(project, "Account", instance)
        load(project, "Account_hierarchy", instance)
        dc_rows(project, "Account__dlm", ACCOUNT_COLUMNS, [
            ("A", "A", None, None, None, "B"), ("B", "B", None, None, None, None)])
        second = load(project, "Account_hierarchy", instance)
    parent_of = dict(core(project, "SELECT a.External_Id__c, p.External_Id__c FROM Account a "
                                   "LEFT JOIN Account p ON p.Id = a.ParentId"))
    assert parent_of == {"A": "B", "B": None}
    assert second[0]["rows_quarantined"] == 0 and second[0]["repass_rounds"] >= 1
