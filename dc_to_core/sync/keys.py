"""How a sync compares external ids. Salesforce matches an external id ignoring case unless
the field is declared case-sensitive, so for such a sync ``OPP-X`` and ``opp-x`` are one
record: partitions cut the folded key space (``LOWER(key)`` in Data Cloud), duplicates and
the checks compare folded keys, and a range read back from Core is settled against the same
rule whatever order the org's own collation gives its SOQL ranges (``settle_core_range``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from .plan import KeyRange

Keys = pa.Array | pa.ChunkedArray | list[str | None]
VERIFY_AT_MOST = 2_000  # unseen Data Cloud keys looked up in Core by key, per range


def as_array(keys: Keys) -> pa.Array:
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    arr = keys if isinstance(keys, pa.Array) else pa.array(keys, pa.string())
    return arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())


def folded(keys: Keys, fold: bool) -> pa.Array:
    """The keys as the sync compares them: lower-cased when ``fold``."""
    arr = as_array(keys)
    return pc.utf8_lower(arr) if fold else arr


def read_keys(keys: Keys, fold: bool) -> pa.Array:
    """The keys a read holds, as the sync compares them (folded when ``fold``; no nulls)."""
    return folded(as_array(keys).drop_null(), fold)


def in_range(keys: Keys, r: KeyRange, fold: bool) -> pa.Array:
    """Which keys belong to ``r`` by the rule Data Cloud reads use (NULL keys: the first)."""
    k = folded(keys, fold)
    inside = pc.is_valid(k)
    if r.start is not None:
        inside = pc.and_(inside, pc.greater_equal(k, pa.scalar(r.start)))
    if r.end is not None:
        inside = pc.and_(inside, pc.less(k, pa.scalar(r.end)))
    return pc.or_(pc.fill_null(inside, False), pc.and_(pc.is_null(k), pa.scalar(
        r.start is None)))


@dataclass
class SettledRange:
    records: pa.Table   # Core's records of the range by the sync's rule, plus strays
    outside: int        # records Core's SOQL range returned that belong to another range
    looked_up: int      # Data Cloud keys missing from Core's range, then looked up by key
    found_by_key: int   # of those, held by Core (its collation placed them elsewhere)
    unverified: int     # keys still missing that were not looked up (beyond the cap)
    not_looked_up: list[str] = field(default_factory=list)  # those keys


def settle_core_range(core: pa.Table, key: str, r: KeyRange, fold: bool, expected: Keys,
                      read_keys: Callable[[list[str]], pa.Table],
                      in_datacloud: Callable[[list[str]], set[str]],
                      verify_at_most: int = VERIFY_AT_MOST) -> SettledRange:
    """Core's records of ``r`` as Data Cloud draws the range, from what a SOQL range query
    returned. SOQL compares text in the org's collation (case-insensitive, locale-specific
    casing), which need not order keys as Data Cloud does, so near a boundary a record can
    come back in the neighbouring range. Records outside ``r`` are dropped unless Data Cloud
    has no such key at all (then they stay, to be reported as unexpected here); the
    ``expected`` keys (Data Cloud's, minus the quarantined) that Core did not return are
    looked up by key (up to ``verify_at_most``; ``unverified`` counts the rest, which stay
    missing), so below that cap a record is never reported missing only because the org's
    SOQL put it next door."""
    inside = in_range(core.column(key), r, fold)
    mine, strays = core.filter(inside), core.filter(pc.invert(inside))
    kept = [mine]
    if strays.num_rows:
        stray_keys = folded(strays.column(key), fold)
        present = in_datacloud(pc.unique(stray_keys.drop_null()).to_pylist())
        alien = pc.invert(pc.is_in(stray_keys, pa.array(sorted(present), pa.string())))
        kept.append(strays.filter(pc.fill_null(alien, True)))
    want = as_array(expected).drop_null()
    seen = folded(mine.column(key), fold)
    unseen = pc.unique(want.filter(pc.invert(pc.is_in(folded(want, fold),
                                                            value_set=seen)))).to_pylist()
    asked = unseen[:verify_at_most]  # as Data Cloud spells them: the org folds them its way
    found = read_keys(asked) if asked else core.schema.empty_table()
    if found.num_rows:
        kept.append(found.select(core.column_names).cast(core.schema))
    records = pa.concat_tables(kept)
    return SettledRange(records, strays.num_rows, len(asked), found.num_rows,
                        len(unseen) - len(asked), unseen[verify_at_most:])
