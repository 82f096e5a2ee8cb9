"""What the org does while a strategy runs: sampled every second of wall time, the timeline
(busy workers over emulated time, records in Core, lock waits) the report charts, and a
progress line (records loaded, emulated time, org busy) instead of minutes of silence."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..progress import progress

if TYPE_CHECKING:
    from .org import BenchOrg


class OrgWatch:
    """Samples ``org`` from ``start`` to ``stop``; ``status`` adds the client's side to the
    progress line (e.g. the deployment's runs)."""

    def __init__(self, org: BenchOrg, name: str, target: str, rows: int,
                 interval_s: float = 1.0, status: Callable[[], str] | None = None) -> None:
        self.org, self.name, self.target, self.rows = org, name, target, rows
        self.interval_s, self.status = interval_s, status
        self.timeline: dict[str, list[float]] = {"t_s": [], "busy_workers": [], "records": [],
                                                 "lock_wait_s": []}
        self.workers = int(org.profile["workers"])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="org-watch", daemon=True)
        self._start: tuple[float, float] | None = None  # emulated s, worker busy s
        self._last: tuple[float, float] = (0.0, 0.0)

    def start(self) -> OrgWatch:
        """From now: t = 0 of the timeline."""
        now, engine, _ = self.org.engine(self.target)
        self._start = self._last = (now, float(engine["worker_busy_s"]))
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def stop(self) -> dict[str, list[float]]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.timeline

    def _loop(self) -> None:
        with progress(self.name, self.rows, "records") as bar:
            while not self._stop.wait(self.interval_s):
                try:
                    line = self.sample()
                except Exception as exc:  # a missed sample, said, never fatal
                    line = f"sampling the org failed: {type(exc).__name__}: {exc}"
                bar.update(done=self.timeline["records"][-1] if self.timeline["records"]
                           else 0, detail=line)

    def sample(self) -> str:
        """One sample; the progress line it makes."""
        assert self._start is not None
        now, engine, records = self.org.engine(self.target)
        busy_s = float(engine["worker_busy_s"])
        dt = now - self._last[0]
        busy = (busy_s - self._last[1]) / dt if dt > 0 else float(engine["busy_workers"])
        self._last = (now, busy_s)
        t = now - self._start[0]
        for key, value in (("t_s", t), ("busy_workers", busy), ("records", records),
                           ("lock_wait_s", float(engine["lock_wait_s"]))):
            self.timeline[key].append(round(value, 2))
        line = (f"{t / 60:.1f} emulated min, org busy {busy:.0f}/{self.workers} workers, "
                f"{engine['queued_chunks']} chunks queued")
        return f"{line}, {self.status()}" if self.status else line
