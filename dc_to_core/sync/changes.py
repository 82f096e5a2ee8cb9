"""What a night must send: tonight's prepared rows against the sync state, vectorised.

Each prepared row gets a hash of its mapped values in the canonical form ``fields_match``
compares (``row_hashes``). Against the state of its range (``sync.state``), a row is

- **unchanged**: Core holds it with the same hash — not sent;
- **still refused**: the org refused it for its content and its source is the same — not
  sent, quarantined again with the org's code;
- **sent**: new, changed, or marked ``retry`` — its last error can heal without a source
  change (a lock, an unprocessed row, a parent not found yet), or the checks found it missing
  from Core or different there (counted as drifted), or it was on its way to the org when a
  run stopped — counted as retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..salesforce.bulk import BulkApi
from ..salesforce.bulk_results import LOADED as ROW_LOADED
from ..salesforce.errors import ConfigurationError, SalesforceApiError
from .hierarchy import heal_in_order
from .keys import as_array, folded, in_range, read_keys
from .plan import KeyRange
from .prepare import HASH, ROW
from .reconcile import canonical, text_of
from .spec import SyncSpec
from .state import DRIFTED, LOADED, REFUSED, RETRY, state_rows

# what the org refuses for the row's own content: not sent again while the row is the same;
# any other failure (locks, unprocessed rows, a parent not found yet, an unknown error, a
# trigger's exception) can heal by itself and is sent again next run
REFUSED_CODES = (
    "STRING_TOO_LONG", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "REQUIRED_FIELD_MISSING",
    "INVALID_FIELD", "FIELD_INTEGRITY_EXCEPTION", "NUMBER_OUTSIDE_VALID_RANGE",
    "DUPLICATE_VALUE", "DUPLICATE_EXTERNAL_ID", "MISSING_ARGUMENT", "MALFORMED_ID",
    "INVALID_TYPE_ON_FIELD_IN_RECORD", "INVALID_EMAIL_ADDRESS", "INVALID_FIELD_FOR_INSERT_UPDATE",
    "FIELD_CUSTOM_VALIDATION_EXCEPTION")


def row_hashes(spec: SyncSpec, ready: pa.Table, like: pa.Schema | None = None,
               names: list[str] | None = None) -> pa.Array:
    """A stable 64-bit hash per row of the values a sync writes (every target column but the
    key, or ``names``), in canonical form: the same row hashes the same from any run, and
    Core's text read back (``like``: the prepared rows' schema, for the types) hashes as the
    row it holds."""
    names = spec.target_columns[1:] if names is None else names
    types = like or ready.schema
    text = [pc.fill_null(text_of(canonical(ready.column(c).combine_chunks(),
                                           types.field(c).type)), "\u2205")
            for c in names]
    joined = pc.binary_join_element_wise(*text, "\x1f") if text else pa.array(
        [""] * ready.num_rows)
    values = np.asarray(joined.to_numpy(zero_copy_only=False), dtype=object)
    hashed = pd.util.hash_array(values, categorize=False) if len(values) else np.array(
        [], np.uint64)
    return pa.array(hashed.view(np.int64), pa.int64())


@dataclass
class Changes:
    send: pa.Table        # rows to load, in the prepared order, with their HASH
    unchanged: pa.Table   # rows Core holds as they are (prepared columns)
    refused: pa.Table     # rows the org refused whose source is the same, with error_code
    retried: int          # rows sent again because the state marked them retry
    to_mark: list[str]    # keys of rows to send that the state records as loaded or refused:
                          # marked retry before they go (a crash must not leave their old hash)
    drifted: int = 0      # rows sent again because the checks found them drifted in Core
    new: int = 0          # rows to send whose key the state does not know (to be created)
    missing: pa.Table | None = None  # update-only: rows whose record Core does not hold

    @property
    def unchanged_rows(self) -> int:
        return self.unchanged.num_rows


def changes(spec: SyncSpec, ready: pa.Table, state: pa.Table, full_refresh: bool = False
            ) -> Changes:
    """Split the prepared rows by what the state says Core holds (see the module doc)."""
    hashes = row_hashes(spec, ready)
    ready = ready.append_column(HASH, hashes)
    keys = folded(ready.column(spec.target_key), spec.folds_key)
    at = pc.index_in(keys, value_set=state.column("key"))
    known = pc.is_valid(at)
    was = state.take(at)  # a null row where the key is unknown
    status = was.column("status")
    same = pc.fill_null(pc.equal(was.column("row_hash"), hashes), False)
    if full_refresh:  # everything goes; the state only says which rows to mark first
        same = pc.fill_null(pa.nulls(ready.num_rows, pa.bool_()), False)
    unchanged = pc.and_(same, pc.fill_null(pc.equal(status, LOADED), False))
    still_refused = pc.and_(same, pc.fill_null(pc.equal(status, REFUSED), False))
    retried = pc.fill_null(pc.equal(status, RETRY), False)
    drifted = pc.fill_null(pc.equal(status, DRIFTED), False)
    if spec.operation == "insert":  # a record Core holds is never touched again
        held = pc.fill_null(pc.is_in(status, value_set=pa.array([LOADED, DRIFTED])), False)
        unchanged = pc.or_(unchanged, held)
        drifted = pc.and_(drifted, pc.invert(held))
    send = pc.invert(pc.or_(unchanged, still_refused))
    mark = pc.and_(pc.and_(send, known), pc.invert(pc.or_(retried, drifted)))
    return Changes(ready.filter(send), ready.filter(unchanged).drop_columns([HASH]),
                   _refused(ready.filter(still_refused),
                            was.column("error_code").filter(still_refused)),
                   int(pc.sum(retried).as_py() or 0), keys.filter(mark).to_pylist(),
                   int(pc.sum(drifted).as_py() or 0),
                   int(pc.sum(pc.and_(send, pc.invert(known))).as_py() or 0))


def core_ids(spec: SyncSpec, bulk: BulkApi, c: Changes, held: pa.Table | None) -> pa.Table:
    """(key, sf_id) of the records Core holds among the keys an insert- or update-only sync
    is about to send: from ``held`` (the range read by an adoption) or looked up by key."""
    if held is not None:
        return held.select(["key", "sf_id"])
    keys = c.send.column(spec.target_key).to_pylist()
    fields = list(dict.fromkeys(["Id", spec.target_key]))
    core = bulk.read_keys(spec.target, fields, spec.target_key, keys) if keys else pa.table(
        {f: pa.array([], pa.string()) for f in fields})
    return pa.table({"key": folded(core.column(spec.target_key), spec.folds_key),
                     "sf_id": as_array(core.column("Id"))})


def against_core(spec: SyncSpec, c: Changes, core: pa.Table) -> tuple[Changes, pa.Table]:
    """What an insert- or update-only sync sends, given the records Core holds (``core``:
    ``core_ids``), and the state rows that establishes.

    - insert: a key Core holds is never sent (its record stays as it is: kept as unchanged
      and recorded as loaded, so later nights do not look it up again);
    - update: a key Core lacks is kept back as missing (quarantined; never created); the
      rest go with their Salesforce Id, as an update by Id, which the org refuses for a
      record deleted meanwhile."""
    keys = folded(c.send.column(spec.target_key), spec.folds_key)
    at = pc.index_in(keys, value_set=core.column("key"))
    there = pc.is_valid(at)
    ids = pc.take(core.column("sf_id"), at)
    none = state_rows(pa.array([], pa.string()), pa.array([], pa.string()),
                      pa.array([], pa.int64()), pa.array([], pa.string()),
                      pa.array([], pa.string()))
    if spec.operation == "insert":
        held = c.send.filter(there)
        recorded_rows = state_rows(keys.filter(there), ids.filter(there).cast(pa.string()),
                                   held.column(HASH).combine_chunks(),
                                   pa.array([LOADED] * held.num_rows, pa.string()),
                                   pa.nulls(held.num_rows, pa.string()))
        unchanged = pa.concat_tables([c.unchanged, held.drop_columns([HASH]).select(
            c.unchanged.column_names)]) if held.num_rows else c.unchanged
        return replace(c, send=c.send.filter(pc.invert(there)), unchanged=unchanged,
                       new=c.new - held.num_rows), recorded_rows
    send = c.send.filter(there)
    if spec.target_key.lower() != "id":
        send = send.append_column("Id", ids.filter(there).cast(pa.string()))
    missing = c.send.filter(pc.invert(there)).drop_columns([HASH])
    kept = set(keys.filter(there).to_pylist())
    return replace(c, send=send, missing=missing, to_mark=[k for k in c.to_mark if k in kept],
                   new=max(0, c.new - missing.num_rows)), none


def read_core_state(spec: SyncSpec, bulk: BulkApi, r: KeyRange, like: pa.Schema,
                    count: Callable[[str, str, str | None, str | None], int] | None = None
                    ) -> pa.Table:
    """``core_state`` of what Core holds in range ``r``: one Bulk query job, unless ``count``
    (``RestApi.count_range``: one REST call) finds the range empty, as on a first night into
    an empty org, where a query job would only add its seconds of polling before the load."""
    fields = ["Id", *spec.target_columns]
    try:
        if count is not None and count(spec.target, spec.target_key, r.start, r.end) == 0:
            return core_state(spec, pa.table({f: pa.array([], pa.string()) for f in fields}),
                              like)
        core = bulk.read_range(spec.target, fields, spec.target_key, r.start, r.end)
    except SalesforceApiError as exc:
        if exc.error_code == "INVALID_FIELD":  # before any Bulk job: the mapping is wrong
            raise ConfigurationError(f"{spec.target} has no field the sync maps ({exc}). "
                                     f"Check the field mapping of sync {spec.name!r}") from None
        raise
    return core_state(spec, core, like)


def core_state(spec: SyncSpec, core: pa.Table, like: pa.Schema) -> pa.Table:
    """State rows (``sync.state.SCHEMA``, all ``loaded``) of what a read of Core holds (its
    ``Id``, key and target columns as text): how a run adopts an org that already holds the
    data, so its first night sends only what differs."""
    keys = folded(core.column(spec.target_key), spec.folds_key)
    counts = pc.value_counts(keys.drop_null())
    twice = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    # a record without a key is nobody's; one Core holds twice (case variants of a key that
    # ignores case) is not adopted: it is sent, and the checks report the duplicate
    core = core.filter(pc.and_(pc.is_valid(keys), pc.invert(pc.is_in(keys, value_set=twice))))
    n = core.num_rows
    return state_rows(folded(core.column(spec.target_key), spec.folds_key),
                      as_array(core.column("Id")), row_hashes(spec, core, like),
                      pa.array([LOADED] * n, pa.string()), pa.nulls(n, pa.string()))


ORPHAN_HASH = 0  # a record only Core holds: no source row hashes to it


def adopted(spec: SyncSpec, held: pa.Table, c: Changes, source: pa.Table, r: KeyRange
            ) -> pa.Table:
    """What an adoption records (``held``: ``core_state`` of the range): the records that
    tonight's rows found unchanged, and — for a sync that mirrors deletes — the records of
    the range Data Cloud does not have, so the next run sees them gone and they go through
    the delete guards."""
    same = pc.is_in(held.column("key"), value_set=folded(c.unchanged.column(spec.target_key),
                                                          spec.folds_key))
    if not spec.mirrors_deletes:
        return held.filter(same)
    read = read_keys(source.column(spec.source_key), spec.folds_key)
    orphan = pc.and_(pc.invert(pc.is_in(held.column("key"), value_set=read)),
                     in_range(held.column("key"), r, spec.folds_key))
    orphans = held.filter(orphan)
    orphans = orphans.set_column(orphans.schema.get_field_index("row_hash"), "row_hash",
                                 pa.array([ORPHAN_HASH] * orphans.num_rows, pa.int64()))
    return pa.concat_tables([held.filter(same), orphans])


def _refused(rows: pa.Table, codes: pa.Array) -> pa.Table:
    return rows.drop_columns([HASH]).append_column("error_code", codes.cast(pa.string()))


MISSING = "NOT_IN_CORE"


def kept_rows(spec: SyncSpec, c: Changes) -> pa.Table:
    """The rows not sent, for the account of the partition: ROW, key, why, the org's code
    (``missing``: an update-only sync's rows whose record Core does not hold)."""
    key = spec.target_key
    missing = c.missing if c.missing is not None else c.unchanged.slice(0, 0)
    parts = [(c.unchanged, "unchanged", pa.nulls(c.unchanged.num_rows, pa.string())),
             (c.refused, "refused", c.refused.column("error_code").combine_chunks()),
             (missing, "missing", pa.array([MISSING] * missing.num_rows, pa.string()))]
    return pa.table({
        ROW: pa.concat_arrays([t.column(ROW).combine_chunks().cast(pa.int64())
                               for t, _, _ in parts]),
        "key": pa.concat_arrays([t.column(key).combine_chunks().cast(pa.string())
                                 for t, _, _ in parts]),
        "kind": pa.array([k for t, k, _ in parts for _ in range(t.num_rows)], pa.string()),
        "error_code": pa.concat_arrays([codes.cast(pa.string()) for _, _, codes in parts])})


def recorded(spec: SyncSpec, sent: pa.Table, outcome: pa.Table) -> pa.Table:
    """The state rows a load's results establish (``sent`` and ``outcome`` aligned): loaded
    rows with the Salesforce Id the org gave, failed ones as ``retry`` when their error can
    heal and ``refused`` when it cannot (with the code)."""
    loaded = pc.equal(outcome.column("status"), ROW_LOADED)
    codes = pc.coalesce(outcome.column("error_code"), pc.utf8_upper(outcome.column("status")))
    final = set(REFUSED_CODES) - set(heal_in_order(bool(spec.hierarchy_of)))
    refused = pc.is_in(codes, value_set=pa.array(sorted(final)))
    status = pc.if_else(loaded, LOADED, pc.if_else(refused, REFUSED, RETRY))
    none = pa.scalar(None, pa.string())
    return state_rows(folded(sent.column(spec.target_key), spec.folds_key),
                      pc.if_else(loaded, outcome.column("sf_id"), none).cast(pa.string()),
                      sent.column(HASH).combine_chunks(), status.cast(pa.string()),
                      pc.if_else(loaded, none, codes).cast(pa.string()))
