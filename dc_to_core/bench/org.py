"""The benchmark's org: one seeded data dir, a fresh emulator per strategy.

Every strategy meets the same org: the Data Cloud rows seeded once, an empty Core with the
Accounts pre-loaded (the seeds loaded Opportunities under existing Accounts), fresh limits
and a fresh emulated clock. The emulator runs as a child process, so its CPU is never counted
as the client's. Usage (API requests, Bulk batches) and emulated time are read from the org
as deltas around the strategy.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ..emulator.schema import load_schema
from ..emulator.seed import SeedReport, SeedSpec, reset_core, seed_datacloud
from ..emulator.server import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    SpawnedEmulator,
    spawn_emulator,
)
from ..emulator.storage import Storage
from ..salesforce.auth import SalesforceAuth
from ..salesforce.bulk import TERMINAL, BulkApi

ACCOUNTS_DMO = "Account_Staging__dlm"
OPPORTUNITIES_DMO = "Opportunity_Staging__dlm"


@dataclass(frozen=True)
class OrgSnapshot:
    """What the org says about itself at one moment."""

    emulated_s: float
    api_requests: int
    bulk_batches: int
    records: int                 # of the strategy's target object in Core
    lock_timeouts: int
    last_job_end_s: float        # when the latest ingest job became terminal (emulated)
    worker_busy_s: float = 0.0   # emulated seconds the org's workers held a chunk, summed
    lock_wait_s: float = 0.0     # emulated seconds transactions waited for locks, summed

    def __sub__(self, other: OrgSnapshot) -> OrgSnapshot:
        return OrgSnapshot(*(a - b for a, b in zip(self._values(), other._values(), strict=True)))

    def _values(self) -> tuple:
        return (self.emulated_s, self.api_requests, self.bulk_batches, self.records,
                self.lock_timeouts, self.last_job_end_s, self.worker_busy_s, self.lock_wait_s)


class BenchOrg:
    """A running emulator for one strategy, with the client pieces strategies need."""

    def __init__(self, emulator: SpawnedEmulator) -> None:
        self.emulator = emulator
        self.url = emulator.url
        self.ca_file = emulator.ca_file
        self.auth = SalesforceAuth(login_url=emulator.url, client_id=DEFAULT_CLIENT_ID,
                                   client_secret=DEFAULT_CLIENT_SECRET, ca_bundle=emulator.ca_file)
        self.profile = self._get("/__emulator__/profile")["profile"]

    @property
    def time_scale(self) -> float:
        return float(self.profile["time_scale"])

    def bulk(self, **options: object) -> BulkApi:
        """A Bulk client whose polling waits shrink with the org's time scale."""
        scale = self.time_scale
        return BulkApi(auth=self.auth, **{"poll_initial_s": max(0.02, 1.0 / scale),
                                                  "poll_max_s": max(0.1, 5.0 / scale),
                                                  **options})  # type: ignore[arg-type]

    def _get(self, path: str) -> dict:
        session = self.auth.session()
        for _ in range(2):  # a session the org expired (emulated hours) is renewed once
            r = self.auth.http().get(self.url + path,
                                     headers={"Authorization": f"Bearer {session.token}"})
            if r.status_code != 401:
                break
            session = self.auth.refresh(session)
        r.raise_for_status()
        return r.json()

    def snapshot(self, target: str = "Opportunity") -> OrgSnapshot:
        """The org's counters, with the records Core holds of ``target``."""
        stats = self._get("/__emulator__/stats")
        limits = stats["limits"]
        return OrgSnapshot(
            emulated_s=stats["emulated_now_s"],
            api_requests=limits["DailyApiRequests"]["Max"]
            - limits["DailyApiRequests"]["Remaining"],
            bulk_batches=limits["DailyBulkApiBatches"]["Max"]
            - limits["DailyBulkApiBatches"]["Remaining"],
            records=stats["holdings"]["core"][target],
            lock_timeouts=stats["engine"]["lock_timeouts"],
            last_job_end_s=stats["last_job_end_s"] or 0.0,
            worker_busy_s=stats["engine"]["worker_busy_s"],
            lock_wait_s=stats["engine"]["lock_wait_s"])

    def engine(self, target: str) -> tuple[float, dict, int]:
        """(emulated now, the engine's counters, records of ``target`` in Core), cheaply."""
        body = self._get(f"/__emulator__/engine?object={target}")
        return float(body["emulated_now_s"]), body["engine"], int(body["records"])

    def emulated_now(self) -> float:
        """The org's emulated clock, in seconds."""
        return float(self._get("/__emulator__/clock")["emulated_now_s"])

    def wait_until_idle(self, poll_wall_s: float = 0.1) -> None:
        """Wait until every ingest job of the org is terminal (the seeds never waited)."""
        bulk = self.bulk()
        while any(j["state"] not in TERMINAL for j in bulk.list_jobs()):
            time.sleep(poll_wall_s)

    def stop(self) -> None:
        self.emulator.stop()


class SeededOrg:
    """The data dir seeded once for the whole benchmark."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.storage = Storage(data_dir, load_schema())

    @classmethod
    def seed(cls, data_dir: Path, spec: SeedSpec,
             progress: Callable[[int], None] | None = None) -> SeededOrg:
        org = cls(data_dir)
        org.report: SeedReport = seed_datacloud(org.storage, spec, progress)
        return org

    def read(self, dmo: str, columns: list[str]) -> pa.Table:
        """Rows straight from the seeded Data Cloud file (for strategies whose reading of Data
        Cloud is not what is measured: the ceiling)."""
        cols = ", ".join(f'"{c}"' for c in columns)
        cur = self.storage.reader("dc").execute(f'SELECT {cols} FROM "{dmo}"')
        rows = cur.fetchall()
        return pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)})

    @contextlib.contextmanager
    def fresh(self, profile: str = "default", *overrides: str) -> Iterator[BenchOrg]:
        """An emulator on an empty Core with the Accounts loaded (by Bulk, unless the seed
        wrote them into Core), stopped afterwards."""
        reset_core(self.storage)
        self.storage.set_meta("clock", "null")
        args = ["--profile", profile]
        for o in overrides:
            args += ["--set", o]
        org = BenchOrg(spawn_emulator(self.data_dir, *args))
        try:
            accounts = self.read(ACCOUNTS_DMO, ["ExternalId__c", "Name__c"])
            held = self.storage.reader().execute('SELECT count(*) FROM "Account"').fetchone()[0]
            if held < accounts.num_rows:  # not written into Core by the seed (core_parents)
                outcome = org.bulk().upsert("Account", "External_Id__c",
                                            accounts.rename_columns(["External_Id__c", "Name"]))
                if outcome.loaded != accounts.num_rows:
                    raise RuntimeError(f"pre-loading Accounts: {outcome.loaded} of "
                                       f"{accounts.num_rows} loaded")
            yield org
        finally:
            org.stop()
