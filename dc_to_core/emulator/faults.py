"""Fault injection decisions, driven by the profile's fault switches (seeded, so repeatable)."""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass

from .profile import FaultProfile


@dataclass(frozen=True)
class Fault:
    kind: str            # "error", "throttle", "limit", "reset_before", "reset_after", "slow"
    status: int = 0
    seconds: float = 0.0


class FaultInjector:
    def __init__(self, faults: FaultProfile) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._seed = faults.seed
        self._lock = threading.Lock()

    def decide(self, path: str) -> Fault | None:
        """At most one fault for this request, or None."""
        f = self.faults
        if f.path_pattern and not re.search(f.path_pattern, path):
            return None
        with self._lock:
            if f.seed != self._seed:  # the profile was changed at run time
                self._rng.seed(f.seed)
                self._seed = f.seed
            roll = self._rng.random
            if f.error_rate and roll() < f.error_rate:
                return Fault("error", status=self._rng.choice(f.error_statuses or [500]))
            if f.throttle_rate and roll() < f.throttle_rate:
                return Fault("throttle", status=429, seconds=f.retry_after_s)
            if f.request_limit_rate and roll() < f.request_limit_rate:
                return Fault("limit", status=403)
            if f.reset_rate and roll() < f.reset_rate:
                return Fault("reset_before" if roll() < 0.5 else "reset_after")
            if f.slow_rate and roll() < f.slow_rate:
                return Fault("slow", seconds=f.slow_s)
        return None
