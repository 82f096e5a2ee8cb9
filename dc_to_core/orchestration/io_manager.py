"""Arrow tables between ops as Arrow IPC files (not pickles), one directory per run.

The Arrow IPC file format is Arrow's own memory layout on disk: writing and reading a
250,000-row table costs milliseconds, where Parquet with zstd cost a quarter of a second each
way (Parquet stays the format of what people keep and open: the quarantine files).
Intermediates live for minutes, so they are written uncompressed (a 250k-row extract: 32 MB,
9 ms to write, read memory-mapped: no copy, under a millisecond); files kept across runs use
zstd (6.6 MB, ~35 ms each way, faster to read than LZ4's 12 MB).

A re-executed run reads its parent run's files (``upstream_output.run_id``). The final op of a
partition deletes its own run's directory once the partition is done, and sweeps directories
older than the retention period, so nothing grows without bound.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
from pydantic import Field

from ..sync.arrow_files import SUFFIX, read_arrow, write_arrow


class ArrowIOManager(dg.ConfigurableIOManager):
    base_dir: str = Field(description="Directory for intermediate Arrow IPC files.")
    compression: str | None = Field(default=None, description="None: uncompressed (no CPU; "
                                     "a 250k-row table is ~30 MB until its run ends); zstd or "
                                     "lz4 where disk is short.")

    def _path(self, run_id: str, step_key: str, name: str) -> Path:
        return Path(self.base_dir, run_id, step_key, name + SUFFIX)

    def handle_output(self, context: dg.OutputContext, obj: pa.Table) -> None:
        if obj is None:
            return
        if not isinstance(obj, pa.Table):
            raise TypeError(f"{context.step_key}.{context.name}: expected a pyarrow Table, got "
                            f"{type(obj).__name__}")
        path = self._path(context.run_id, context.step_key, context.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_arrow(path, obj, self.compression)
        context.add_output_metadata({"rows": obj.num_rows, "path": str(path)})

    def load_input(self, context: dg.InputContext) -> pa.Table:
        up = context.upstream_output
        assert up is not None
        path = self._path(up.run_id, up.step_key, up.name)
        if not path.exists():
            raise dg.Failure(f"intermediate {path} is missing (cleaned up or another machine): "
                             "re-run the partition from the start", allow_retries=False)
        return read_arrow(path)

    def cleanup_run(self, run_id: str, retention_days: float) -> None:
        """Remove this run's intermediates and any run directory older than the retention."""
        shutil.rmtree(Path(self.base_dir, run_id), ignore_errors=True)
        cutoff = time.time() - retention_days * 86_400
        root = Path(self.base_dir)
        if root.exists():
            for run_dir in root.iterdir():
                if run_dir.is_dir() and run_dir.stat().st_mtime < cutoff:
                    shutil.rmtree(run_dir, ignore_errors=True)
