"""The demo org's object graph over Bulk API 2.0: an account hierarchy (a self-reference that
refuses loops), an opportunity resolving three parents by their external ids, and an object
with two master-detail parents that locks both."""

from __future__ import annotations

import uuid

from dc_to_core_tests.support import OrgClient, csv_text

ACC = ["External_Id__c", "Name", "Parent.External_Id__c"]
LOOP = ("FIELD_INTEGRITY_EXCEPTION:Parent Account: You can't select an account that is a "
        "descendant of this account:ParentId --")


def tag() -> str:
    return uuid.uuid4().hex[:8]


def load(org: OrgClient, obj: str, header: list[str], rows: list[list[object]]
         ) -> dict[str, str]:
    """{external id: sf__Error ('' when loaded)} of one upsert job."""
    info = org.run_job(obj, csv_text(header, rows))
    assert info["state"] == "JobComplete", info
    out = {r["External_Id__c"]: "" for r in org.results(info["id"], "successfulResults")}
    out |= {r["External_Id__c"]: r["sf__Error"] for r in org.results(info["id"],
                                                                      "failedResults")}
    return out


def parents_of(org: OrgClient, keys: list[str]) -> dict[str, str | None]:
    quoted = ", ".join(f"'{k}'" for k in keys)
    records = org.query("SELECT External_Id__c, Parent.External_Id__c FROM Account WHERE "
                        f"External_Id__c IN ({quoted})")["records"]
    return {r["External_Id__c"]: (r["Parent"] or {}).get("External_Id__c") for r in records}


def test_a_three_level_hierarchy_loads_when_parents_go_first(org):
    t = tag()
    root, child, grandchild = (f"H-{t}-{n}" for n in ("root", "child", "grandchild"))
    assert load(org, "Account", ACC, [[root, "root", ""]]) == {root: ""}
    assert load(org, "Account", ACC, [[child, "child", root]]) == {child: ""}
    assert load(org, "Account", ACC, [[grandchild, "grandchild", child]]) == {grandchild: ""}
    assert parents_of(org, [root, child, grandchild]) == {
        root: None, child: root, grandchild: child}


def test_a_child_whose_parent_is_not_in_core_yet_is_refused(org):
    t = tag()
    refused = load(org, "Account", ACC, [[f"C-{t}", "early child", f"P-{t}"]])
    assert refused == {f"C-{t}": f"INVALID_CROSS_REFERENCE_KEY:Foreign key external ID: "
                                 f"P-{t} not found for field External_Id__c in entity "
                                 "Account:--"}


def test_a_parent_that_would_close_a_loop_is_refused_and_the_other_rows_load(org):
    t = tag()
    a, b, c, x, y = (f"L-{t}-{n}" for n in "abcxy")
    load(org, "Account", ACC, [[a, "a", ""], [x, "x", ""], [y, "y", ""]])
    load(org, "Account", ACC, [[b, "b", a]])
    load(org, "Account", ACC, [[c, "c", b]])  # a <- b <- c
    outcome = load(org, "Account", ACC, [
        [a, "a is under its grandchild", c],
        [b, "b is its own parent", b],
        [c, "c renamed", ""],                  # unchanged parent: loads
        [x, "x under y", y],
        [y, "y under x: a loop with the row before it", x]])
    assert outcome == {a: LOOP, b: LOOP, c: "", x: "", y: LOOP}
    assert parents_of(org, [a, b, c, x, y]) == {a: None, b: a, c: b, x: y, y: None}
    # a record moved out from under a node may become its parent
    assert load(org, "Account", ACC, [[c, "c", "#N/A"], [a, "a under c", c]]) == {a: "", c: ""}
    assert parents_of(org, [a, c]) == {a: c, c: None}


def test_an_opportunity_resolves_account_contact_and_owner_by_external_id(org, shared_server):
    t = tag()
    account, contact, opp, plain = f"A-{t}", f"C-{t}", f"O-{t}", f"O-{t}-plain"
    employee = f"E-{t}"
    info = org.run_job("User", csv_text(["Employee_Id__c", "Username", "LastName"], [
        [employee, f"{t}@example.com", "Owner"]]), ext="Employee_Id__c")
    assert info["numberRecordsFailed"] == 0
    load(org, "Account", ACC, [[account, "account", ""]])
    assert load(org, "Contact", ["External_Id__c", "LastName", "Account.External_Id__c"],
                [[contact, "Costa", account]]) == {contact: ""}
    header = ["External_Id__c", "Name", "StageName", "CloseDate", "Type",
              "Account.External_Id__c", "Primary_Contact__r.External_Id__c",
              "Owner.Employee_Id__c"]
    assert load(org, "Opportunity", header, [
        [opp, "three parents", "Prospecting", "2026-01-01", "New Customer", account, contact,
         employee],
        [plain, "no owner given", "Prospecting", "2026-01-01", "", account, "", ""],
    ]) == {opp: "", plain: ""}
    records = org.query(
        "SELECT External_Id__c, Account.External_Id__c, Primary_Contact__r.External_Id__c, "
        "Owner.Employee_Id__c, Owner.Username, OwnerId, Type FROM Opportunity WHERE "
        f"External_Id__c IN ('{opp}', '{plain}') ORDER BY External_Id__c")["records"]
    full, bare = records
    assert (full["Account"]["External_Id__c"], full["Primary_Contact__r"]["External_Id__c"],
            full["Owner"]["Employee_Id__c"], full["Type"]) == (
        account, contact, employee, "New Customer")
    # OwnerId is defaulted on create: the running user, a User record of the org
    assert bare["OwnerId"] == shared_server.org.user_id and bare["Primary_Contact__r"] is None
    assert bare["Owner"] == {"attributes": {"type": "User"}, "Employee_Id__c": None,
                             "Username": "integration@dc-to-core.emulator"}


ALLOC = ["External_Id__c", "Name", "Quantity__c", "Account__r.External_Id__c",
         "Warehouse__r.External_Id__c"]


def lock_waits(make_server, account_of, warehouse_of) -> int:
    """Lock waits of one Allocation__c job of two 10-row chunks that run at the same time
    (one transaction each); row i has account ``account_of(i)``, warehouse
    ``warehouse_of(i)``."""
    org = OrgClient(make_server(chunk_rows=10, txn_rows=10, workers=2))
    load(org, "Account", ["External_Id__c", "Name"], [[f"A{i}", "a"] for i in range(20)])
    load(org, "Warehouse__c", ["External_Id__c", "Name"], [[f"W{i}", "w"] for i in range(20)])
    before = org.get("/__emulator__/stats").json()["engine"]["lock_waits"]
    rows = [[f"AL{i}", f"allocation {i}", i, f"A{account_of(i)}", f"W{warehouse_of(i)}"]
            for i in range(20)]
    assert set(load(org, "Allocation__c", ALLOC, rows).values()) == {""}
    return org.get("/__emulator__/stats").json()["engine"]["lock_waits"] - before


def test_an_allocation_locks_both_of_its_master_detail_parents(make_server):
    def own(i: int) -> int:
        return i  # every row its own parent

    def shared(i: int) -> int:
        return 0  # one parent for all
    assert lock_waits(make_server, own, own) == 0
    assert lock_waits(make_server, own, shared) == 1   # the warehouse: the other chunk waits
    assert lock_waits(make_server, shared, own) == 1   # the account: the same
