"""Demo data for the emulated org, deterministic: in Data Cloud accounts (a share of them in
a hierarchy), their contacts, opportunities and, on request, allocations between accounts and
warehouses; in Core the records someone else loaded (``seed_core``: users, warehouses and, on
request, the accounts). The object graph is drawn in ``seed_graph``.

Opportunity ExternalIds are uncorrelated with their parents (the realistic, hard case: sorting
by external id scatters every account's children over the whole key range). Parent skew is
uniform, Zipf, or one giant parent. A share of rows is bad, spread evenly over the kinds in
``BAD_KINDS``; the report says which rows are bad and why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from . import seed_graph as graph
from .seed_core import CoreRecords, account_names, write_core
from .seed_core import reset_core as reset_core  # for the commands and the benchmark
from .seed_graph import ACCOUNT, ALLOCATION, CONTACT, USER, WAREHOUSE, keys, stream
from .storage import Storage

STAGES = ["Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
          "Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote",
          "Negotiation/Review", "Closed Won", "Closed Lost"]
PROBABILITY = [10, 10, 20, 50, 60, 70, 75, 90, 100, 0]
SOURCES = ["Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"]
INDUSTRIES = ["Banking", "Energy", "Healthcare", "Manufacturing", "Retail", "Technology"]
BAD_KINDS = ("missing_name", "long_name", "bad_picklist", "bad_date", "missing_parent",
             "duplicate_external_id", "missing_external_id")
ACCOUNTS, OPPORTUNITIES = "Account_Staging__dlm", "Opportunity_Staging__dlm"
CONTACTS, ALLOCATIONS = "Contact_Staging__dlm", "Allocation_Staging__dlm"
BASE_TIME = dt.datetime(2026, 11, 1, 1, 0, tzinfo=dt.UTC)


@dataclass
class SeedSpec:
    accounts: int = 1000
    opportunities: int = 200_000
    skew: Literal["uniform", "zipf", "giant"] = "uniform"
    giant_children: int | None = None   # children of the giant parent (default: a quarter)
    zipf_s: float = 1.1
    bad_share: float = 0.0
    seed: int = 42
    users: int = 20                     # User records in Core (EMP-0001 …), opportunity owners
    hierarchy_share: float = 0.3        # accounts with a parent account (3 levels at most)
    contacts_per_account: int = 2
    allocations: int = 0
    warehouses: int = 0                 # Warehouse__c records in Core; 0: what the graph needs
    allocation_graph: Literal["structured", "random"] = "structured"
    cluster_accounts: int = 5           # structured: accounts sharing their own warehouses
    warehouses_per_account: int = 3
    core_parents: bool = False          # also write the accounts straight into Core

    @property
    def contacts(self) -> int:
        return self.accounts * self.contacts_per_account

    @property
    def rows(self) -> int:
        """The Data Cloud rows the seed writes (what its progress counts up to)."""
        return self.accounts + self.contacts + self.opportunities + self.allocations


@dataclass
class SeedReport:
    accounts: int
    opportunities: int
    bad_rows: dict[str, list[str]] = field(default_factory=dict)  # kind -> external ids
    largest_parent: int = 0
    child_accounts: int = 0             # accounts with a parent account
    hierarchy_levels: int = 0           # 1: no hierarchy, 3 at most
    contacts: int = 0
    allocations: int = 0
    allocation_components: int = 0      # of the allocations' Account-Warehouse graph
    largest_component_rows: int = 0
    core: CoreRecords = field(default_factory=CoreRecords)  # written straight into Core

    def summary(self) -> dict:
        return {"accounts": self.accounts, "opportunities": self.opportunities,
                "bad_rows": {k: len(v) for k, v in self.bad_rows.items()},
                "largest_parent_children": self.largest_parent,
                "account_hierarchy": {"with_parent": self.child_accounts,
                                      "levels": self.hierarchy_levels},
                "contacts": self.contacts,
                "allocations": {"rows": self.allocations,
                                "components": self.allocation_components,
                                "largest_component_rows": self.largest_component_rows},
                "core": {"users": self.core.users, "warehouses": self.core.warehouses,
                         "accounts": self.core.accounts}}


def opportunity_key(i: int) -> str:
    return f"OPP-{i:09d}"


def _parents(spec: SeedSpec, rng: np.random.Generator) -> np.ndarray:
    n, a = spec.opportunities, spec.accounts
    if spec.skew == "uniform":
        return rng.integers(0, a, n)
    if spec.skew == "zipf":
        weights = 1.0 / np.arange(1, a + 1) ** spec.zipf_s
        ranks = rng.choice(a, n, p=weights / weights.sum())
        return rng.permutation(a)[ranks]
    giant = spec.giant_children if spec.giant_children is not None else n // 4
    parents = rng.integers(0, a, n)
    parents[rng.choice(n, min(giant, n), replace=False)] = int(rng.integers(0, a))
    return parents


def _timestamps(rng: np.random.Generator, n: int) -> list[str]:
    """Last-modified times in the month before BASE_TIME, as Data Cloud renders them."""
    base = np.datetime64(BASE_TIME.replace(tzinfo=None), "ms")
    stamps = base - rng.integers(0, 86_400 * 30, n).astype("timedelta64[s]")
    return np.char.add(np.datetime_as_string(stamps, unit="ms"), "+00:00").tolist()


def _account_rows(spec: SeedSpec, rng: np.random.Generator, parents: np.ndarray
                  ) -> Iterator[tuple]:
    industries = rng.choice(INDUSTRIES, spec.accounts)
    revenue = np.round(rng.uniform(1e5, 1e9, spec.accounts), 2)
    employees = rng.integers(1, 100_000, spec.accounts)
    stamps = _timestamps(rng, spec.accounts)
    return zip(keys(ACCOUNT, spec.accounts), account_names(spec.accounts),
               industries.tolist(), revenue.tolist(), employees.tolist(), stamps,
               keys(ACCOUNT, parents), strict=True)


def _contact_rows(spec: SeedSpec, account_of: np.ndarray) -> Iterator[tuple]:
    rng = stream(spec.seed, graph.CONTACT_VALUES)
    first, last, emails = graph.contact_names(spec.contacts, rng)
    return zip(keys(CONTACT, spec.contacts), first, last, emails, keys(ACCOUNT, account_of),
               _timestamps(rng, spec.contacts), strict=True)


def _allocation_rows(spec: SeedSpec, drawn: graph.AllocationGraph) -> Iterator[tuple]:
    rng = stream(spec.seed, graph.ALLOCATION_VALUES)
    n = spec.allocations
    return zip(keys(ALLOCATION, n), (f"Allocation {i}" for i in range(1, n + 1)),
               rng.integers(1, 1_000, n).tolist(), keys(ACCOUNT, drawn.accounts),
               keys(WAREHOUSE, drawn.warehouses), _timestamps(rng, n), strict=True)


def _told(rows: Iterable[tuple], progress: Callable[[int], None] | None, before: int = 0,
          every: int = 10_000) -> Iterator[tuple]:
    """``rows``, telling ``progress`` the rows written so far (``before`` these) every
    ``every`` rows."""
    for n, row in enumerate(rows, before + 1):
        if progress and n % every == 0:
            progress(n)
        yield row


def seed_datacloud(storage: Storage, spec: SeedSpec,
                   progress: Callable[[int], None] | None = None) -> SeedReport:
    """Replace the staging objects' rows with generated data, and upsert into Core what
    someone else loaded (users; warehouses; with ``core_parents``, the accounts): Core's other
    records are left alone. ``progress`` is told the rows written so far (of ``spec.rows``).
    """
    rng = np.random.default_rng(spec.seed)
    hierarchy = graph.account_parents(spec.accounts, spec.hierarchy_share,
                                      stream(spec.seed, graph.HIERARCHY))
    contact_account = graph.contact_accounts(spec.accounts, spec.contacts_per_account,
                                             stream(spec.seed, graph.CONTACTS))
    drawn = graph.allocation_graph(spec.allocations, spec.accounts, spec.warehouses,
                                   spec.warehouses_per_account, spec.cluster_accounts,
                                   spec.allocation_graph, stream(spec.seed, graph.ALLOCATIONS))
    with storage.write_lock:
        for table in (ACCOUNTS, CONTACTS, OPPORTUNITIES, ALLOCATIONS):
            storage.dc.execute(f'DELETE FROM "{table}"')
    storage.insert_dc_rows(ACCOUNTS, ["ExternalId__c", "Name__c", "Industry__c",
                                      "AnnualRevenue__c", "NumberOfEmployees__c",
                                      "LastModifiedDate__c", "ParentExternalId__c"],
                           _told(_account_rows(spec, rng, hierarchy), progress))
    storage.insert_dc_rows(CONTACTS, ["ExternalId__c", "FirstName__c", "LastName__c", "Email__c",
                                      "AccountExternalId__c", "LastModifiedDate__c"],
                           _told(_contact_rows(spec, contact_account), progress, spec.accounts))
    report = _opportunities(storage, spec, rng, contact_account, progress)
    done = spec.accounts + spec.contacts + spec.opportunities
    storage.insert_dc_rows(ALLOCATIONS, ["ExternalId__c", "Name__c", "Quantity__c",
                                         "AccountExternalId__c", "WarehouseExternalId__c",
                                         "LastModifiedDate__c"],
                           _told(_allocation_rows(spec, drawn), progress, done))
    report.core = CoreRecords(spec.users, drawn.warehouse_count,
                              spec.accounts if spec.core_parents else 0)
    write_core(storage, report.core)
    report.child_accounts = int((hierarchy >= 0).sum())
    report.hierarchy_levels = int(graph.levels(hierarchy).max()) + 1 if spec.accounts else 0
    report.contacts, report.allocations = spec.contacts, spec.allocations
    report.allocation_components = drawn.components
    report.largest_component_rows = drawn.largest_component_rows
    if progress:
        progress(spec.rows)
    return report


def _opportunities(storage: Storage, spec: SeedSpec, rng: np.random.Generator,
                   contact_account: np.ndarray, progress: Callable[[int], None] | None
                   ) -> SeedReport:
    """Write the opportunities (with their bad rows); the report of them."""
    n = spec.opportunities
    parents = _parents(spec, rng)
    stage_idx = rng.integers(0, len(STAGES), n)
    days = rng.integers(0, 730, n)
    amounts = np.round(rng.uniform(1_000, 1_000_000, n), 2)
    sources = rng.integers(0, len(SOURCES), n)
    opp_keys = [opportunity_key(i) for i in range(n)]
    names = [f"Opportunity {i}" for i in range(n)]
    parent_keys = keys(ACCOUNT, parents)
    dates = np.datetime_as_string(np.datetime64("2025-01-01") + days.astype("timedelta64[D]"),
                                  unit="D").tolist()
    stages = [STAGES[i] for i in stage_idx]
    report = SeedReport(spec.accounts, n, largest_parent=int(np.bincount(parents).max())
                        if n else 0)
    bad_n = round(n * spec.bad_share)
    chosen = rng.choice(n, bad_n, replace=False) if bad_n else np.array([], dtype=int)
    for j, i in enumerate(chosen.tolist()):
        kind = BAD_KINDS[j % len(BAD_KINDS)]
        report.bad_rows.setdefault(kind, []).append(opp_keys[i])
        if kind == "missing_name":
            names[i] = None  # type: ignore[call-overload]
        elif kind == "long_name":
            names[i] = "Opportunity with a name far too long " + "x" * 120
        elif kind == "bad_picklist":
            stages[i] = "Closed Maybe"
        elif kind == "bad_date":
            dates[i] = "1600-01-01"
        elif kind == "missing_parent":
            parent_keys[i] = f"ACC-MISSING-{i}"
        elif kind == "duplicate_external_id":
            opp_keys[i] = opp_keys[(i + 1) % n]
        else:
            opp_keys[i] = None  # type: ignore[call-overload]
    stamps = _timestamps(rng, n)
    links = stream(spec.seed, graph.LINKS)
    contacts = graph.primary_contacts(parents, contact_account, spec.contacts_per_account,
                                      links)
    owners = graph.owners(n, spec.users, links)
    rows = zip(opp_keys, names, stages, dates, amounts.tolist(),
               (PROBABILITY[s] for s in stage_idx.tolist()),
               (SOURCES[s] for s in sources.tolist()), (None for _ in range(n)), parent_keys,
               stamps, keys(CONTACT, contacts), keys(USER, owners), strict=True)
    storage.insert_dc_rows(OPPORTUNITIES, [
        "ExternalId__c", "Name__c", "StageName__c", "CloseDate__c", "Amount__c",
        "Probability__c", "LeadSource__c", "Description__c", "AccountExternalId__c",
        "LastModifiedDate__c", "PrimaryContactExternalId__c", "OwnerEmployeeId__c"],
        _told(rows, progress, spec.accounts + spec.contacts))
    return report
