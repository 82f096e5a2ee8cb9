"""Arrow tables between ops as Arrow IPC files, and the run cleanup."""

from __future__ import annotations

import os
import time

import dagster as dg
import pyarrow as pa

from dc_to_core.orchestration.io_manager import ArrowIOManager
from dc_to_core.sync.arrow_files import read_arrow, write_arrow


def test_tables_pass_between_ops_as_arrow_files(tmp_path):
    @dg.op(out=dg.Out(io_manager_key="arrow_io"))
    def make() -> pa.Table:
        return pa.table({"a": [1, 2, 3]}).replace_schema_metadata({b"k": b"v"})

    @dg.op
    def total(t: pa.Table) -> int:
        assert t.schema.metadata[b"k"] == b"v"
        return sum(t.column("a").to_pylist())

    @dg.job(resource_defs={"arrow_io": ArrowIOManager(base_dir=str(tmp_path))})
    def j() -> None:
        total(make())

    result = j.execute_in_process()
    assert result.output_for_node("total") == 6
    files = list(tmp_path.glob("*/make/result.arrow"))
    assert len(files) == 1
    old = tmp_path / "old-run"
    old.mkdir()
    os.utime(old, (time.time() - 30 * 86_400,) * 2)
    ArrowIOManager(base_dir=str(tmp_path)).cleanup_run(result.run_id, 7)
    assert not files[0].exists() and not old.exists()


def test_intermediates_are_uncompressed_and_kept_files_zstd(tmp_path):
    table = pa.table({"k": [f"OPP-{i:09d}" for i in range(20_000)], "v": ["same text"] * 20_000})
    plain, packed = tmp_path / "plain.arrow", tmp_path / "packed.arrow"
    write_arrow(plain, table, ArrowIOManager(base_dir=str(tmp_path)).compression)
    write_arrow(packed, table)
    assert packed.stat().st_size * 4 < plain.stat().st_size
    assert read_arrow(plain).equals(table) and read_arrow(packed).equals(table)
