"""The demo org's object graph over Bulk API 2.0: an object with two master-detail parents
locks both."""

from __future__ import annotations

from dc_to_core_tests.support import OrgClient, csv_text


def load(org: OrgClient, obj: str, header: list[str], rows: list[list[object]]
         ) -> dict[str, str]:
    """{external id: sf__Error ('' when loaded)} of one upsert job."""
    info = org.run_job(obj, csv_text(header, rows))
    assert info["state"] == "JobComplete", info
    out = {r["External_Id__c"]: "" for r in org.results(info["id"], "successfulResults")}
    out |= {r["External_Id__c"]: r["sf__Error"] for r in org.results(info["id"],
                                                                      "failedResults")}
    return out


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
