"""The sync state in the ledger's database, on SQLite and PostgreSQL: ranges by folded key
whatever the plan (byte order on both), upserts that keep a known Salesforce Id, mappings,
rows marked to be sent again."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from dc_to_core.sync.ledger import Ledger
from dc_to_core.sync.plan import KeyRange
from dc_to_core.sync.state import LOADED, RETRY, STALE, SyncState, stamp, state_rows


def rows(keys: list[str], ids: list[str | None], status: str = LOADED, h: int = 7) -> pa.Table:
    n = len(keys)
    return state_rows(pa.array(keys, pa.string()), pa.array(ids, pa.string()),
                      pa.array([h] * n, pa.int64()), pa.array([status] * n),
                      pa.array([None] * n, pa.string()))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state(request, tmp_path) -> SyncState:
    if request.param == "sqlite":
        return SyncState(Ledger(url=f"sqlite:///{tmp_path}/ledger.db"))
    db = request.getfixturevalue("pg_database")
    return SyncState(Ledger(url=f"postgresql+psycopg2://{db['user']}@{db['host']}:{db['port']}"
                                f"/{db['db']}"))


def test_the_state_reads_any_range_of_keys_whatever_the_plan(state):
    keys = [f"opp-{i:03d}" for i in range(100)] + ["opp-é", "zz"]
    assert state.record("Opportunity", "m1", rows(keys, [f"006{i}" for i in range(102)])) == 102
    whole = state.read_range("Opportunity", KeyRange("p00", None, None), True, "m1")
    assert whole.num_rows == 102
    parts = [KeyRange("a", None, "opp-050"), KeyRange("b", "opp-050", "opp-é"),
             KeyRange("c", "opp-é", None)]
    got = [state.read_range("Opportunity", r, True, "m1").num_rows for r in parts]
    assert got == [50, 50, 2]  # a re-plan reads the same keys, cut elsewhere
    stale = state.read_range("Opportunity", parts[0], True, "m2")  # a new mapping: all stale
    assert stale.num_rows == 50 and set(stale.column("status").to_pylist()) == {STALE}
    assert state.read_range("Account", parts[0], True, "m1").num_rows == 0


def test_a_row_recorded_again_keeps_its_salesforce_id_when_the_org_gave_none(state):
    state.record("S", "m", rows(["k1", "k2"], ["006A", "006B"]))
    state.record("S", "m", rows(["k1"], [None], status=RETRY, h=9))
    got = {r["key"]: r for r in state.read_range("S", KeyRange("p", None, None), False,
                                                 "m").to_pylist()}
    assert (got["k1"]["status"], got["k1"]["row_hash"]) == (RETRY, 9)
    assert state.salesforce_ids("S", ["k1", "k2", "k3"]) == {"k1": "006A", "k2": "006B"}
    assert got["k2"]["status"] == LOADED and state.keys("S") == 2
    assert state.mark_retry("S", ["k2"], recorded_before=stamp(dt.datetime(2000, 1, 1,
                                                                            tzinfo=dt.UTC))) == 0
    assert state.mark_retry("S", ["k2", "k9", "k2"]) == 1
    marked = state.read_range("S", KeyRange("p", "k2", None), False, "m").to_pylist()
    assert [(r["key"], r["status"]) for r in marked] == [("k2", RETRY)]
    assert state.salesforce_ids("S", ["k2"]) == {"k2": "006B"}
    long_key = "K" * 600  # no length limit on the key (the org's is the org's business)
    assert state.record("S", "m", rows([long_key], ["006Z"])) == 1


def test_a_write_that_fails_part_way_leaves_the_state_as_it_was(state):
    """A partition's results are one transaction: a write stopped in its last batch (here a
    row the database refuses; a SIGKILL rolls back the same way) records none of them, so
    every one of those rows is sent again."""
    keys = [f"k{i:05d}" for i in range(12_000)]
    state.record("S", "m", rows(keys[:100], ["006X"] * 100))
    before = state.read_range("S", KeyRange("p", None, None), False, "m").to_pylist()
    broken = rows(keys, [f"006{i}" for i in range(12_000)], h=9)
    hashes = broken.column("row_hash").to_pylist()
    hashes[11_999] = None  # NOT NULL: refused by the database after 11,999 rows
    broken = broken.set_column(2, "row_hash", pa.array(hashes, pa.int64()))
    with pytest.raises(Exception):  # noqa: B017 — the driver's own integrity error
        state.record("S", "m", broken)
    assert state.read_range("S", KeyRange("p", None, None), False, "m").to_pylist() == before
    assert state.keys("S") == 100


def test_a_state_table_of_an_earlier_version_gains_the_new_columns(tmp_path):
    ledger = Ledger(url=f"sqlite:///{tmp_path}/ledger.db")
    with ledger.engine().begin() as conn:  # the table as the first release created it
        conn.exec_driver_sql(
            "CREATE TABLE dc_to_core_sync_state (sync VARCHAR(128) NOT NULL, key TEXT NOT NULL,"
            " sf_id VARCHAR(18), row_hash BIGINT NOT NULL, mapping VARCHAR(32) NOT NULL, "
            "status VARCHAR(8) NOT NULL, error_code VARCHAR(64), updated_at VARCHAR(32) NOT "
            "NULL, PRIMARY KEY (sync, key)) WITHOUT ROWID")
    state = SyncState(ledger)
    state.record("S", "m", rows(["k1"], ["006A"]))
    state.set_core_hashes("S", {"k1": 42})
    assert state.core_hashes("S", ["k1"]) == {"k1": 42}
    state.record("S", "m", rows(["k1"], ["006A"]))  # loaded again: what Core held is stale
    assert state.core_hashes("S", ["k1"]) == {}


def test_any_key_and_error_text_survive_the_write_and_a_key_given_twice_keeps_its_last_row(
        state):
    """PostgreSQL's write goes through CSV (COPY): quotes, commas, line breaks, an empty
    string and a null each come back as written; a key twice in one write is upserted once,
    with its last row (as one upsert per row would leave it)."""
    keys = ['a,"b"', "line\nbreak", "", " pad ", "k1", "k1"]
    written = state_rows(pa.array(keys), pa.array(["006A", None, "006C", "006D", "006E", None]),
                         pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
                         pa.array([LOADED, RETRY, LOADED, LOADED, LOADED, RETRY]),
                         pa.array([None, 'CODE, "x"', "", None, None, "LAST"]))
    assert state.record("S", "m", written) == 5  # one row per key
    got = {r["key"]: r for r in state.read_range("S", KeyRange("p", None, None), False,
                                                 "m").to_pylist()}
    assert set(got) == {'a,"b"', "line\nbreak", "", " pad ", "k1"}
    assert (got["k1"]["row_hash"], got["k1"]["status"], got["k1"]["error_code"]) == (
        6, RETRY, "LAST")
    assert got["line\nbreak"]["error_code"] == 'CODE, "x"' and got[""]["error_code"] == ""
    assert got['a,"b"']["error_code"] is None
    assert state.salesforce_ids("S", keys) == {'a,"b"': "006A", "": "006C", " pad ": "006D",
                                               "k1": "006E"}
