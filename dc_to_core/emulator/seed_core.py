"""Records the seed writes straight into Core, as records someone else loaded: the users,
the warehouses and, on request, the accounts (so a load can start from parents already in
Core). Upserted by external id, so seeding again keeps their Ids; ``reset_core`` writes them
again from what the last seed recorded, so a fresh org still has them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .clock import EmulatedClock
from .seed_graph import ACCOUNT, USER, WAREHOUSE, keys
from .storage import Storage, quote_ident

SEEDED = "seed_core"  # meta key: what the last seed wrote into Core


@dataclass(frozen=True)
class CoreRecords:
    """How many of each the seed writes into Core (accounts: the first N of the seed's)."""

    users: int = 0
    warehouses: int = 0
    accounts: int = 0


def account_names(n: int) -> list[str]:
    """The seed's account names (``Account 0`` …), as its Data Cloud rows have them."""
    return [f"Account {i}" for i in range(n)]


def write_core(storage: Storage, records: CoreRecords) -> None:
    """Upsert the users, warehouses and accounts into Core and record what was written."""
    numbers = np.arange(1, records.users + 1).astype(str).tolist()
    _upsert(storage, "User", "Employee_Id__c", {
        "Employee_Id__c": keys(USER, records.users),
        "Username": [f"user{i}@dc-to-core.emulator" for i in numbers],
        "LastName": [f"User {i}" for i in numbers],
        "Email": [f"user{i}@example.com" for i in numbers]})
    _upsert(storage, "Warehouse__c", "External_Id__c", {
        "External_Id__c": keys(WAREHOUSE, records.warehouses),
        "Name": [f"Warehouse {i}" for i in range(1, records.warehouses + 1)]})
    _upsert(storage, "Account", "External_Id__c", {
        "External_Id__c": keys(ACCOUNT, records.accounts),
        "Name": account_names(records.accounts)})
    storage.set_meta(SEEDED, json.dumps(asdict(records)))


def rewrite_core(storage: Storage) -> CoreRecords:
    """Write again what the last seed wrote into Core (nothing if it was never seeded)."""
    recorded = storage.get_meta(SEEDED)
    records = CoreRecords(**json.loads(recorded)) if recorded else CoreRecords()
    write_core(storage, records)
    return records


def _upsert(storage: Storage, obj: str, key: str, columns: dict[str, Sequence[str | None]]) -> None:
    """Insert or update records by ``key`` (new Ids from the storage's generator)."""
    rows = len(columns[key])
    if not rows or obj not in storage.schema.core:
        return
    names = ["Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", *columns]
    updates = ", ".join(f"{quote_ident(c)} = excluded.{quote_ident(c)}"
                        for c in [*columns, "LastModifiedDate", "SystemModstamp"] if c != key)
    sql = (f"INSERT INTO {quote_ident(obj)} ({', '.join(quote_ident(c) for c in names)}) "
           f"VALUES ({', '.join('?' * len(names))}) ON CONFLICT ({quote_ident(key)}) "
           f"DO UPDATE SET {updates}")
    stamp = EmulatedClock.stamp()
    ids = storage.ids(obj).take(rows)
    with storage.write_lock:
        storage.core.execute("BEGIN")
        storage.core.executemany(sql, zip(ids, *[[stamp] * rows] * 3, *columns.values(),
                                          strict=True))
        storage.core.execute("COMMIT")


def reset_core(storage: Storage) -> None:
    """A fresh org: empty every Core table but User (a fresh org still has its users) and
    forget all ingest jobs; then write again what the last seed wrote into Core."""
    with storage.write_lock:
        storage.core.execute("BEGIN")
        for name in storage.schema.core:
            if name != "User":
                storage.core.execute(f'DELETE FROM "{name}"')
        storage.core.execute("DELETE FROM ingest_result")
        storage.core.execute("DELETE FROM ingest_job")
        storage.core.execute("DELETE FROM usage")
        storage.core.execute("COMMIT")
    for path in (storage.data_dir / "jobs").glob("*.csv"):
        path.unlink()
    rewrite_core(storage)
