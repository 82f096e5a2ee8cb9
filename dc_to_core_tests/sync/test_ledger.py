"""The partition lease: one run loads a partition at a time, on SQLite and PostgreSQL; a
run holds it until it ends."""

from __future__ import annotations

import threading

import pytest

from dc_to_core.sync.ledger import Lease, Ledger


def never_ended(lease: Lease) -> bool:
    return False


def test_a_partition_is_leased_to_one_run_until_it_ends(tmp_path):
    ledger = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    assert ledger.acquire("Opportunity", "p00", "run-a", never_ended) is None
    assert ledger.acquire("Opportunity", "p00", "run-a", never_ended) is None  # a retried op
    held = ledger.acquire("Opportunity", "p00", "run-b", never_ended)
    assert held is not None and held.run_id == "run-a"
    assert ledger.acquire("Opportunity", "p01", "run-b", never_ended) is None  # another one
    assert ledger.acquire("Account", "p00", "run-c", never_ended) is None  # another sync's
    ended = {"run-a"}
    assert ledger.acquire("Opportunity", "p00", "run-b",
                          lambda lease: lease.run_id in ended) is None  # a's run ended
    assert ledger.holder("Opportunity", "p00").run_id == "run-b"
    assert ledger.acquire("Opportunity", "p00", "run-a", never_ended).run_id == "run-b"


@pytest.mark.postgres
def test_two_runs_asking_at_once_one_gets_the_lease(pg_database):
    url = (f"postgresql+psycopg2://{pg_database['user']}@{pg_database['host']}:"
           f"{pg_database['port']}/{pg_database['db']}")
    start, results = threading.Barrier(8), {}

    def ask(run_id: str) -> None:
        ledger = Ledger(url=url)  # a run worker of its own
        start.wait()
        results[run_id] = ledger.acquire("Opportunity", "p00", run_id, never_ended)
        ledger.dispose()

    threads = [threading.Thread(target=ask, args=(f"run-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r, held in results.items() if held is None]
    assert len(winners) == 1
    assert {held.run_id for held in results.values() if held is not None} == set(winners)


@pytest.mark.parametrize("url", ["postgresql+pg8000://u:secret@db/dc", "mysql://u:secret@db/dc",
                                 "postgresql://u:secret@db/dc"])  # SQLAlchemy 2.1: psycopg 3
def test_a_ledger_database_the_state_cannot_be_written_to_is_refused_by_name(url):
    with pytest.raises(ValueError, match="DC_TO_CORE_LEDGER_URL") as refused:
        Ledger(url=url).engine()
    assert "secret" not in str(refused.value) and "db/dc" in str(refused.value)
