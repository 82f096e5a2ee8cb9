"""The demo data generator: deterministic, skewed as asked, with each kind of bad row."""

from __future__ import annotations

import sqlite3
from collections import Counter

import yaml

from dc_to_core.emulator.schema import DEMO_SCHEMA, load_schema, parse_schema
from dc_to_core.emulator.seed import BAD_KINDS, SeedSpec, seed_datacloud
from dc_to_core.emulator.storage import Storage


def rows(storage: Storage) -> list[tuple]:
    conn = sqlite3.connect(storage.dc_path)
    return conn.execute('SELECT * FROM "Opportunity_Staging__dlm" ORDER BY rowid').fetchall()


def test_deterministic_given_the_seed(tmp_path):
    a, b = (Storage(tmp_path / n, load_schema()) for n in "ab")
    spec = SeedSpec(accounts=30, opportunities=500, bad_share=0.1, seed=5)
    seed_datacloud(a, spec)
    seed_datacloud(b, spec)
    assert rows(a) == rows(b)
    seed_datacloud(b, SeedSpec(accounts=30, opportunities=500, seed=6))
    assert rows(a) != rows(b)


def test_bad_rows_of_every_kind(tmp_path):
    storage = Storage(tmp_path, load_schema())
    report = seed_datacloud(storage, SeedSpec(accounts=10, opportunities=700, bad_share=0.1))
    assert set(report.bad_rows) == set(BAD_KINDS)
    assert sum(len(v) for v in report.bad_rows.values()) == 70
    data = rows(storage)
    assert sum(1 for r in data if r[0] is None) == len(report.bad_rows["missing_external_id"])
    assert sum(1 for r in data if r[3] == "1600-01-01") == len(report.bad_rows["bad_date"])


def test_parent_skews_and_uncorrelated_keys(tmp_path):
    storage = Storage(tmp_path, load_schema())
    report = seed_datacloud(storage, SeedSpec(accounts=100, opportunities=5_000, skew="giant",
                                              giant_children=2_000))
    assert report.largest_parent >= 2_000
    parents = [r[8] for r in rows(storage)]
    first_half = set(parents[:2_500])
    assert len(first_half) > 90  # ExternalId order scatters the parents
    zipf = seed_datacloud(storage, SeedSpec(accounts=100, opportunities=5_000, skew="zipf"))
    counts = Counter(r[8] for r in rows(storage))
    assert zipf.largest_parent == max(counts.values()) > 5 * (5_000 / 100)


def test_progress_is_told_the_rows_written_rising_to_all_of_them(tmp_path):
    told: list[int] = []
    seed_datacloud(Storage(tmp_path, load_schema()), SeedSpec(accounts=5, opportunities=25_000),
                   told.append)
    assert told == [10_000, 20_000, 25_005]


def test_a_data_dir_from_before_the_object_graph_gains_the_new_columns(tmp_path):
    doc = yaml.safe_load(DEMO_SCHEMA.read_text())
    for column in ("PrimaryContactExternalId__c", "OwnerEmployeeId__c"):
        del doc["datacloud"]["Opportunity_Staging__dlm"][column]
    old = Storage(tmp_path, parse_schema(doc))
    old.insert_dc_rows("Opportunity_Staging__dlm", ["ExternalId__c"], [("OPP-OLD",)])
    old.close()
    storage = Storage(tmp_path, load_schema())
    conn = sqlite3.connect(storage.dc_path)
    assert conn.execute('SELECT ExternalId__c, OwnerEmployeeId__c FROM '
                        '"Opportunity_Staging__dlm"').fetchall() == [("OPP-OLD", None)]
    seed_datacloud(storage, SeedSpec(accounts=3, opportunities=4))
    assert len(rows(storage)) == 4
