"""LockManager: FIFO queues, one deadline per statement, partial acquisition."""

from __future__ import annotations

from dc_to_core.emulator.locks import LockManager, LockRequest


def test_free_locks_are_taken_at_once():
    locks = LockManager()
    req = LockRequest(["a", "b"], deadline=10.0)
    assert locks.acquire(req, 0.0) and req.held == ["a", "b"] and not req.failed
    assert locks.release(req) == [] and len(locks) == 0


def test_waiters_are_granted_in_fifo_order():
    locks = LockManager()
    holder, first, second = (LockRequest(["p"], deadline=d) for d in (10, 10, 10))
    assert locks.acquire(holder, 0.0)
    assert not locks.acquire(first, 1.0) and not locks.acquire(second, 2.0)
    assert locks.release(holder) == [first]
    assert first.held == ["p"] and first.done
    assert locks.release(first) == [second]


def test_deadline_fails_the_waited_lock_and_any_busy_lock_after_it():
    locks = LockManager()
    a_holder, c_holder = LockRequest(["a"], 99), LockRequest(["c"], 99)
    locks.acquire(a_holder, 0)
    locks.acquire(c_holder, 0)
    req = LockRequest(["a", "b", "c", "d"], deadline=5.0)
    assert not locks.acquire(req, 1.0) and req.waiting == "a"
    assert locks.expire(req, 5.0)  # stops waiting, takes free b and d, fails busy c
    assert req.failed == {"a", "c"} and req.held == ["b", "d"]
    assert locks.release(a_holder) == []  # the expired waiter was removed from the queue


def test_one_deadline_covers_all_waits_of_a_statement():
    locks = LockManager()
    x, y = LockRequest(["x"], 99), LockRequest(["y"], 99)
    locks.acquire(x, 0)
    locks.acquire(y, 0)
    req = LockRequest(["x", "y"], deadline=10.0)
    assert not locks.acquire(req, 0.0)
    locks.release(x)  # granted x at t=8: continues and waits for y with the same deadline
    assert not locks.acquire(req, 8.0) and req.waiting == "y"
    assert locks.expire(req, 10.0) and req.failed == {"y"} and req.held == ["x"]


def test_expire_after_completion_is_a_no_op():
    locks = LockManager()
    req = LockRequest(["a"], deadline=1.0)
    locks.acquire(req, 0)
    assert locks.expire(req, 1.0) is False
