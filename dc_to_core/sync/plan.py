"""Partition plans: each sync's external id space cut into ordered ``[start, end)`` ranges.

For an external id Salesforce matches ignoring case (the default), the ranges cut the
lower-cased key space, so ``OPP-X`` and ``opp-x`` always fall in one partition.

The first range is open below (and takes rows whose key is NULL, so they are quarantined
rather than lost), the last open above, and each range starts where the previous one ends, so
every row falls in exactly one partition. ``dc-to-core plan SYNC --partitions N`` computes the
boundaries from Data Cloud quantiles and writes ``<plans dir>/<sync>.yaml``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from .spec import CONFIG_DIR, SyncSpec

if TYPE_CHECKING:
    from ..salesforce.datacloud import DataCloud

DEFAULT_PLANS = CONFIG_DIR / "plans"


class PlanError(ValueError):
    """A plan file whose ranges overlap, leave a gap, or cannot be read."""


@dataclass(frozen=True)
class KeyRange:
    key: str                 # partition key, e.g. p03
    start: str | None        # inclusive; None = open below (NULL keys too)
    end: str | None          # exclusive; None = open above

    @property
    def label(self) -> str:
        return f"[{self.start if self.start is not None else '-inf'}, " \
               f"{self.end if self.end is not None else '+inf'})"


@dataclass(frozen=True)
class PartitionPlan:
    sync: str
    ranges: tuple[KeyRange, ...]
    source_rows: int | None = None
    computed_at: str | None = None

    @property
    def keys(self) -> list[str]:
        return [r.key for r in self.ranges]

    def range(self, key: str) -> KeyRange:
        for r in self.ranges:
            if r.key == key:
                return r
        raise KeyError(f"sync {self.sync!r} has no partition {key!r} (plan: {self.keys})")


def partition_keys(n: int) -> list[str]:
    width = max(2, len(str(n - 1)))
    return [f"p{i:0{width}d}" for i in range(n)]


def plan_from_boundaries(sync: str, boundaries: list[str], source_rows: int | None = None
                         ) -> PartitionPlan:
    edges: list[str | None] = [None, *boundaries, None]
    keys = partition_keys(len(edges) - 1)
    ranges = tuple(KeyRange(k, edges[i], edges[i + 1]) for i, k in enumerate(keys))
    plan = PartitionPlan(sync, ranges, source_rows,
                         dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    validate(plan, f"plan for {sync}")
    return plan


def validate(plan: PartitionPlan, where: str) -> None:
    """Ranges must be ordered, contiguous and cover the whole key space."""
    rs = plan.ranges
    if not rs:
        raise PlanError(f"{where}: no partitions")
    if rs[0].start is not None:
        raise PlanError(f"{where}: the first range ({rs[0].key}) must start open (start: null); "
                        f"keys below {rs[0].start!r} would belong to no partition")
    if rs[-1].end is not None:
        raise PlanError(f"{where}: the last range ({rs[-1].key}) must end open (end: null); "
                        f"keys from {rs[-1].end!r} on would belong to no partition")
    seen = set()
    for prev, cur in itertools.pairwise(rs):
        if prev.end is None:
            raise PlanError(f"{where}: {prev.key} ends open but {cur.key} follows it")
        if cur.start != prev.end:
            problem = "gap" if cur.start is None or cur.start > prev.end else "overlap"
            raise PlanError(f"{where}: {problem} between {prev.key} {prev.label} and "
                            f"{cur.key} {cur.label}: each range must start where the previous "
                            "ends")
    for r in rs:
        if r.key in seen:
            raise PlanError(f"{where}: partition key {r.key!r} is used twice")
        seen.add(r.key)
        if r.start is not None and r.end is not None and not r.start < r.end:
            raise PlanError(f"{where}: {r.key} {r.label} is empty or reversed")


_OVERRIDE: list[Path] = []


def plans_dir() -> Path:
    """Where plan files are read: ``plans_from`` in this process, else ``DC_TO_CORE_PLANS``,
    else the shipped folder."""
    if _OVERRIDE:
        return _OVERRIDE[-1]
    return Path(os.environ.get("DC_TO_CORE_PLANS") or DEFAULT_PLANS)


@contextmanager
def plans_from(directory: Path | None) -> Iterator[None]:
    """Read plans from ``directory`` while definitions are built in this process (the demo,
    the benchmark, tests); None changes nothing."""
    if directory is not None:
        _OVERRIDE.append(Path(directory))
    try:
        yield
    finally:
        if directory is not None:
            _OVERRIDE.pop()


def load_plan(spec: SyncSpec, directory: Path | None = None) -> PartitionPlan:
    """The plan file of a sync (a hierarchy pass uses its sync's); one partition covering
    everything if there is none."""
    name = spec.hierarchy_of or spec.name
    path = (directory or plans_dir()) / f"{name}.yaml"
    if not path.exists():
        return PartitionPlan(name, (KeyRange("p00", None, None),))
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        ranges = tuple(KeyRange(str(r["key"]), r.get("start"), r.get("end"))
                       for r in doc["partitions"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise PlanError(f"{path}: cannot read the plan ({type(exc).__name__}: {exc}); expected "
                        "partitions: [{key, start, end}, ...]") from None
    if doc.get("sync", name) != name:
        raise PlanError(f"{path}: written for sync {doc.get('sync')!r}, not {name!r}")
    if spec.folds_key:  # ranges cut the folded key space: OPP-X and opp-x fall together
        ranges = tuple(KeyRange(r.key, _fold(r.start), _fold(r.end)) for r in ranges)
    plan = PartitionPlan(name, ranges, doc.get("source_rows"), doc.get("computed_at"))
    try:
        validate(plan, str(path))
    except PlanError as exc:
        if not spec.folds_key:
            raise
        raise PlanError(f"{exc}. {spec.target}.{spec.target_key} ignores case, so the "
                        "boundaries are compared in lower case; re-plan with dc-to-core plan "
                        f"{spec.name}") from None
    return plan


def _fold(bound: str | None) -> str | None:
    """A boundary as the pipeline folds keys (Arrow's ``utf8_lower``)."""
    return None if bound is None else pc.utf8_lower(pa.scalar(bound)).as_py()


def save_plan(plan: PartitionPlan, directory: Path | None = None) -> Path:
    directory = directory or plans_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{plan.sync}.yaml"
    doc = {"sync": plan.sync, "computed_at": plan.computed_at, "source_rows": plan.source_rows,
           "partitions": [{"key": r.key, "start": r.start, "end": r.end} for r in plan.ranges]}
    path.write_text("# Written by dc-to-core plan; ranges are [start, end) of the external id.\n"
                    + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def compute_plan(datacloud: DataCloud, spec: SyncSpec, partitions: int
                 ) -> PartitionPlan:
    """Boundaries at Data Cloud quantiles of the external id (folded unless it is
    case-sensitive): near-equal partitions."""
    boundaries = datacloud.quantiles(spec.source, spec.source_key, partitions, spec.folds_key)
    rows = datacloud.count_range(spec.source, spec.source_key, None, None)
    return plan_from_boundaries(spec.name, boundaries, rows)
