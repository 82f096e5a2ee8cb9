"""Record locks in emulated time.

A DML transaction locks every parent its rows reference and every row it updates, in one
fixed global order (so there are no deadlocks). Each lock has a FIFO queue of waiters. The
whole acquisition is one statement's wait, bounded by a single deadline: a per-lock timeout
would let convoys through and hide contention. At the deadline the transaction stops waiting;
locks it still lacks are taken only if free at once, otherwise they fail, and so do the rows
that need them (``UNABLE_TO_LOCK_ROW``). Locks are held until the transaction ends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(eq=False)
class LockRequest:
    """The lock state of one transaction."""

    keys: list[str]                      # sorted, unique
    deadline: float
    next: int = 0                        # index of the next key to acquire
    held: list[str] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)
    waiting: str | None = None
    expired: bool = False
    acquired_at: float = 0.0             # time the last lock was obtained (or given up)
    owner: object = None                 # the transaction this request belongs to

    @property
    def done(self) -> bool:
        return self.next >= len(self.keys) and self.waiting is None


class _Lock:
    __slots__ = ("holder", "waiters")

    def __init__(self) -> None:
        self.holder: LockRequest | None = None
        self.waiters: deque[LockRequest] = deque()


class LockManager:
    """FIFO lock queues; time is passed in by the caller's event loop."""

    def __init__(self) -> None:
        self._locks: dict[str, _Lock] = {}
        self.waits = 0      # lock requests that had to queue
        self.timeouts = 0   # locks given up at a deadline

    def __len__(self) -> int:
        return len(self._locks)

    def acquire(self, req: LockRequest, now: float) -> bool:
        """Continue acquiring at ``now``. True when every key is held or failed; False if the
        request now waits in a queue (the caller schedules ``expire`` at ``req.deadline``)."""
        keys = req.keys
        while req.next < len(keys):
            key = keys[req.next]
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = _Lock()
            if lock.holder is None and not lock.waiters:
                lock.holder = req
                req.held.append(key)
            elif req.expired or now >= req.deadline:
                req.failed.add(key)
                self.timeouts += 1
            else:
                lock.waiters.append(req)
                req.waiting = key
                self.waits += 1
                return False
            req.next += 1
        req.acquired_at = now
        return True

    def expire(self, req: LockRequest, now: float) -> bool:
        """The deadline passed. Stop waiting; try the rest without waiting. True if finished."""
        if req.waiting is None:
            return False  # it finished before its deadline; nothing to do
        lock = self._locks[req.waiting]
        lock.waiters.remove(req)
        req.failed.add(req.waiting)
        self.timeouts += 1
        req.waiting = None
        req.expired = True
        req.next += 1
        self._drop_if_idle(lock, req.keys[req.next - 1])
        return self.acquire(req, now)

    def release(self, req: LockRequest) -> list[LockRequest]:
        """Release everything ``req`` holds; return the waiters that were granted a lock (the
        caller continues their acquisition at the release time)."""
        granted = []
        for key in req.held:
            lock = self._locks[key]
            lock.holder = None
            if lock.waiters:
                nxt = lock.waiters.popleft()
                lock.holder = nxt
                nxt.held.append(key)
                nxt.waiting = None
                nxt.next += 1
                granted.append(nxt)
            else:
                del self._locks[key]
        req.held = []
        return granted

    def _drop_if_idle(self, lock: _Lock, key: str) -> None:
        if lock.holder is None and not lock.waiters:
            self._locks.pop(key, None)
