"""Progress lines of long calls (a Data Cloud read, a Bulk job being awaited), given to a
caller's ``progress`` callback at most once per ``interval_s`` of wall time: the first line
at once, the last one when the call ends, the ones in between only when they are due."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[str], None]
INTERVAL_S = 30.0


class Throttle:
    """Passes lines to ``progress`` when ``interval_s`` has passed since the last one it
    passed; holds back the others, the latest of which ``flush`` passes on."""

    def __init__(self, progress: Progress, interval_s: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.progress, self.interval_s, self.clock = progress, interval_s, clock
        self.last: float | None = None
        self.held: str | None = None

    def __call__(self, line: str) -> None:
        now = self.clock()
        if self.last is not None and now - self.last < self.interval_s:
            self.held = line
            return
        self.progress(line)
        self.last, self.held = now, None

    def flush(self) -> None:
        if self.held is not None:
            self.progress(self.held)
            self.last, self.held = self.clock(), None


@contextmanager
def throttled(progress: Progress | None) -> Iterator[Progress | None]:
    """``progress`` throttled for the duration of the block, the last line passed on at its
    end. A ``Throttle`` is used as it is: a call inside a throttled call shares its pace,
    and the outer one says the last line."""
    if progress is None or isinstance(progress, Throttle):
        yield progress
        return
    throttle = Throttle(progress)
    try:
        yield throttle
    finally:
        throttle.flush()
