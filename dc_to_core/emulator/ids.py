"""Salesforce-style 18-character record Ids: key prefix, pod, counter, case-safe suffix."""

from __future__ import annotations

import itertools
import threading

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def case_safe_suffix(id15: str) -> str:
    """The 3-character suffix Salesforce appends to make a 15-char Id case-insensitive."""
    out = []
    for block in range(3):
        bits = 0
        for i, ch in enumerate(id15[block * 5 : block * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX[bits])
    return "".join(out)


def _base62(n: int, width: int) -> str:
    digits = []
    for _ in range(width):
        n, r = divmod(n, 62)
        digits.append(_B62[r])
    return "".join(reversed(digits))


class IdGenerator:
    """Thread-safe Ids for one key prefix, continuing after ``start`` (e.g. after a restart)."""

    POD = "5f"

    def __init__(self, key_prefix: str, start: int = 0) -> None:
        self.key_prefix = key_prefix
        self._counter = itertools.count(start + 1)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            n = next(self._counter)
        id15 = f"{self.key_prefix}{self.POD}{_base62(n, 10)}"
        return id15 + case_safe_suffix(id15)

    @staticmethod
    def sequence_of(record_id: str) -> int:
        """The counter value encoded in an Id this class made (to resume after a restart)."""
        n = 0
        for ch in record_id[5:15]:
            n = n * 62 + _B62.index(ch)
        return n
