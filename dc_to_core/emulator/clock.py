"""Emulated time: wall time multiplied by the profile's time scale, continuous across restarts."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from .storage import Storage


class EmulatedClock:
    """``now()`` is emulated seconds since the org was created.

    The origin is stored in the data dir, so a restarted emulator continues the same timeline
    (time passes while it is down, as on a real org). Changing the scale re-bases the origin.
    """

    def __init__(self, scale: float, storage: Storage | None = None) -> None:
        self.scale = scale
        self.held_wall_s = 0.0  # wall time the clock was held back for a lagging simulation
        self._last = 0.0        # the latest time handed out: the clock never goes back past it
        self._storage = storage
        saved = json.loads(storage.get_meta("clock") or "null") if storage else None
        wall = time.time()
        if saved is None:
            self._origin_wall, self._origin_emu = wall, 0.0
        else:
            self._origin_wall, self._origin_emu = saved["wall"], saved["emu"]
            if saved["scale"] != scale:  # keep emulated time continuous under a new scale
                self._origin_emu += (wall - self._origin_wall) * saved["scale"]
                self._origin_wall = wall
        self._save()

    def _save(self) -> None:
        if self._storage is not None:
            state = {"wall": self._origin_wall, "emu": self._origin_emu, "scale": self.scale}
            self._storage.set_meta("clock", json.dumps(state))

    def peek(self) -> float:
        """The current emulated time for the simulation itself: unlike ``now()`` it is not
        handed out, so a later ``hold`` may still take it back."""
        return self._origin_emu + (time.time() - self._origin_wall) * self.scale

    def now(self) -> float:
        value = self.peek()
        if value > self._last:
            self._last = value
        return max(value, self._last)

    def hold(self, limit: float) -> None:
        """Keep emulated time from passing ``limit``: the org's simulation is that far behind
        (its CPU, not the modelled org, is the bottleneck), so time waits for it. Time already
        handed out stays handed out: a status that said "finished" never becomes "running"."""
        ahead = self.peek() - max(limit, self._last)
        if ahead > 0:
            self._origin_wall += ahead / self.scale
            self.held_wall_s += ahead / self.scale
            self._save()

    def wall_delay(self, emulated_seconds: float) -> float:
        """Wall seconds until ``emulated_seconds`` of emulated time have passed."""
        return max(0.0, emulated_seconds / self.scale)

    @staticmethod
    def stamp() -> str:
        """A Salesforce API timestamp of the current wall time (``…T12:00:00.000+0000``)."""
        now = datetime.now(UTC)
        return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"
