"""The demo data generator: deterministic, skewed as asked, with each kind of bad row, and
the object graph around it (hierarchy, contacts, owners, allocations; users and warehouses in
Core)."""

from __future__ import annotations

import sqlite3
from collections import Counter

import yaml

from dc_to_core.emulator.schema import DEMO_SCHEMA, load_schema, parse_schema
from dc_to_core.emulator.seed import BAD_KINDS, SeedSpec, reset_core, seed_datacloud
from dc_to_core.emulator.seed_graph import account_parents, levels, stream
from dc_to_core.emulator.storage import Storage

STAGING = ("Account_Staging__dlm", "Contact_Staging__dlm", "Opportunity_Staging__dlm",
           "Allocation_Staging__dlm")


def rows(storage: Storage, table: str = "Opportunity_Staging__dlm", columns: str = "*"
         ) -> list[tuple]:
    conn = sqlite3.connect(storage.dc_path)
    return conn.execute(f'SELECT {columns} FROM "{table}" ORDER BY rowid').fetchall()


def core(storage: Storage, sql: str) -> list[tuple]:
    return sqlite3.connect(storage.core_path).execute(sql).fetchall()


def test_deterministic_given_the_seed(tmp_path):
    a, b = (Storage(tmp_path / n, load_schema()) for n in "ab")
    spec = SeedSpec(accounts=30, opportunities=500, bad_share=0.1, seed=5, allocations=300)
    seed_datacloud(a, spec)
    seed_datacloud(b, spec)
    assert all(rows(a, t) == rows(b, t) for t in STAGING)
    seed_datacloud(b, SeedSpec(accounts=30, opportunities=500, seed=6, allocations=300))
    assert all(rows(a, t) != rows(b, t) for t in STAGING)


def test_the_object_graph_leaves_the_accounts_and_opportunities_columns_as_they_were(tmp_path):
    old = ("ExternalId__c, Name__c, StageName__c, CloseDate__c, Amount__c, Probability__c, "
           "LeadSource__c, Description__c, AccountExternalId__c, LastModifiedDate__c")
    a, b = (Storage(tmp_path / n, load_schema()) for n in "ab")
    seed_datacloud(a, SeedSpec(accounts=30, opportunities=500, bad_share=0.1))
    seed_datacloud(b, SeedSpec(accounts=30, opportunities=500, bad_share=0.1, users=0,
                               hierarchy_share=0, contacts_per_account=0, allocations=90))
    assert rows(a, columns=old) == rows(b, columns=old)
    accounts = "ExternalId__c, Name__c, Industry__c, AnnualRevenue__c, NumberOfEmployees__c"
    assert rows(a, STAGING[0], accounts) == rows(b, STAGING[0], accounts)
    assert {r[0] for r in rows(b, columns="PrimaryContactExternalId__c, OwnerEmployeeId__c")
            } == {None}


def test_the_account_hierarchy_is_at_most_three_levels_acyclic_and_interleaved(tmp_path):
    for n, share in ((1, 0.3), (2, 1.0), (1000, 0.3), (500, 0.9)):
        parents = account_parents(n, share, stream(7, 1))
        assert (parents >= 0).sum() == min(round(n * share), n - 1)
        assert levels(parents).max() <= 2  # roots 0, children 1, grandchildren 2
    storage = Storage(tmp_path, load_schema())
    report = seed_datacloud(storage, SeedSpec(accounts=1000, opportunities=0))
    parent = dict(rows(storage, STAGING[0], "ExternalId__c, ParentExternalId__c"))
    assert report.child_accounts == 300 == sum(p is not None for p in parent.values())
    assert report.hierarchy_levels == 3
    for key in parent:  # every chain ends at a root within two steps: no cycle
        chain = [key]
        while parent[chain[-1]] is not None:
            chain.append(parent[chain[-1]])
        assert len(chain) <= 3
    later = sum(p > k for k, p in parent.items() if p is not None)
    assert 0.3 < later / 300 < 0.7  # a child's parent is as often after it as before


def test_contacts_belong_to_their_account_and_opportunities_point_at_them(tmp_path):
    storage = Storage(tmp_path, load_schema())
    report = seed_datacloud(storage, SeedSpec(accounts=50, opportunities=4000, users=7))
    contacts = dict(rows(storage, STAGING[1], "ExternalId__c, AccountExternalId__c"))
    assert report.contacts == len(contacts) == 100
    assert min(contacts) == "CON-0000001" and max(contacts) == "CON-0000100"
    assert set(Counter(contacts.values()).values()) == {2}  # two contacts per account
    opportunities = rows(storage, columns="AccountExternalId__c, PrimaryContactExternalId__c, "
                         "OwnerEmployeeId__c")
    with_contact = [(a, c) for a, c, _ in opportunities if c is not None]
    assert all(contacts[c] == a for a, c in with_contact)
    assert 0.07 < 1 - len(with_contact) / 4000 < 0.13  # about 10 % have none
    assert {o for *_, o in opportunities} == {f"EMP-{i:04d}" for i in range(1, 8)}
    assert core(storage, 'SELECT Employee_Id__c FROM "User" ORDER BY 1') == [
        (f"EMP-{i:04d}",) for i in range(1, 8)]


def test_structured_allocations_make_one_component_per_cluster(tmp_path):
    storage = Storage(tmp_path, load_schema())
    report = seed_datacloud(storage, SeedSpec(accounts=100, opportunities=0, allocations=5000,
                                              cluster_accounts=5, warehouses_per_account=3))
    assert report.allocation_components == 20 and report.core.warehouses == 60
    edges = rows(storage, STAGING[3], "AccountExternalId__c, WarehouseExternalId__c")
    warehouses_of: dict[str, set[str]] = {}
    for account, warehouse in edges:
        warehouses_of.setdefault(account, set()).add(warehouse)
    assert all(len(w) <= 3 for w in warehouses_of.values())
    accounts_of: dict[str, set[str]] = {}
    for account, warehouse in edges:
        accounts_of.setdefault(warehouse, set()).add(account)
    assert max(len(a) for a in accounts_of.values()) <= 5  # a warehouse serves one cluster
    assert report.largest_component_rows < 5000 / 20 * 2
    assert core(storage, 'SELECT count(*), min(External_Id__c) FROM "Warehouse__c"') == [
        (60, "WH-00001")]
    keys = [r[0] for r in rows(storage, STAGING[3], "ExternalId__c")]
    assert keys[0] == "ALC-0000001" and len(set(keys)) == 5000


def test_random_allocations_merge_into_a_large_component(tmp_path):
    storage = Storage(tmp_path, load_schema())
    report = seed_datacloud(storage, SeedSpec(accounts=100, opportunities=0, allocations=5000,
                                              allocation_graph="random"))
    assert report.allocation_components < 5
    assert report.largest_component_rows > 0.9 * 5000


def test_core_parents_users_and_warehouses_survive_a_reset_of_core(tmp_path):
    storage = Storage(tmp_path, load_schema())
    spec = SeedSpec(accounts=10, opportunities=0, allocations=20, users=3, core_parents=True)
    seed_datacloud(storage, spec)
    before = core(storage, 'SELECT Id, Employee_Id__c FROM "User" ORDER BY 2')
    assert core(storage, 'SELECT count(*) FROM "Account"') == [(10,)]
    seed_datacloud(storage, spec)  # seeding again: the same records, by external id
    assert core(storage, 'SELECT Id, Employee_Id__c FROM "User" ORDER BY 2') == before
    storage.core.execute('INSERT INTO "Contact" (Id, LastName) VALUES (\'003x\', \'gone\')')
    reset_core(storage)
    assert core(storage, 'SELECT Id, Employee_Id__c FROM "User" ORDER BY 2') == before
    assert core(storage, 'SELECT count(*) FROM "Contact"') == [(0,)]
    assert core(storage, 'SELECT count(*) FROM "Account"') == [(10,)]
    assert core(storage, 'SELECT count(*) FROM "Warehouse__c"') == [(6,)]


def test_a_structured_graph_with_too_few_warehouses_is_refused_before_anything_is_written(
        tmp_path):
    storage = Storage(tmp_path, load_schema())
    seed_datacloud(storage, SeedSpec(accounts=10, opportunities=5))
    try:
        seed_datacloud(storage, SeedSpec(accounts=10, opportunities=5, allocations=9,
                                         warehouses=2))
    except ValueError as exc:
        assert "needs 6 warehouses, not 2" in str(exc)
    else:
        raise AssertionError("a structured graph without enough warehouses was seeded")
    assert len(rows(storage)) == 5


def test_bad_rows_of_every_kind(tmp_path):
    storage = Storage(tmp_path, load_schema())
    report = seed_datacloud(storage, SeedSpec(accounts=10, opportunities=700, bad_share=0.1))
    assert set(report.bad_rows) == set(BAD_KINDS)
    assert sum(len(v) for v in report.bad_rows.values()) == 70
    data = rows(storage)
    assert sum(1 for r in data if r[0] is None) == len(report.bad_rows["missing_external_id"])
    assert sum(1 for r in data if r[3] == "1600-01-01") == len(report.bad_rows["bad_date"])


def test_parent_skews_and_uncorrelated_keys(tmp_path):
    storage = Storage(tmp_path, load_schema())
    report = seed_datacloud(storage, SeedSpec(accounts=100, opportunities=5_000, skew="giant",
                                              giant_children=2_000))
    assert report.largest_parent >= 2_000
    parents = [r[8] for r in rows(storage)]
    first_half = set(parents[:2_500])
    assert len(first_half) > 90  # ExternalId order scatters the parents
    zipf = seed_datacloud(storage, SeedSpec(accounts=100, opportunities=5_000, skew="zipf"))
    counts = Counter(r[8] for r in rows(storage))
    assert zipf.largest_parent == max(counts.values()) > 5 * (5_000 / 100)


def test_progress_is_told_the_rows_written_rising_to_all_of_them(tmp_path):
    told: list[int] = []
    seed_datacloud(Storage(tmp_path, load_schema()), SeedSpec(accounts=5, opportunities=25_000),
                   told.append)
    assert told == [10_000, 20_000, 25_015]  # 5 accounts, 10 contacts, 25,000 opportunities


def test_a_data_dir_from_before_the_object_graph_gains_the_new_columns(tmp_path):
    doc = yaml.safe_load(DEMO_SCHEMA.read_text())
    for column in ("PrimaryContactExternalId__c", "OwnerEmployeeId__c"):
        del doc["datacloud"]["Opportunity_Staging__dlm"][column]
    old = Storage(tmp_path, parse_schema(doc))
    old.insert_dc_rows("Opportunity_Staging__dlm", ["ExternalId__c"], [("OPP-OLD",)])
    old.close()
    storage = Storage(tmp_path, load_schema())
    assert rows(storage, columns="ExternalId__c, OwnerEmployeeId__c") == [("OPP-OLD", None)]
    seed_datacloud(storage, SeedSpec(accounts=3, opportunities=4))
    assert len(rows(storage, columns="OwnerEmployeeId__c")) == 4
