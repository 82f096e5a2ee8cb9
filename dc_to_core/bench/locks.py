"""``dc-to-core bench-locks``: lock-safe ordering with two locking parents.

An Allocation__c has two master-detail parents, its Account and its Warehouse, and the org
locks both while it writes the row. For each Account-Warehouse graph (``structured``: clusters
of accounts sharing the cluster's own warehouses; ``random``: any account, any warehouse) the
data is seeded once, with the parents written straight into Core; then each ordering runs one
night of dc_to_core on a fresh emulator of that data, through the benchmark's own dc_to_core
strategy (``run.run_strategy``: its plans, automation, run workers and profile), with a defs
folder of its own holding only the Allocation sync:

- **plan**: both lookups declared ``locks_parent: true``, so prepare groups rows by the
  connected components of their parents (``sync.lockplan``);
- **one parent**: only the Account declared locking, the Warehouse a plain lookup, so rows
  are grouped by Account alone (the org still locks both).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from ..emulator import load_profile
from ..emulator.seed import SeedSpec
from ..progress import progress
from .org import SeededOrg
from .report import StrategyResult, write
from .run import IN_PROCESS, BenchConfig, _overrides, run_strategy

Graph = Literal["structured", "random"]
GRAPHS: tuple[Graph, ...] = ("structured", "random")
ORDERINGS = {"plan": True, "one parent": False}  # is the Warehouse lookup declared locking
TARGET = "Allocation__c"


def allocation_sync(warehouse_locks: bool) -> dict:
    """The Allocation sync's attributes: both parents already in Core, the Account locking,
    the Warehouse locking with ``warehouse_locks``."""
    return {"name": "Allocation", "source": "Allocation_Staging__dlm", "target": TARGET,
            "key": {"source": "ExternalId__c", "target": "External_Id__c"},
            "lookups": {
                "Account__r.External_Id__c": {"source": "AccountExternalId__c",
                                              "locks_parent": True},
                "Warehouse__r.External_Id__c": {"source": "WarehouseExternalId__c",
                                                "locks_parent": warehouse_locks}},
            "modified": "LastModifiedDate__c",
            "fields": {"Name": "Name__c",
                       "Quantity__c": {"source": "Quantity__c", "type": "number"}}}


@dataclass
class LocksConfig:
    """What ``bench-locks`` seeds and how it loads it."""

    rows: int = 200_000
    accounts: int | None = None            # default: rows / 100
    cluster_accounts: int = 10             # structured: accounts sharing their warehouses
    warehouses_per_account: int = 3        # ... which each account's rows spread over
    rows_per_partition: int | None = None  # default: rows / 4
    profile: str = "default"
    overrides: tuple[str, ...] = ()        # profile KEY=VALUE
    busy_time_scale: float | None = 2.0    # the org's clock (see the README)
    graphs: tuple[Graph, ...] = GRAPHS
    out: Path = Path("results/two_locking_parents")
    work: Path | None = None

    @property
    def account_count(self) -> int:
        return self.accounts or max(1, self.rows // 100)

    @property
    def partition_rows(self) -> int:
        return self.rows_per_partition or max(1, -(-self.rows // 4))

    def seed_spec(self, graph: Graph) -> SeedSpec:
        """The allocations of ``graph`` under parents already in Core; nothing else."""
        return SeedSpec(accounts=self.account_count, opportunities=0, contacts_per_account=0,
                        hierarchy_share=0.0, allocations=self.rows, allocation_graph=graph,
                        cluster_accounts=self.cluster_accounts,
                        warehouses_per_account=self.warehouses_per_account, core_parents=True)


def write_defs(folder: Path, warehouse_locks: bool) -> Path:
    """A defs package holding the Allocation sync and the project's automation component."""
    components = {"allocation": ("SalesforceSync", allocation_sync(warehouse_locks)),
                  "automation": ("SyncAutomation", {})}
    for name, (kind, attributes) in components.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "defs.yaml").write_text(yaml.safe_dump(
            {"type": f"dc_to_core.{kind}", "attributes": attributes}, sort_keys=False))
    (folder / "__init__.py").write_text("")
    return folder


def run_locks(cfg: LocksConfig, echo: Callable[[str], None] = print) -> dict[str, Path]:
    """Every graph, seeded once, loaded once per ordering; bench.json and bench.md in
    ``cfg.out``."""
    work = cfg.work or Path(tempfile.mkdtemp(prefix="dc_to_core_locks_"))
    results = [r for graph in cfg.graphs for r in _graph(cfg, graph, work / graph, echo)]
    p = load_profile(cfg.profile, **_overrides(cfg.overrides))
    meta = {"rows": cfg.rows, "accounts": cfg.account_count,
            "cluster_accounts": cfg.cluster_accounts,
            "warehouses_per_account": cfg.warehouses_per_account,
            "rows_per_partition": cfg.partition_rows, "profile": cfg.profile,
            "time_scale": results[0].extra["time_scale"] if results else p.time_scale,
            "workers": p.workers, "chunk_rows": p.chunk_rows, "txn_rows": p.txn_rows,
            "lock_timeout_s": p.lock_timeout_s, "row_ms": p.row_ms,
            "profile_values": p.model_dump()}
    return write(results, meta, cfg.out, table=markdown, draw=None)


def _graph(cfg: LocksConfig, graph: Graph, work: Path,
           echo: Callable[[str], None]) -> list[StrategyResult]:
    """One graph seeded, then one night per ordering on a fresh emulator of it."""
    spec = cfg.seed_spec(graph)
    started = time.perf_counter()
    with progress(f"seeding {graph} allocations", spec.rows, "rows") as bar:
        seeded = SeededOrg.seed(work / "org", spec, bar.update)
    report = seeded.report
    shape = {"graph": graph, "components": report.allocation_components,
             "largest_component_rows": report.largest_component_rows}
    echo(f"seeded {cfg.rows:,} {graph} allocations over {spec.accounts:,} accounts and "
         f"{report.core.warehouses:,} warehouses: {report.allocation_components:,} "
         f"components, the largest {report.largest_component_rows:,} rows "
         f"({time.perf_counter() - started:.1f} s)")
    results = []
    for ordering, warehouse_locks in ORDERINGS.items():
        slug = ordering.replace(" ", "_")
        bench = BenchConfig(rows=cfg.rows, accounts=spec.accounts, profile=cfg.profile,
                            rows_per_partition=cfg.partition_rows, overrides=cfg.overrides,
                            busy_time_scale=cfg.busy_time_scale, target=TARGET,
                            defs=write_defs(work / slug / f"defs_{slug}", warehouse_locks))
        echo(f"running {graph}, {ordering} ...")
        r = run_strategy(IN_PROCESS, seeded, bench, work / slug, echo)
        r = dataclasses.replace(r, name=f"{graph}, {ordering}", description=(
            "both parents declared locking" if warehouse_locks else
            "only the Account declared locking"), extra={**r.extra, **shape,
                                                         "ordering": ordering})
        echo(f"  {r.name}: {r.loaded:,}/{r.rows:,} loaded, {r.quarantined:,} quarantined, "
             f"UNABLE_TO_LOCK_ROW {r.extra.get('rows_lock_failed_first_round', 0):,} first "
             f"round, {r.extra.get('rows_lock_failed', 0):,} in all rounds, "
             f"{r.emulated_s / 60:.1f} emulated min")
        results.append(r)
    return results


def markdown(results: list[dict], meta: dict) -> str:
    """The table of every run, and the parameters under it."""
    head = ("| graph | ordering | rows | loaded | quarantined | lost | UNABLE_TO_LOCK_ROW "
            "first round | UNABLE_TO_LOCK_ROW all rounds | re-pass rounds | org lock timeouts "
            "| lock wait (worker-s) | emulated | org busy | failed runs / checks | components "
            "| largest component (rows) |")
    lines = [head, "|" + "---|" * 16]
    for r in results:
        x = r["extra"]
        lines.append(
            f"| {x['graph']} | {x['ordering']} | {r['rows']:,} | {r['loaded']:,} | "
            f"{r['quarantined']:,} | {r['lost']:,} | "
            f"{x.get('rows_lock_failed_first_round', 0):,} | {x.get('rows_lock_failed', 0):,} "
            f"| {x.get('repass_rounds', 0)} | {r['lock_timeouts']:,} | "
            f"{x.get('lock_wait_s', 0):,.0f} | {r['emulated_s'] / 60:.1f} min | "
            f"{x.get('org_utilization', 0) * 100:.0f} % | "
            f"{x.get('failed_runs', 0)} / {x.get('failed_error_checks', 0)} | "
            f"{x['components']:,} | {x['largest_component_rows']:,} |")
    lines += ["", f"{meta['rows']:,} allocations over {meta['accounts']:,} accounts (structured: "
              f"clusters of {meta['cluster_accounts']} accounts sharing the cluster's "
              f"{meta['warehouses_per_account']} warehouses; random: each account "
              f"{meta['warehouses_per_account']} warehouses of all), partitions of "
              f"{meta['rows_per_partition']:,} rows; org profile `{meta['profile']}` (time "
              f"scale {meta['time_scale']:g}, {meta['workers']} workers, {meta['chunk_rows']:,}"
              f"-row chunks of {meta['txn_rows']}-row transactions, lock timeout "
              f"{meta['lock_timeout_s']:g} s, {meta['row_ms']:g} ms per row). Checks: the "
              "ERROR checks; components: of the whole data set's Account-Warehouse graph."]
    return "\n".join(lines) + "\n"
