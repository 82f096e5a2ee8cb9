"""The seed's object graph, as index arrays: the account hierarchy, each account's contacts,
what an opportunity points at, and allocations between accounts and warehouses.

Each part, and each new object's own values, draws from its own random stream (``stream``),
apart from the one the accounts' and opportunities' own columns come from, so the graph
changes none of those columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

HIERARCHY, CONTACTS, LINKS, ALLOCATIONS, CONTACT_VALUES, ALLOCATION_VALUES = range(1, 7)
# external ids: (prefix, digits, number of index 0)
ACCOUNT, CONTACT, USER = ("ACC-", 7, 0), ("CON-", 7, 1), ("EMP-", 4, 1)
WAREHOUSE, ALLOCATION = ("WH-", 5, 1), ("ALC-", 7, 1)
FIRST_NAMES = ["Ada", "Bo", "Chen", "Dana", "Eli", "Fatima", "Goran", "Hana", "Ines", "Jon"]
LAST_NAMES = ["Alvarez", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haas",
              "Ito", "Jensen", "Kowalski", "Lindqvist"]


def stream(seed: int, part: int) -> np.random.Generator:
    """The random stream of one part of the graph."""
    return np.random.default_rng([seed, part])


def keys(kind: tuple[str, int, int], indices: np.ndarray | int) -> list[str | None]:
    """The external ids of the records at ``indices`` (an array, or ``n``: the first n),
    e.g. ``CON-0000001`` for contact 0; None where an index is negative."""
    prefix, digits, first = kind
    at = np.arange(indices) if isinstance(indices, int) else np.asarray(indices)
    if at.size == 0:
        return []
    text = np.char.add(prefix, np.char.zfill((np.maximum(at, 0) + first).astype(str), digits))
    if not (at < 0).any():
        return text.tolist()
    return np.where(at < 0, None, text.astype(object)).tolist()


def account_parents(accounts: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """Per account, the index of its parent account or -1. ``share`` of the accounts have a
    parent, at most three levels deep (roots; their children, two thirds; grandchildren, a
    third); parents are drawn at random, so parents' and children's keys interleave over the
    key range (a child's parent is as often after it as before)."""
    order = rng.permutation(accounts)
    children = min(round(accounts * share), max(accounts - 1, 0))
    grandchildren = children // 3
    roots, level1, level2 = np.split(order, [accounts - children, accounts - grandchildren])
    parents = np.full(accounts, -1, dtype=np.int64)
    parents[level1] = rng.choice(roots, len(level1)) if len(level1) else []
    parents[level2] = rng.choice(level1, len(level2)) if len(level2) else []
    return parents


def levels(parents: np.ndarray) -> np.ndarray:
    """Each record's depth in its hierarchy (0: no parent); ValueError on a cycle."""
    level = np.zeros(len(parents), dtype=np.int64)
    up = parents.copy()
    for _ in range(len(parents) + 1):
        above = up >= 0
        if not above.any():
            return level
        level += above
        up = np.where(above, parents[np.maximum(up, 0)], -1)
    raise ValueError("the hierarchy has a cycle")


def contact_accounts(accounts: int, per_account: int, rng: np.random.Generator) -> np.ndarray:
    """The account of each contact: ``per_account`` each, in an order unrelated to the
    contacts' keys."""
    return rng.permutation(np.repeat(np.arange(accounts), per_account))


def contact_names(n: int, rng: np.random.Generator
                  ) -> tuple[list[str], list[str], list[str]]:
    """First names, last names and emails (``chen.dubois1@example.com``) of ``n`` contacts."""
    first = np.array(FIRST_NAMES)[rng.integers(0, len(FIRST_NAMES), n)]
    last = np.array(LAST_NAMES)[rng.integers(0, len(LAST_NAMES), n)]
    numbers = np.arange(1, n + 1).astype(str)
    emails = np.char.lower(np.char.add(np.char.add(first, "."), np.char.add(
        last, np.char.add(numbers, "@example.com"))))
    return first.tolist(), last.tolist(), emails.tolist()


def primary_contacts(parents: np.ndarray, contact_account: np.ndarray, per_account: int,
                     rng: np.random.Generator, none_share: float = 0.1) -> np.ndarray:
    """Per opportunity (``parents``: its account), one contact of that account, or -1 for
    about ``none_share`` of them."""
    n = len(parents)
    if per_account == 0 or n == 0:
        return np.full(n, -1, dtype=np.int64)
    by_account = np.argsort(contact_account, kind="stable").reshape(-1, per_account)
    picked = by_account[parents, rng.integers(0, per_account, n)]
    return np.where(rng.random(n) < none_share, -1, picked)


def owners(rows: int, users: int, rng: np.random.Generator) -> np.ndarray:
    """Per row, one of ``users`` (uniform), or -1 when there are none."""
    return rng.integers(0, users, rows) if users else np.full(rows, -1, dtype=np.int64)


@dataclass
class AllocationGraph:
    """Allocation rows as (account, warehouse) index pairs, and the graph they make."""

    accounts: np.ndarray
    warehouses: np.ndarray
    warehouse_count: int
    components: int              # connected components of the rows' Account-Warehouse graph
    largest_component_rows: int  # rows in the largest of them


def allocation_graph(rows: int, accounts: int, warehouses: int, per_account: int,
                     cluster_accounts: int, graph: Literal["structured", "random"],
                     rng: np.random.Generator) -> AllocationGraph:
    """``rows`` allocations, each of a uniform account and one of that account's
    ``per_account`` warehouses. ``structured``: accounts in clusters of ``cluster_accounts``
    (consecutive after a shuffle), each cluster owning its own warehouses, so no component
    spans two clusters (one component per cluster, given a few rows per cluster); ``random``:
    each account draws its warehouses from all of them (with replacement), so the components
    merge. ``warehouses`` 0: as many as the clusters own."""
    if rows and (accounts < 1 or per_account < 1 or cluster_accounts < 1):
        raise ValueError("allocations need accounts, warehouses_per_account >= 1 and "
                         "cluster_accounts >= 1")
    clusters = -(-accounts // max(cluster_accounts, 1))
    needed = clusters * per_account
    count = warehouses or (needed if rows else 0)
    if graph == "structured" and rows and count < needed:
        raise ValueError(f"a structured allocation graph of {clusters} clusters of "
                         f"{per_account} warehouses needs {needed} warehouses, not {count}")
    if graph == "structured":
        cluster = np.empty(accounts, dtype=np.int64)
        cluster[rng.permutation(accounts)] = np.arange(accounts) // max(cluster_accounts, 1)
        owned = cluster[:, None] * per_account + np.arange(per_account)
    else:
        owned = rng.integers(0, max(count, 1), (accounts, per_account))
    account = rng.integers(0, accounts, rows) if rows else np.zeros(0, dtype=np.int64)
    warehouse = (owned[account, rng.integers(0, per_account, rows)] if rows
                 else np.zeros(0, dtype=np.int64))
    components, largest = connected(account, warehouse, accounts, count)
    return AllocationGraph(account, warehouse, count, components, largest)


def connected(left: np.ndarray, right: np.ndarray, n_left: int, n_right: int
              ) -> tuple[int, int]:
    """(connected components, rows of the largest) of the bipartite graph whose rows are the
    edges ``left[i]``—``right[i]`` (a union-find over the distinct edges)."""
    if len(left) == 0:
        return 0, 0
    root = list(range(n_left + n_right))

    def find(x: int) -> int:
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    for a, b in np.unique(np.stack([left, right + n_left], axis=1), axis=0).tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            root[ra] = rb
    of_row = np.array([find(a) for a in range(n_left)])[left]
    _, rows = np.unique(of_row, return_counts=True)
    return len(rows), int(rows.max())
