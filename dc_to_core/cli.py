"""``dc-to-core``: run the emulated org, seed it, run the demo, plan and preview syncs."""

from __future__ import annotations

import functools
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
import yaml

from .emulator.credentials import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

if TYPE_CHECKING:  # each command imports what it runs: the emulator's org model is heavy
    from .emulator.seed import SeedSpec

DATA_DIR = Path(".emulator")


def _overrides(pairs: tuple[str, ...]) -> dict:
    """``--set key=value`` pairs (values parsed as YAML; ``faults.x=…`` nests)."""
    out: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        target = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = yaml.safe_load(value)
    return out


def _seed_options(f: object, bad_share: float = 0.0) -> object:
    for option in reversed([
        click.option("--accounts", default=1000, show_default=True),
        click.option("--opportunities", default=200_000, show_default=True),
        click.option("--skew", type=click.Choice(["uniform", "zipf", "giant"]),
                     default="uniform", show_default=True),
        click.option("--giant-children", type=int, default=None,
                     help="Children of the giant parent (--skew giant)."),
        click.option("--bad-share", default=bad_share, show_default=True,
                     help="Share of opportunity rows that are bad, over every kind."),
        click.option("--seed", "seed_number", default=42, show_default=True),
        click.option("--users", type=click.IntRange(min=0), default=20, show_default=True,
                     help="User records written into Core (EMP-0001 …), the opportunities' "
                     "owners."),
        click.option("--hierarchy-share", type=click.FloatRange(0, 1), default=0.3,
                     show_default=True, help="Share of accounts with a parent account (at "
                     "most 3 levels)."),
        click.option("--contacts-per-account", type=click.IntRange(min=0), default=2,
                     show_default=True),
        click.option("--allocations", type=click.IntRange(min=0), default=0,
                     show_default=True, help="Allocation_Staging__dlm rows (two master-detail "
                     "parents: an account and one of its warehouses)."),
        click.option("--warehouses", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Warehouse__c records written into Core (0: as many as the "
                     "allocation graph needs)."),
        click.option("--allocation-graph", type=click.Choice(["structured", "random"]),
                     default="structured", show_default=True,
                     help="structured: clusters of accounts own their warehouses (one "
                     "component per cluster); random: any account, any warehouse."),
        click.option("--cluster-accounts", type=click.IntRange(min=1), default=5,
                     show_default=True, help="Accounts per cluster (structured)."),
        click.option("--warehouses-per-account", type=click.IntRange(min=1), default=3,
                     show_default=True),
        click.option("--core-parents", is_flag=True,
                     help="Also write the accounts straight into Core."),
    ]):
        f = option(f)  # type: ignore[operator]
    return f


def _spec(accounts: int, opportunities: int, skew: str, giant_children: int | None,
          bad_share: float, seed_number: int, **graph: object) -> SeedSpec:
    """The SeedSpec of the seed options (``graph``: the object graph's, by their names)."""
    from .emulator.seed import SeedSpec

    return SeedSpec(accounts, opportunities, skew, giant_children,  # type: ignore[arg-type]
                    bad_share=bad_share, seed=seed_number, **graph)  # type: ignore[arg-type]


@click.group()
def main() -> None:
    """Move Salesforce Data Cloud records into Core objects, with Dagster."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8443, show_default=True, help="0 picks a free port.")
@click.option("--http", "plain_http", is_flag=True, help="Serve plain HTTP instead of HTTPS.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=DATA_DIR, show_default=True)
@click.option("--profile", default="default", show_default=True,
              help="Profile name (default, fast) or a YAML/JSON file.")
@click.option("--set", "settings", multiple=True, help="Override a profile value: KEY=VALUE.")
@click.option("--schema", type=click.Path(exists=True, path_type=Path), default=None,
              help="Org schema YAML (default: the demo org).")
@click.option("--client-id", envvar="DC_TO_CORE_EMULATOR_CLIENT_ID", default=DEFAULT_CLIENT_ID,
              show_default=True)
@click.option("--client-secret", envvar="DC_TO_CORE_EMULATOR_CLIENT_SECRET",
              default=DEFAULT_CLIENT_SECRET, show_default=False,
              help="Connected app secret [env DC_TO_CORE_EMULATOR_CLIENT_SECRET].")
@click.option("--jwt-public-key", type=click.Path(exists=True, path_type=Path), default=None,
              help="PEM public key or certificate accepted for the JWT bearer flow.")
@click.option("--username", default="integration@dc-to-core.emulator", show_default=True)
@click.option("--ready-file", type=click.Path(path_type=Path), default=None, hidden=True)
def emulator(host: str, port: int, plain_http: bool, data_dir: Path, profile: str,
             settings: tuple[str, ...], schema: Path | None, client_id: str, client_secret: str,
             jwt_public_key: Path | None, username: str, ready_file: Path | None) -> None:
    """Serve an emulated Salesforce org (Core + Data Cloud) until interrupted."""
    from .emulator.profile import load_profile
    from .emulator.server import EmulatorConfig, EmulatorServer
    from .emulator.tokens import AppCredentials

    if host not in ("127.0.0.1", "localhost", "::1"):
        click.secho(f"warning: binding to {host} exposes the emulator beyond this machine",
                    fg="yellow", err=True)
    app = AppCredentials(client_id, client_secret, username,
                         jwt_public_key=jwt_public_key.read_bytes() if jwt_public_key else None)
    config = EmulatorConfig(data_dir, host, port, not plain_http,
                            load_profile(profile, **_overrides(settings)), app, schema)
    server = EmulatorServer(config).start()
    info = {"url": server.url, "ca_file": str(server.ca_file) if server.ca_file else None,
            "data_dir": str(data_dir.resolve()), "client_id": client_id, "pid": os.getpid()}
    if ready_file:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(ready_file)
    click.echo(f"emulated org serving at {server.url} (data dir {info['data_dir']})")
    if server.ca_file:
        click.echo(f"  CA certificate: {server.ca_file}")
    click.echo(f"  client id: {client_id}; secret from DC_TO_CORE_EMULATOR_CLIENT_SECRET")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        stop.wait(0.5)
    server.stop()


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=DATA_DIR, show_default=True)
@_seed_options
@click.option("--reset-core", "reset_core_flag", is_flag=True,
              help="Also empty the Core objects and jobs.")
def seed(data_dir: Path, reset_core_flag: bool, **options: object) -> None:
    """Generate demo data in the Data Cloud objects of an org's data dir, and the records
    someone else loaded in its Core (users, warehouses; with --core-parents the accounts)."""
    from .emulator.schema import load_schema
    from .emulator.seed import reset_core, seed_datacloud
    from .emulator.storage import Storage
    from .progress import progress

    storage = Storage(data_dir, load_schema())
    started = time.perf_counter()
    spec = _spec(**options)  # type: ignore[arg-type]
    with progress("seeding Data Cloud", spec.rows, "rows") as bar:
        try:
            report = seed_datacloud(storage, spec, bar.update)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    if reset_core_flag:
        reset_core(storage)
    summary = report.summary()
    click.echo(json.dumps(summary, indent=2))
    core = summary["core"]
    click.echo(f"Data Cloud: {report.accounts:,} accounts ({report.child_accounts:,} with a "
               f"parent), {report.contacts:,} contacts, {report.opportunities:,} "
               f"opportunities, {report.allocations:,} allocations; Core: {core['users']:,} "
               f"users, {core['warehouses']:,} warehouses, {core['accounts']:,} accounts")
    click.echo(f"seeded in {time.perf_counter() - started:.1f} s")


@main.command()
@functools.partial(_seed_options, bad_share=0.002)
@click.option("--partitions", default=4, show_default=True, help="Partitions per sync.")
@click.option("--keep", type=click.Path(path_type=Path), default=None,
              help="Work in this directory (org, plans, state, DAGSTER_HOME) and keep it.")
def demo(partitions: int, keep: Path | None, **options: object) -> None:
    """Load Data Cloud into Core on the embedded emulator: seed, plan, materialize every
    partition of every sync, and summarise."""
    from .demo import run_demo

    work = keep or Path(tempfile.mkdtemp(prefix="dc_to_core_demo_"))
    rows = run_demo(work, _spec(**options), partitions)  # type: ignore[arg-type]
    if any(r.error or r.checks_failed for r in rows):
        raise SystemExit(1)


@main.command()
@click.argument("sync", required=False)
@click.option("--partition", "-p", default=None, help="Only this partition (e.g. p03).")
def preview(sync: str | None, partition: str | None) -> None:
    """What tonight would do to SYNC (default: every sync), without doing it: a dry run of
    each partition (read, pre-flight, prepare, diff) that writes nothing to Core, the ledger
    or the sync state. Connects with the same DC_TO_CORE_* settings as the pipeline."""
    from .dry_run import run_preview
    from .sync.spec import load_syncs

    syncs = load_syncs()
    if sync is not None and sync not in syncs.syncs:
        raise click.BadParameter(f"no sync {sync!r}; the defs folder declares "
                                 f"{', '.join(syncs.syncs)}", param_hint="SYNC")
    names = [sync] if sync else [s.name for s in syncs.ordered()]
    rows = run_preview(names, partition)
    if any(r.error for r in rows):
        raise SystemExit(1)


@main.command()
@click.argument("sync")
@click.option("--partitions", "-n", default=8, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Plans directory (default: $DC_TO_CORE_PLANS or the shipped one).")
def plan(sync: str, partitions: int, out: Path | None) -> None:
    """Compute SYNC's partition boundaries from Data Cloud quantiles and write its plan file.
    Connects with the same DC_TO_CORE_* settings as the pipeline."""
    from .orchestration.resources import resources_from_env
    from .progress import progress
    from .sync.plan import compute_plan, plans_dir, save_plan
    from .sync.spec import load_syncs

    syncs = load_syncs()
    planned = {s.name: s for s in syncs.planned()}  # a hierarchy pass uses its sync's plan
    if sync not in planned:
        also = f" ({sync} uses {syncs.syncs[sync].hierarchy_of}'s plan)" if sync in \
            syncs.syncs else ""
        raise click.BadParameter(f"no sync {sync!r}{also}; the defs folder declares "
                                 f"{', '.join(planned)}", param_hint="SYNC")
    live = resources_from_env(resolve=True)
    with progress(f"planning {sync} from Data Cloud quantiles"):
        result = compute_plan(live["datacloud"], syncs.syncs[sync],  # type: ignore[arg-type]
                              partitions)
    path = save_plan(result, out or plans_dir())
    click.echo(f"{path}: {len(result.ranges)} partitions over {result.source_rows:,} rows")
    for r in result.ranges:
        click.echo(f"  {r.key}  {r.label}")


@main.command()
@click.option("--rows", default="2000000", show_default=True,
              help="Opportunities to seed; several sizes (500000,2000000,8000000) make a "
              "scale series: each size on a fresh org in OUT/rows_N, then series.md/.png.")
@click.option("--accounts", default=1000, show_default=True)
@click.option("--rows-per-partition", type=int, default=None,
              help="dc_to_core's partition size (plans are computed from Data Cloud); "
              "default: the README's recommendation, 250,000 whatever the number of rows.")
@click.option("--only", multiple=True, help="Run only these strategies (repeatable): "
              "ceiling, dc_to_core (as deployed: dagster-daemon, PostgreSQL), 'dc_to_core "
              "in-process' (not by default), 'seed Test3', 'seed Test4', 'seed Test7', "
              "'seed Test8', "
              "'plain script', 'dc_to_core incremental' (a first night, a day of changes, "
              "the next night measured).")
@click.option("--set", "settings", multiple=True,
              help="Override an org profile value for every strategy: KEY=VALUE.")
@click.option("--next-night/--no-next-night", default=True, show_default=True,
              help="After the incremental strategy's measured night, run the night after "
              "too (it sends back the records the checks found edited in Core).")
@click.option("--bad-share", default=0.0, show_default=True,
              help="Seed this share of rows bad (over the seed's kinds): dc_to_core reports "
              "how many it caught before upload and how many the org refused.")
@click.option("--busy-time-scale", default=1.0, show_default=True,
              help="Clock of the strategies whose client never waits (ceiling, dc_to_core, "
              "plain script): on a faster clock each second of their client's work would "
              "count as that many seconds of org time. 0: the profile's clock.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True, help="Where bench.json, bench.md and bench.png go.")
@click.option("--work", type=click.Path(path_type=Path), default=None,
              help="Keep the org and the runs here (default: a temporary directory).")
def bench(rows: str, accounts: int, rows_per_partition: int | None, only: tuple[str, ...],
          next_night: bool, bad_share: float,
          settings: tuple[str, ...], busy_time_scale: float, out: Path, work: Path | None
          ) -> None:
    """Measure the org's ceiling, dc_to_core, the seed strategies and a plain script on one
    freshly seeded emulated org, and write JSON, a Markdown table and charts."""
    from .bench.run import ALL, OPTIONAL, PARTITION_ROWS, BenchConfig, run_bench
    from .bench.series import write_series

    unknown = [o for o in only if o not in ALL + OPTIONAL]
    if unknown:
        raise click.BadParameter(f"unknown strategy {unknown[0]!r}; known: "
                                 f"{', '.join(ALL + OPTIONAL)}", param_hint="--only")
    try:
        sizes = [int(n.replace("_", "")) for n in rows.split(",") if n.strip()]
    except ValueError:
        raise click.BadParameter(f"{rows!r} is not a number of rows or a comma-separated "
                                 f"list of them", param_hint="--rows") from None
    done: list[tuple[int, Path]] = []
    for n in sizes:
        where = out / f"rows_{n}" if len(sizes) > 1 else out
        paths = run_bench(BenchConfig(rows=n, accounts=accounts,
                                      rows_per_partition=rows_per_partition
                                      or PARTITION_ROWS, bad_share=bad_share,
                                      strategies=only or tuple(ALL), overrides=settings,
                                      busy_time_scale=busy_time_scale or None, out=where,
                                      work=work / f"rows_{n}" if work else None,
                                      next_night=next_night),
                          echo=click.echo)
        click.echo(paths["markdown"].read_text())
        click.echo("written: " + ", ".join(str(p) for p in paths.values()))
        done.append((n, paths["json"]))
    if len(done) > 1:
        series = write_series(done, out)
        click.echo(series["markdown"].read_text())
        click.echo("written: " + ", ".join(str(p) for p in series.values()))


@main.command("bench-locks")
@click.option("--rows", default=200_000, show_default=True, help="Allocations to seed.")
@click.option("--accounts", type=click.IntRange(min=1), default=None,
              help="Accounts (default: rows / 100).")
@click.option("--cluster-accounts", type=click.IntRange(min=1), default=10,
              show_default=True, help="Structured graph: accounts sharing their warehouses.")
@click.option("--warehouses-per-account", type=click.IntRange(min=1), default=3,
              show_default=True, help="Warehouses each account's allocations spread over.")
@click.option("--rows-per-partition", type=click.IntRange(min=1), default=None,
              help="dc_to_core's partition size (default: rows / 4).")
@click.option("--graph", "graphs", multiple=True, type=click.Choice(["structured", "random"]),
              help="Only this Account-Warehouse graph (repeatable; default: both).")
@click.option("--set", "settings", multiple=True,
              help="Override an org profile value for every run: KEY=VALUE.")
@click.option("--busy-time-scale", default=2.0, show_default=True,
              help="The org's clock, emulated seconds per wall second: 1 is real time, as "
              "bench runs dc_to_core; 2 counts the client's own work double but halves the "
              "wait. 0: the profile's clock.")
@click.option("--out", type=click.Path(path_type=Path),
              default=Path("results/two_locking_parents"), show_default=True,
              help="Where bench.json and bench.md go.")
@click.option("--work", type=click.Path(path_type=Path), default=None,
              help="Keep the orgs and the runs here (default: a temporary directory).")
def bench_locks(rows: int, accounts: int | None, cluster_accounts: int,
                warehouses_per_account: int, rows_per_partition: int | None,
                graphs: tuple[str, ...], settings: tuple[str, ...], busy_time_scale: float,
                out: Path, work: Path | None) -> None:
    """Measure lock-safe ordering with two locking parents: allocations under an Account and
    a Warehouse (the org locks both), loaded by dc_to_core with both lookups declared
    locking (the plan) and with the Account alone, on a structured and a random graph."""
    from .bench.locks import GRAPHS, LocksConfig, run_locks

    paths = run_locks(LocksConfig(
        rows=rows, accounts=accounts, cluster_accounts=cluster_accounts,
        warehouses_per_account=warehouses_per_account, rows_per_partition=rows_per_partition,
        overrides=settings, busy_time_scale=busy_time_scale or None,
        graphs=tuple(graphs) or GRAPHS, out=out, work=work), echo=click.echo)  # type: ignore[arg-type]
    click.echo(paths["markdown"].read_text())
    click.echo("written: " + ", ".join(str(p) for p in paths.values()))

if __name__ == "__main__":
    main()
