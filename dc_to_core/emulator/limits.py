"""Org allocations over a rolling 24 emulated hours: API requests and Bulk batches.

Usage is counted per emulated minute, kept in memory and written through to ``core.db`` so a
restarted emulator still knows what was used.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from .clock import EmulatedClock
from .profile import OrgProfile
from .storage import Storage

WINDOW_MINUTES = 24 * 60
API, BATCH, RECORDS = "DailyApiRequests", "DailyBulkApiBatches", "DailyBulkV2IngestRecords"
QUERY_JOBS = "DailyBulkV2QueryJobs"


class Limits:
    def __init__(self, profile: OrgProfile, clock: EmulatedClock, storage: Storage) -> None:
        self.profile = profile
        self.clock = clock
        self.storage = storage
        self._lock = threading.Lock()
        self._used: dict[str, dict[int, int]] = defaultdict(dict)
        for kind, minute, n in storage.reader().execute("SELECT kind, minute, n FROM usage"):
            self._used[kind][minute] = n

    def max(self, kind: str) -> int:
        return {
            API: self.profile.daily_api_requests,
            BATCH: self.profile.daily_bulk_batches,
            RECORDS: 150_000_000,
            QUERY_JOBS: 10_000,
        }[kind]

    def used(self, kind: str) -> int:
        floor = int(self.clock.now() // 60) - WINDOW_MINUTES
        with self._lock:
            buckets = self._used[kind]
            for m in [m for m in buckets if m <= floor]:
                del buckets[m]
            return sum(buckets.values())

    def remaining(self, kind: str) -> int:
        return max(0, self.max(kind) - self.used(kind))

    def take(self, kind: str, n: int = 1) -> bool:
        """Use ``n`` units if the allocation allows; False (nothing used) when it is exhausted."""
        if self.remaining(kind) < n:
            return False
        minute = int(self.clock.now() // 60)
        with self._lock:
            buckets = self._used[kind]
            buckets[minute] = buckets.get(minute, 0) + n
            value = buckets[minute]
        with self.storage.write_lock:
            self.storage.core.execute(
                "INSERT OR REPLACE INTO usage VALUES (?, ?, ?)", (kind, minute, value)
            )
        return True

    def report(self) -> dict[str, dict[str, int]]:
        """The ``/limits`` resource body."""
        body = {k: {"Max": self.max(k), "Remaining": self.remaining(k)}
                for k in (API, BATCH, QUERY_JOBS)}
        body["DailyBulkV2QueryFileStorageMB"] = {"Max": 1_048_576, "Remaining": 1_048_576}
        body["DataStorageMB"] = {"Max": 200_000, "Remaining": 200_000}
        return body
