"""The run worker's garbage collector, set up for a process that loads a large code location
and then moves millions of short-lived values.

CPython's cyclic collector walks every tracked object in a full collection, and a run worker
holds a few hundred thousand of them before it reads a single row (Dagster, pyarrow, the
definitions). Parsing Data Cloud's JSON pages allocates millions of lists and strings, which
triggers full collections that re-walk all of that, and the interpreter walks it once more at
exit, just before the OS frees the memory anyway. ``gc.freeze`` moves what exists into a
permanent generation the collector skips; objects made later are collected as usual.

Measured on one 250,000-row Opportunity partition (CPU seconds of the run worker): the run
3.3 to 3.7 → 3.0 to 3.2 with the freeze after loading, and the exit 0.65 → 0.08 with the freeze at
exit.
"""

from __future__ import annotations

import atexit
import gc

_AT_EXIT: list[bool] = []


def freeze_loaded_heap() -> None:
    """Freeze what is loaded now, and everything again at exit (registered once)."""
    gc.freeze()
    if not _AT_EXIT:
        atexit.register(gc.freeze)
        _AT_EXIT.append(True)
