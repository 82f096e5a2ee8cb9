"""The load ledger: which Bulk jobs a partition's load has submitted, for which rows, and
which run is loading each partition (its lease).

A load op records each job as soon as the org has created it, before its upload. When the op
is retried (in the same run, or by a run retry after its process was killed), it finds the
jobs already submitted for the same prepared rows (same fingerprint) and collects them
instead of uploading again; one left open (its upload interrupted) is aborted and forgotten,
and its rows are sent anew. A run
retried on another host must find them, so in production the ledger lives in a database
every run worker reaches (the Dagster instance's PostgreSQL by default); SQLite in the state
dir for the embedded instance.

A partition is loaded by one run at a time: each step of a load takes the partition's lease
first (a retry from failure may start at any step), and the run holds it until it ends, its
checks included. A second run finds the lease held and is told which run holds it; the lease
of a run that has ended (succeeded, failed, killed, canceled) passes to the next run that
asks, so a run retry resumes where the crashed run stopped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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

LEASE = sa.Table(
    "dc_to_core_partition_lease", _META,
    sa.Column("sync", sa.String(128), primary_key=True),
    sa.Column("partition_key", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("acquired_at", sa.String(32), nullable=False),
)


@dataclass(frozen=True)
class Lease:
    """Who holds a partition's lease, since when."""

    run_id: str
    acquired_at: str


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
            url = sa.make_url(self.engine_url())
            if url.get_backend_name() not in ("sqlite", "postgresql") or (
                    url.get_backend_name() == "postgresql"
                    and url.get_driver_name() != "psycopg2"):
                raise ValueError(
                    f"the ledger's database {url.render_as_string(hide_password=True)} is "
                    "neither SQLite nor PostgreSQL through psycopg2 (the sync state is written "
                    "with psycopg2's COPY); use sqlite:///<path> or "
                    "postgresql+psycopg2://user@host/db in DC_TO_CORE_LEDGER_URL")
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)  # a new state dir
            engine = sa.create_engine(url)
            for attempt in range(3):
                try:
                    _META.create_all(engine)
                    break
                except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                    if attempt == 2:  # two workers creating the tables at once on PostgreSQL:
                        raise         # the loser sees them on its next look
            self._engine = engine
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

    def other_jobs(self, sync: str, partition: str, fingerprint: str) -> list[str]:
        """Jobs recorded for the partition under another fingerprint: a crashed load's, of
        other rows or other values, which the org may still be processing."""
        with self.engine().connect() as conn:
            return list(conn.execute(sa.select(LEDGER.c.job_id).where(
                LEDGER.c.sync == sync, LEDGER.c.partition_key == partition,
                LEDGER.c.fingerprint != fingerprint).distinct()).scalars())

    def forget_others(self, sync: str, partition: str, fingerprint: str) -> None:
        with self.engine().begin() as conn:
            conn.execute(LEDGER.delete().where(
                LEDGER.c.sync == sync, LEDGER.c.partition_key == partition,
                LEDGER.c.fingerprint != fingerprint))

    def forget_partition(self, sync: str, partition: str) -> None:
        """Drop every entry of a partition (the lease holder's load is collected; entries of
        crashed loads of other rows are never to be resumed)."""
        with self.engine().begin() as conn:
            conn.execute(LEDGER.delete().where(LEDGER.c.sync == sync,
                                               LEDGER.c.partition_key == partition))

    def forget_job(self, sync: str, partition: str, fingerprint: str, job_id: str) -> None:
        """Drop one job whose rows are to be sent anew: the org no longer knows it (deleted
        or expired), or it never got its data (an upload that failed or was interrupted)."""
        with self.engine().begin() as conn:
            conn.execute(LEDGER.delete().where(
                LEDGER.c.sync == sync, LEDGER.c.partition_key == partition,
                LEDGER.c.fingerprint == fingerprint, LEDGER.c.job_id == job_id))

    def acquire(self, sync: str, partition: str, run_id: str,
                ended: Callable[[Lease], bool]) -> Lease | None:
        """Take the partition's lease for ``run_id``: None once it is this run's, else the
        lease of the run that is still loading it (``ended(lease)`` tells whether its run has
        ended; the lease of one that has passes to this run)."""
        now = dt.datetime.now(dt.UTC).isoformat()
        key = (LEASE.c.sync == sync) & (LEASE.c.partition_key == partition)
        for _attempt in range(3):  # a race with another run taking it is decided by the row
            with self.engine().connect() as conn:
                row = conn.execute(sa.select(LEASE.c.run_id, LEASE.c.acquired_at).where(key)
                                   ).first()
            if row is not None and row.run_id == run_id:  # already this run's: renewed
                with self.engine().begin() as conn:
                    conn.execute(LEASE.update().where(key & (LEASE.c.run_id == run_id)).values(
                        acquired_at=now))
                return None
            if row is not None and not ended(Lease(row.run_id, row.acquired_at)):
                return Lease(row.run_id, row.acquired_at)
            try:
                with self.engine().begin() as conn:
                    if row is None:
                        conn.execute(LEASE.insert().values(sync=sync, partition_key=partition,
                                                           run_id=run_id, acquired_at=now))
                        return None
                    taken = conn.execute(LEASE.update().where(
                        key & (LEASE.c.run_id == row.run_id)).values(
                        run_id=run_id, acquired_at=now)).rowcount
                    if taken:
                        return None
            except sa.exc.IntegrityError:
                pass  # another run inserted it first: look again
        raise RuntimeError(f"{sync} {partition}: the partition's lease changed hands three "
                           f"times while run {run_id} asked for it; re-run the partition")

    def holder(self, sync: str, partition: str) -> Lease | None:
        with self.engine().connect() as conn:
            row = conn.execute(sa.select(LEASE.c.run_id, LEASE.c.acquired_at).where(
                LEASE.c.sync == sync, LEASE.c.partition_key == partition)).first()
        return Lease(row.run_id, row.acquired_at) if row else None
