"""``PipelineSettings``: where the pipeline keeps its files, and its timing knobs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from ..sync.arrow_files import SUFFIX


class PipelineSettings(dg.ConfigurableResource):
    state_dir: str = Field(description="Quarantine files, intermediates, the default ledger.")
    repass_rounds: int = Field(default=4, ge=0, description="Re-pass rounds for transient "
                               "failures (UNABLE_TO_LOCK_ROW, unprocessed).")
    repass_backoff_s: float = Field(default=20.0, ge=0, description="Wait before the first "
                                    "re-pass (doubles each round, with jitter).")
    time_scale: float = Field(default=1.0, gt=0, description="Divide client waits by this "
                              "(set to the emulator's time_scale; 1 against a real org).")
    intermediate_retention_days: float = Field(default=7.0, description="Keep intermediates of "
                                               "unfinished runs this long.")

    def path(self, *parts: str) -> Path:
        p = Path(self.state_dir, *parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def quarantine_path(self, sync: str, partition: str, run_id: str) -> Path:
        return self.path("quarantine", sync, partition, f"{run_id}.parquet")

    def latest_quarantine_path(self, sync: str, partition: str) -> Path:
        """The quarantine of the partition's latest run (the checks read it)."""
        return self.path("quarantine", sync, partition, "latest.parquet")

    def extract_path(self, sync: str, partition: str) -> Path:
        return self.path("extracts", sync, partition + SUFFIX)  # the IO manager's format

    def wall(self, seconds: float) -> float:
        """An emulated/org-time wait expressed in wall seconds."""
        return seconds / self.time_scale
