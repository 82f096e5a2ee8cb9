"""Connector micro-benchmark: client rows/s and CPU seconds per million rows for
(1) Data Cloud read → Arrow and (2) Arrow → CSV → upload → results → per-row outcomes,
against an emulator in a child process (so its CPU is not counted as the client's).

    python -m dc_to_core.bench.connectors --rows 1000000 [--api v2] [--gzip 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from ..emulator.schema import load_schema
from ..emulator.seed import SeedSpec, seed_datacloud
from ..emulator.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, spawn_emulator
from ..emulator.storage import Storage
from ..salesforce.auth import SalesforceAuth
from ..salesforce.bulk import BulkApi
from ..salesforce.bulk_csv import split_jobs
from ..salesforce.datacloud import DataCloud

T = TypeVar("T")
OPP = "Opportunity_Staging__dlm"


def measure(label: str, rows: int, fn: Callable[[], T], report: dict) -> T:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    report[label] = {"rows": rows, "wall_s": round(wall, 2), "rows_per_s": round(rows / wall),
                     "cpu_s": round(cpu, 2), "cpu_s_per_million": round(cpu / rows * 1e6, 2)}
    print(f"{label:34s} {rows:>9,} rows {wall:7.2f} s wall {rows / wall:>10,.0f} rows/s "
          f"{cpu:6.2f} s CPU = {cpu / rows * 1e6:5.2f} s CPU per million rows")
    return result


def opportunities(source: pa.Table) -> pa.Table:
    """The Bulk upload table (mapped columns, ordered by parent)."""
    table = pa.table({
        "External_Id__c": source.column("ExternalId__c"), "Name": source.column("Name__c"),
        "StageName": source.column("StageName__c"), "CloseDate": source.column("CloseDate__c"),
        "Amount": source.column("Amount__c"), "Probability": source.column("Probability__c"),
        "LeadSource": source.column("LeadSource__c"),
        "Account.External_Id__c": source.column("AccountExternalId__c")})
    return table.take(pc.sort_indices(table, [("Account.External_Id__c", "ascending")]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--api", choices=["query-sql", "v2"], default="query-sql")
    ap.add_argument("--gzip", type=int, default=1)
    ap.add_argument("--arrow-stream", action="store_true", help="v2 with Arrow IPC pages")
    ap.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = ap.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench_connectors_"))
    seed_datacloud(Storage(data_dir, load_schema()), SeedSpec(opportunities=args.rows))
    emulator = spawn_emulator(data_dir, "--profile", "default")
    report: dict = {"rows": args.rows, "api": args.api, "gzip": args.gzip,
                    "arrow_stream": args.arrow_stream}
    try:
        auth = SalesforceAuth(login_url=emulator.url, client_id=DEFAULT_CLIENT_ID,
                              client_secret=DEFAULT_CLIENT_SECRET, ca_bundle=emulator.ca_file)
        dc = DataCloud(auth=auth, api=args.api, arrow_stream=args.arrow_stream)
        bulk = BulkApi(auth=auth, gzip_level=args.gzip, poll_initial_s=0.05,
                               poll_max_s=0.5)
        columns = ["Name__c", "StageName__c", "CloseDate__c", "Amount__c", "Probability__c",
                   "LeadSource__c", "AccountExternalId__c"]
        source = measure("Data Cloud read -> Arrow", args.rows, lambda: pa.Table.from_batches(
            list(dc.read_range(OPP, columns, "ExternalId__c", None, None))), report)
        accounts = dc.query_table('SELECT "ExternalId__c", "Name__c" FROM "Account_Staging__dlm"')
        bulk.upsert("Account", "External_Id__c", accounts.rename_columns(
            ["External_Id__c", "Name"]))
        table = opportunities(source)
        measure("  of which Arrow -> CSV (split)", args.rows, lambda: list(split_jobs(table)),
                report)
        outcome = measure("Arrow -> CSV -> upload -> results", args.rows,
                          lambda: bulk.upsert("Opportunity", "External_Id__c", table), report)
        report["outcome"] = {"loaded": outcome.loaded, "failed": outcome.failed,
                             "unprocessed": outcome.unprocessed, "jobs": len(outcome.jobs)}
        total = sum(report[k]["cpu_s"] for k in ("Data Cloud read -> Arrow",
                                                 "Arrow -> CSV -> upload -> results"))
        report["client_cpu_s_per_million_whole_path"] = round(total / args.rows * 1e6, 2)
        print(f"whole path: {report['client_cpu_s_per_million_whole_path']} s client CPU per "
              f"million rows (target <= 10); outcome {report['outcome']}")
    finally:
        emulator.stop()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
