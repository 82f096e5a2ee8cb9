"""``PipelineSettings``: where the pipeline keeps its files, and its timing knobs.

What only the run that wrote it reads (intermediates, the extract kept for the run's checks)
stays in ``state_dir``, the run worker's own disk. The quarantine is read by operators and by
checks launched on their own, on any host: it goes to ``quarantine_url``, a path or an fsspec
URL (``s3://bucket/prefix``, ``gs://…``, ``abfs://…``) every run worker and operator reaches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field
from upath import UPath

from ..sync.arrow_files import SUFFIX


def env_number(env: Mapping[str, str], name: str, default: str, zero_ok: bool = False
               ) -> float:
    """A numeric setting from the environment; a value that is no finite number, or not above
    0 (at least 0 with ``zero_ok``), is refused naming the variable."""
    raw = env.get(name) or default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or not (value >= 0 if zero_ok else value > 0):
        raise ValueError(f"{name} must be a number {'of at least' if zero_ok else 'above'} 0, "
                         f"got {raw!r}")
    return value


def limit_share(env: Mapping[str, str]) -> float:
    """``DC_TO_CORE_LIMIT_SHARE`` (0.8): the share of the org's daily allocations dc_to_core
    may bring its usage to; above 0 and at most 1, else refused naming the variable."""
    share = env_number(env, "DC_TO_CORE_LIMIT_SHARE", "0.8")
    if share > 1:
        raise ValueError(f"DC_TO_CORE_LIMIT_SHARE must be at most 1 (a share of the daily "
                         f"maximum), got {share:g}")
    return share


class PipelineSettings(dg.ConfigurableResource):
    state_dir: str = Field(description="Quarantine files, intermediates, the default ledger.")
    repass_rounds: int = Field(default=4, ge=0, description="Re-pass rounds for transient "
                               "failures (UNABLE_TO_LOCK_ROW, unprocessed).")
    repass_backoff_s: float = Field(default=20.0, ge=0, description="Wait before the first "
                                    "re-pass (doubles each round, with jitter).")
    lease_wait_s: float = Field(default=3600.0, ge=0, description="How long a run of a "
                                "partition another run is loading waits for it to end, and "
                                "a child's run for a parent's run to start.")
    time_scale: float = Field(default=1.0, gt=0, description="Divide client waits by this "
                              "(set to the emulator's time_scale; 1 against a real org).")
    intermediate_retention_days: float = Field(default=7.0, description="Keep intermediates of "
                                               "unfinished runs this long.")
    limit_share: float = Field(default=0.8, gt=0, le=1, description="dc_to_core works only "
                               "while the org's usage of DailyBulkApiBatches and "
                               "DailyApiRequests stays at most this share of each daily "
                               "maximum (DC_TO_CORE_LIMIT_SHARE).")
    quarantine_url: str | None = Field(default=None, description="Where quarantine files go, "
                                       "for every run worker and operator: a path or an fsspec "
                                       "URL (default: <state_dir>/quarantine); the files of "
                                       "deleted rows go to its '_deleted' folder.")

    def path(self, *parts: str) -> Path:
        p = Path(self.state_dir, *parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def quarantine_dir(self, sync: str, partition: str, kind: str = "quarantine") -> UPath:
        """Where a partition's quarantine goes (``kind="deleted"``: its deleted rows, in the
        quarantine's ``_deleted`` folder; a sync's name never starts with ``_``)."""
        root = UPath(self.quarantine_url) if self.quarantine_url else UPath(
            Path(self.state_dir, "quarantine"))
        return (root if kind == "quarantine" else root / f"_{kind}") / sync / partition

    def write_quarantine(self, sync: str, partition: str, run_id: str, table: pa.Table,
                         kind: str = "quarantine") -> str:
        """The run's quarantine (or deleted rows) as ``<run id>.parquet`` and as the
        partition's ``latest.parquet`` (what the checks read); returns where the run's file
        is."""
        folder = self.quarantine_dir(sync, partition, kind)
        if folder.protocol in ("", "file", "local"):  # object stores have no folders (and
            folder.mkdir(parents=True, exist_ok=True)  # their mkdir may create a bucket)
        for name in (f"{run_id}.parquet", "latest.parquet"):
            with (folder / name).open("wb") as sink:
                pq.write_table(table, sink)
        return str(folder / f"{run_id}.parquet")

    def run_file(self, sync: str, partition: str, run_id: str, kind: str = "quarantine"
                 ) -> pa.Table | None:
        """The file a run wrote for the partition, or None."""
        try:
            with (self.quarantine_dir(sync, partition, kind) / f"{run_id}.parquet").open(
                    "rb") as source:
                return pq.read_table(source)
        except FileNotFoundError:
            return None

    def latest_quarantine(self, sync: str, partition: str, kind: str = "quarantine"
                          ) -> pa.Table | None:
        """The quarantine (or deleted rows) of the partition's latest run, or None before
        its first run."""
        path = self.quarantine_dir(sync, partition, kind) / "latest.parquet"
        try:
            with path.open("rb") as source:
                return pq.read_table(source)
        except FileNotFoundError:
            return None

    def extract_path(self, sync: str, partition: str) -> Path:
        return self.path("extracts", sync, partition + SUFFIX)  # the IO manager's format

    def wall(self, seconds: float) -> float:
        """An emulated/org-time wait expressed in wall seconds."""
        return seconds / self.time_scale
