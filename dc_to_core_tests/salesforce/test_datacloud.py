"""DataCloud against the emulator: both APIs, Arrow types, keyset paging (duplicates,
nulls, quotes), counts, quantiles, slow queries; a property test over arbitrary keys."""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
from collections import Counter

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dc_to_core.emulator.schema import DcColumn
from dc_to_core.salesforce.datacloud import DataCloud
from dc_to_core.salesforce.throttle import Throttle
from dc_to_core.sync.keys import in_range
from dc_to_core.sync.plan import KeyRange
from dc_to_core_tests.support import auth_for

OPP = "Opportunity_Staging__dlm"
_names = itertools.count()


def dc_for(server, **kw) -> DataCloud:
    return DataCloud(auth=auth_for(server), **kw)


def source_keys(server) -> list[str | None]:
    conn = sqlite3.connect(server.org.storage.dc_path)
    return [r[0] for r in conn.execute(f'SELECT "ExternalId__c" FROM "{OPP}"')]


def make_table(server, keys: list[str | None]) -> str:
    name = f"Keys{next(_names)}__dlm"
    storage = server.org.storage
    storage.create_dc_table(name, [DcColumn("ExternalId__c", "VARCHAR"),
                                   DcColumn("N__c", "BIGINT")])
    storage.insert_dc_rows(name, ["ExternalId__c", "N__c"], [(k, i) for i, k in enumerate(keys)])
    return name


@pytest.mark.parametrize("api", ["query-sql", "v2", "v2-arrow"])
def test_read_range_types_and_order(shared_server, api):
    dc = dc_for(shared_server, api=api.removesuffix("-arrow"), arrow_stream=api.endswith("arrow"))
    cols = ["Name__c", "Amount__c", "CloseDate__c", "Probability__c", "LastModifiedDate__c"]
    table = pa.Table.from_batches(list(dc.read_range(OPP, cols, "ExternalId__c", "OPP-000000100",
                                                      "OPP-000000600", page_rows=70)))
    schema = table.schema
    assert schema.names == ["ExternalId__c", *cols]
    assert schema.field("Amount__c").type == (pa.float64() if api == "v2"
                                              else pa.decimal128(18, 2))
    assert schema.field("CloseDate__c").type == pa.date32()
    assert schema.field("LastModifiedDate__c").type == pa.timestamp("us", tz="UTC")
    keys = table.column("ExternalId__c").to_pylist()
    expected = sorted(k for k in source_keys(shared_server)
                      if k is not None and "OPP-000000100" <= k < "OPP-000000600")
    assert keys == expected  # ordered, duplicates included, nothing lost
    assert isinstance(table.column("LastModifiedDate__c")[0].as_py(), dt.datetime)


def test_ranges_of_a_plan_cover_every_row_once(shared_server):
    dc = dc_for(shared_server)
    bounds = dc.quantiles(OPP, "ExternalId__c", 4)
    assert len(bounds) == 3 and bounds == sorted(bounds)
    edges = [None, *bounds, None]
    seen: Counter = Counter()
    total = 0
    for start, end in itertools.pairwise(edges):
        part = pa.Table.from_batches(list(dc.read_range(OPP, [], "ExternalId__c", start, end,
                                                         page_rows=500)))
        assert dc.count_range(OPP, "ExternalId__c", start, end) == part.num_rows
        seen.update(part.column("ExternalId__c").to_pylist())
        total += part.num_rows
    assert seen == Counter(source_keys(shared_server)) and total == 3000
    count, latest = dc.range_stats(OPP, "ExternalId__c", None, None, "LastModifiedDate__c")
    assert count == 3000 and latest.tzinfo is not None


def test_keys_with_quotes_neither_break_nor_inject(shared_server):
    keys = ["a'b", "a'c", "x' OR '1'='1", "plain", "it''s", "z"]
    name = make_table(shared_server, keys)
    dc = dc_for(shared_server)
    got = pa.Table.from_batches(list(dc.read_range(name, ["N__c"], "ExternalId__c", "a'b",
                                                    "x' OR '1'='1", page_rows=2)))
    assert got.column("ExternalId__c").to_pylist() == ["a'b", "a'c", "it''s", "plain"]
    assert dc.count_range(name, "ExternalId__c", "x' OR '1'='1", None) == 2


def test_slow_query_is_long_polled(make_server):
    server = make_server(dc_query_latency_ms=30_000.0, dc_sync_wait_ms=50.0)
    name = make_table(server, ["k1", "k2"])
    dc = dc_for(server, poll_wait_ms=2_000)
    assert dc.count_range(name, "ExternalId__c", None, None) == 2


def test_sql_errors_surface_with_the_message(shared_server):
    from dc_to_core.salesforce.errors import SalesforceApiError

    with pytest.raises(SalesforceApiError, match="Nope__c"):
        dc_for(shared_server).count_range("Nope__c__dlm", "ExternalId__c", None, None)


keys_strategy = st.lists(st.one_of(st.none(), st.text(alphabet=st.sampled_from(
    "abAB'\"éÉ😀 ,\n"), max_size=4)), max_size=40)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=keys_strategy, page=st.integers(1, 7), cuts=st.lists(st.text(
    alphabet=st.sampled_from("abAB'\"é "), max_size=3), max_size=3),
    api=st.sampled_from(["query-sql", "v2"]), fold=st.booleans())
def test_keyset_paging_over_arbitrary_keys(shared_server, keys, page, cuts, api, fold):
    """Every row is read once over a plan's ranges; folded, keys that differ only in case
    (b, B; é, É) fall in the same range, which Arrow's fold of the key confirms."""
    name = make_table(shared_server, keys)
    dc = dc_for(shared_server, api=api)
    edges = [None, *sorted({c.lower() if fold else c for c in cuts}), None]
    got: Counter = Counter()
    range_of: dict = {}
    for i, (start, end) in enumerate(itertools.pairwise(edges)):
        for batch in dc.read_range(name, ["N__c"], "ExternalId__c", start, end, page_rows=page,
                                   fold=fold):
            got.update(zip(batch.column("ExternalId__c").to_pylist(),
                           batch.column("N__c").to_pylist(), strict=True))
            # Data Cloud's LOWER and the pipeline's Arrow fold draw the range alike
            assert all(in_range(batch.column("ExternalId__c"), KeyRange("p", start, end),
                                fold).to_pylist())
            for k in batch.column("ExternalId__c").to_pylist():
                range_of.setdefault(None if k is None else k.lower() if fold else k, set()).add(i)
    assert got == Counter((k, i) for i, k in enumerate(keys))
    assert all(len(ranges) == 1 for ranges in range_of.values()), range_of
    assert sum(dc.count_range(name, "ExternalId__c", s, e, fold=fold)
               for s, e in itertools.pairwise(edges)) == len(keys)


def test_keys_present_matches_folded_keys_in_any_range(shared_server):
    name = make_table(shared_server, ["OPP-Éa", "opp-b", "it's", None])
    dc = dc_for(shared_server)
    assert dc.keys_present(name, "ExternalId__c", ["opp-éa", "OPP-B", "it's", "nope"],
                           fold=True) == {"opp-éa", "it's"}  # folded: asked as folded
    assert dc.keys_present(name, "ExternalId__c", ["OPP-Éa", "opp-éa"]) == {"OPP-Éa"}
    assert dc.keys_present(name, "ExternalId__c", []) == set()


@pytest.mark.parametrize("api", ["query-sql", "v2"])
def test_token_expiry_mid_read_is_recovered(make_server, api):
    server = make_server(dc_v2_batch_rows=5, dc_sql_max_rows=5)
    name = make_table(server, [f"k{i:03d}" for i in range(60)])
    from dc_to_core_tests.support import OrgClient

    OrgClient(server).http.patch("/__emulator__/profile",
                                 json={"faults": {"expire_token_every": 2}})
    dc = dc_for(server, api=api)
    rows = sum(b.num_rows for b in dc.read_range(name, ["N__c"], "ExternalId__c", None, None,
                                                  page_rows=7))
    assert rows == 60


@pytest.mark.parametrize("api", ["query-sql", "v2"])
def test_a_read_tells_its_progress_with_rising_row_counts(shared_server, api):
    lines: list[str] = []
    dc = dc_for(shared_server, api=api)
    read = list(dc.read_range(OPP, ["Name__c"], "ExternalId__c", "OPP-000000100",
                              "OPP-000000600", page_rows=100,
                              progress=Throttle(lines.append, interval_s=0)))
    rows = sum(b.num_rows for b in read)
    counts = [int(line.split(": ")[1].split(" rows")[0].replace(",", "")) for line in lines]
    assert len(counts) > 5 and counts == sorted(counts) and counts[-1] == rows
    assert lines[0].startswith(f"{OPP} [OPP-000000100, OPP-000000600): ")
    assert lines[-1].endswith(f"{rows:,} rows read, done")
