"""The Data Cloud objects the syncs read, as observable source assets (``datacloud/<object>``):
one partition per source range (the partitions of the sync that reads them), each with a data
version that changes when the range's row count or latest last-modified value changes.

The ``source_changes`` sensor (``automation.py``) observes them from the daemon; an operator
can also observe them from the UI. A new data version of a range is what makes declarative
automation request that range's partition of the sync (``conditions.py``).
"""

import hashlib

import dagster as dg

from ..salesforce.errors import SalesforceError
from ..sync.plan import KeyRange, PartitionPlan
from ..sync.spec import SyncSet, SyncSpec
from .resources import DataCloudResource

UNWATCHED = "unwatched"  # the data version of a sync without a last-modified column


def source_key(spec: SyncSpec) -> dg.AssetKey:
    """The Data Cloud object a sync reads, as the upstream asset of its Core object."""
    return dg.AssetKey(["datacloud", spec.source])


def source_owner(syncs: SyncSet, spec: SyncSpec) -> SyncSpec:
    """The sync whose partitions and last-modified column ``datacloud/<object>`` takes, of
    those reading ``spec``'s object: the first by name that has a last-modified column."""
    readers = [s for s in syncs.syncs.values() if s.source == spec.source]
    return min(readers, key=lambda s: (s.modified is None, s.name))


def range_state(datacloud: DataCloudResource, spec: SyncSpec, r: KeyRange
                ) -> tuple[str, dict[str, int | str]]:
    """(data version, what it is made of) of one source range: a digest of its row count and
    latest last-modified value. Raises ``SalesforceError`` for a range it cannot read."""
    if not spec.modified:
        return UNWATCHED, {}
    count, latest = datacloud.range_stats(spec.source, spec.source_key, r.start, r.end,
                                          spec.modified, spec.folds_key)
    stamp = latest.isoformat() if latest else ""
    version = hashlib.sha256(f"{count}|{stamp}".encode()).hexdigest()[:16]
    return version, {"source_rows": count, "source_last_modified": stamp}


def source_asset(spec: SyncSpec, plan: PartitionPlan, partitions: dg.PartitionsDefinition
                 ) -> dg.SourceAsset:
    """The Data Cloud object as an observable source asset, partitioned like its sync."""

    @dg.observable_source_asset(
        key=source_key(spec), partitions_def=partitions, group_name="datacloud",
        tags={"dagster/kind/salesforce": ""},
        description=f"The Data Cloud object {spec.source}, partitioned by {spec.source_key} "
                    f"ranges like sync {spec.name}; each partition's data version follows "
                    f"the range's row count and latest {spec.modified or '(not watched)'}.")
    def observe(context: dg.AssetExecutionContext, datacloud: DataCloudResource
                ) -> dg.DataVersionsByPartition:
        versions = {}
        for r in plan.ranges:
            try:
                versions[r.key] = range_state(datacloud, spec, r)[0]
            except SalesforceError as exc:  # reported; the other ranges are still observed
                context.log.warning(f"cannot observe {spec.source} {r.label}: {exc}")
        return dg.DataVersionsByPartition(versions)

    return observe
