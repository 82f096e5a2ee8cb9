"""Arrow tables between ops as Parquet files (not pickles), one directory per run.

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
import pyarrow.parquet as pq
from pydantic import Field


class ArrowParquetIOManager(dg.ConfigurableIOManager):
    base_dir: str = Field(description="Directory for intermediate Parquet files.")

    def _path(self, run_id: str, step_key: str, name: str) -> Path:
        return Path(self.base_dir, run_id, step_key, f"{name}.parquet")

    def handle_output(self, context: dg.OutputContext, obj: pa.Table) -> None:
        if obj is None:
            return
        if not isinstance(obj, pa.Table):
            raise TypeError(f"{context.step_key}.{context.name}: expected a pyarrow Table, got "
                            f"{type(obj).__name__}")
        path = self._path(context.run_id, context.step_key, context.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(obj, path, compression="zstd")
        context.add_output_metadata({"rows": obj.num_rows, "path": str(path)})

    def load_input(self, context: dg.InputContext) -> pa.Table:
        up = context.upstream_output
        assert up is not None
        path = self._path(up.run_id, up.step_key, up.name)
        if not path.exists():
            raise dg.Failure(f"intermediate {path} is missing (cleaned up or another machine): "
                             "re-run the partition from the start", allow_retries=False)
        return pq.read_table(path)

    def cleanup_run(self, run_id: str, retention_days: float) -> None:
        """Remove this run's intermediates and any run directory older than the retention."""
        shutil.rmtree(Path(self.base_dir, run_id), ignore_errors=True)
        cutoff = time.time() - retention_days * 86_400
        root = Path(self.base_dir)
        if root.exists():
            for run_dir in root.iterdir():
                if run_dir.is_dir() and run_dir.stat().st_mtime < cutoff:
                    shutil.rmtree(run_dir, ignore_errors=True)
