"""The load ledger: which Bulk jobs a partition's load has submitted, for which rows.

A load op records each job right after closing it. When the op is retried (in the same run,
or by a run retry after its process was killed), it finds the jobs already submitted for the
same prepared rows (same fingerprint) and collects them instead of uploading again. A run
retried on another host must find them, so in production the ledger lives in a database
every run worker reaches (the Dagster instance's PostgreSQL by default); SQLite in the state
dir for the embedded instance.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from pydantic import BaseModel, Field, PrivateAttr

from ..salesforce.bulk import SubmittedJob

_META = sa.MetaData()
LEDGER = sa.Table(
    "dc_to_core_ledger", _META,
    sa.Column("sync", sa.String(128), primary_key=True),
    sa.Column("partition_key", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("round", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("row_start", sa.Integer, nullable=False),
    sa.Column("row_stop", sa.Integer, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("run_id", sa.String(64)),
    sa.Column("submitted_at", sa.String(32), nullable=False),
)


class Ledger(BaseModel):
    """Where submitted jobs are recorded: a SQLAlchemy URL."""

    url: str = Field(description="e.g. sqlite:////var/dc_to_core/ledger.db or "
                     "postgresql+psycopg2://user@host/db")

    _engine: sa.Engine | None = PrivateAttr(default=None)

    def dispose(self) -> None:
        """Close the pooled connections (a later call opens new ones)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def engine_url(self) -> str | sa.URL:
        return self.url

    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self.engine_url())
            _META.create_all(self._engine)
        return self._engine

    def record(self, sync: str, partition: str, fingerprint: str, round_: int,
               job: SubmittedJob, run_id: str | None = None) -> None:
        with self.engine().begin() as conn:
            conn.execute(LEDGER.insert().values(
                sync=sync, partition_key=partition, fingerprint=fingerprint, round=round_,
                job_id=job.job_id, row_start=job.start, row_stop=job.stop, bytes=job.bytes,
                run_id=run_id, submitted_at=dt.datetime.now(dt.UTC).isoformat()))

    def submitted(self, sync: str, partition: str, fingerprint: str, round_: int
                  ) -> list[SubmittedJob]:
        """Jobs already recorded for these rows, in row order."""
        query = sa.select(LEDGER.c.job_id, LEDGER.c.row_start, LEDGER.c.row_stop,
                          LEDGER.c.bytes).where(
            LEDGER.c.sync == sync, LEDGER.c.partition_key == partition,
            LEDGER.c.fingerprint == fingerprint, LEDGER.c.round == round_
        ).order_by(LEDGER.c.row_start)
        with self.engine().connect() as conn:
            return [SubmittedJob(r.job_id, r.row_start, r.row_stop, r.bytes or 0)
                    for r in conn.execute(query)]

    def forget(self, sync: str, partition: str, fingerprint: str) -> None:
        """Drop a finished load's entries (its outcome is in the materialization)."""
        with self.engine().begin() as conn:
            conn.execute(LEDGER.delete().where(
                LEDGER.c.sync == sync, LEDGER.c.partition_key == partition,
                LEDGER.c.fingerprint == fingerprint))

    def forget_job(self, sync: str, partition: str, fingerprint: str, job_id: str) -> None:
        """Drop one job the org no longer knows (deleted or expired): its rows are resent."""
        with self.engine().begin() as conn:
            conn.execute(LEDGER.delete().where(
                LEDGER.c.sync == sync, LEDGER.c.partition_key == partition,
                LEDGER.c.fingerprint == fingerprint, LEDGER.c.job_id == job_id))
