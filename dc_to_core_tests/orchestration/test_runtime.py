"""The run worker's garbage collector: the loaded heap is frozen, and frozen again at exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_loading_the_definitions_freezes_the_heap_and_registers_the_exit_freeze():
    script = textwrap.dedent("""
        import atexit, gc
        assert gc.get_freeze_count() == 0
        import dagster  # what a run worker has loaded before its first row
        from dc_to_core.orchestration import runtime
        before = atexit._ncallbacks()
        runtime.freeze_loaded_heap()
        runtime.freeze_loaded_heap()
        assert gc.get_freeze_count() > 50_000, gc.get_freeze_count()
        assert atexit._ncallbacks() == before + 1  # once, however often definitions load
        garbage = []
        garbage.append(garbage)  # made after the freeze: still collected
        del garbage
        assert gc.collect() >= 1
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "ok"
