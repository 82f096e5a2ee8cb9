"""Salesforce-style 18-character record Ids: key prefix, pod, counter, case-safe suffix."""

from __future__ import annotations

import threading

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_LOW = 62**3  # the last three base-62 digits come from precomputed tables


def _upper_bits(text: str) -> int:
    return sum(1 << i for i, ch in enumerate(text) if "A" <= ch <= "Z")


def case_safe_suffix(id15: str) -> str:
    """The 3-character suffix Salesforce appends to make a 15-char Id case-insensitive."""
    return "".join(_SUFFIX[_upper_bits(id15[b * 5:b * 5 + 5])] for b in range(3))


def _base62(n: int, width: int) -> str:
    digits = []
    for _ in range(width):
        n, r = divmod(n, 62)
        digits.append(_B62[r])
    return "".join(reversed(digits))


_LOW_TEXT = [a + b + c for a in _B62 for b in _B62 for c in _B62]
_LOW_BITS = [_upper_bits(t) << 2 for t in _LOW_TEXT]  # their place in the last 5-char block


class IdGenerator:
    """Thread-safe Ids for one key prefix, continuing after ``start`` (e.g. after a restart)."""

    POD = "5f"

    def __init__(self, key_prefix: str, start: int = 0) -> None:
        self.key_prefix = key_prefix
        self._n = start
        self._lock = threading.Lock()
        self._high = -1
        self._head = ""
        self._tail_bits = 0
        self._first_two = ""

    def next(self) -> str:
        return self.take(1)[0]

    def take(self, count: int) -> list[str]:
        """``count`` consecutive new Ids."""
        with self._lock:
            start = self._n + 1
            self._n += count
        out = []
        for n in range(start, start + count):
            high, low = divmod(n, _LOW)
            if high != self._high:
                self._set_high(high)
            suffix = self._first_two + _SUFFIX[self._tail_bits | _LOW_BITS[low]]
            out.append(self._head + _LOW_TEXT[low] + suffix)
        return out

    def _set_high(self, high: int) -> None:
        """Cache everything that only depends on the top seven digits."""
        self._high = high
        self._head = f"{self.key_prefix}{self.POD}{_base62(high, 7)}"
        id12 = self._head
        self._first_two = case_safe_suffix(id12 + "000")[:2]
        self._tail_bits = _upper_bits(id12[10:12])

    @staticmethod
    def sequence_of(record_id: str) -> int:
        """The counter value encoded in an Id this class made (to resume after a restart)."""
        n = 0
        for ch in record_id[5:15]:
            n = n * 62 + _B62.index(ch)
        return n
