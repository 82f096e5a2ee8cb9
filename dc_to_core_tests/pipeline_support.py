"""A small emulator-backed project for pipeline tests: plans computed from its data,
definitions built with resources pointing at it, and helpers to run partitions."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import dagster as dg
import pyarrow.parquet as pq
import yaml

from dc_to_core.emulator import EmulatorServer
from dc_to_core.emulator.server import DEFAULT_CLIENT_SECRET
from dc_to_core.orchestration.project import build_definitions
from dc_to_core.orchestration.resources import resources_from_env
from dc_to_core.sync.plan import compute_plan, plan_from_boundaries, save_plan
from dc_to_core.sync.spec import SyncSet, load_syncs, parse_sync, sync_set


@dataclass
class Project:
    server: EmulatorServer
    root: Path
    env: dict[str, str]
    defs: dg.Definitions
    live: dict = field(default_factory=dict)   # resources usable outside a run
    defs_dir: Path | None = None               # the defs package its syncs come from

    def run_apart_command(self, sync: str, partition: str) -> list[str]:
        """The command that runs one partition in a process of its own (run_partition_main)."""
        return [sys.executable, "-m", "dc_to_core_tests.pipeline_support",
                str(self.root / "plans"), sync, partition, str(self.defs_dir or "")]

    def job(self, sync: str) -> dg.JobDefinition:
        return self.defs.resolve_job_def(f"load_{sync}")

    def partitions(self, sync: str) -> list[str]:
        return self.job(sync).partitions_def.get_partition_keys()

    def run(self, sync: str, partition: str, instance: dg.DagsterInstance
            ) -> dg.ExecuteInProcessResult:
        return self.job(sync).execute_in_process(partition_key=partition, instance=instance,
                                                 raise_on_error=False)

    def materialization(self, result: dg.ExecuteInProcessResult) -> dict:
        events = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
        assert len(events) == 1, [e.message for e in result.all_events if e.is_failure]
        return {k: v.value for k, v in
                events[0].event_specific_data.materialization.metadata.items()}

    def checks(self, result: dg.ExecuteInProcessResult) -> dict[str, bool]:
        return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


# The pipeline's mechanics are tested on one parent and one child (the shipped project adds
# Contacts, the owner and the hierarchy: test_demo, test_object_graph and the operator's
# tests run those).
ACCOUNT_AND_OPPORTUNITY = {
    "account": """
        name: Account
        source: Account_Staging__dlm
        target: Account
        key: {source: ExternalId__c, target: External_Id__c}
        modified: LastModifiedDate__c
        owners: ["team:salesforce-data"]
        fields:
          Name: Name__c
          Industry: Industry__c
          AnnualRevenue: {source: AnnualRevenue__c, type: number}
          NumberOfEmployees: {source: NumberOfEmployees__c, type: int}
    """,
    "opportunity": """
        name: Opportunity
        source: Opportunity_Staging__dlm
        target: Opportunity
        key: {source: ExternalId__c, target: External_Id__c}
        parent: {sync: Account, relationship: Account.External_Id__c,
                 source: AccountExternalId__c}
        modified: LastModifiedDate__c
        deletes: mirror
        owners: ["team:salesforce-data"]
        fields:
          Name: Name__c
          StageName: StageName__c
          CloseDate: {source: CloseDate__c, type: date}
          Amount: {source: Amount__c, type: number}
          Probability: {source: Probability__c, type: number}
          LeadSource: LeadSource__c
          Description: Description__c
    """}


def account_and_opportunity() -> SyncSet:
    """The two syncs of ACCOUNT_AND_OPPORTUNITY, as the sync logic sees them."""
    return sync_set([parse_sync(yaml.safe_load(textwrap.dedent(raw)), f"{folder}/defs.yaml")
                     for folder, raw in ACCOUNT_AND_OPPORTUNITY.items()])


def defs_package(root: Path, syncs: dict[str, str]) -> ModuleType:
    """A defs folder of its own (a package on sys.path) holding the given sync YAML
    (``{folder: attributes as YAML}``) and the project's automation component."""
    package = root / f"defs_{root.name}"
    for folder, attributes in {**syncs, "automation": "{}"}.items():
        (package / folder).mkdir(parents=True, exist_ok=True)
        kind = "SyncAutomation" if folder == "automation" else "SalesforceSync"
        body = textwrap.indent(textwrap.dedent(attributes).strip(), "  ")
        (package / folder / "defs.yaml").write_text(
            f"type: dc_to_core.{kind}\nattributes:\n{body}\n")
    (package / "__init__.py").write_text("")
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(package.name)
    finally:
        sys.path.remove(str(root))


def make_project(server: EmulatorServer, root: Path, partitions: int = 2,
                 defs_module: ModuleType | None = None,
                 boundaries: dict[str, list[str]] | None = None, **env: str) -> Project:
    """A project on ``server``: plans of ``partitions`` ranges at Data Cloud's quantiles (or
    at the given ``boundaries`` per sync), definitions built on them; its syncs are
    ``defs_module``'s, else ACCOUNT_AND_OPPORTUNITY."""
    if defs_module is None:
        defs_module = defs_package(root, ACCOUNT_AND_OPPORTUNITY)
    os.environ.setdefault("DC_TO_CORE_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
    settings = {"DC_TO_CORE_LOGIN_URL": server.url,
                "DC_TO_CORE_CA_BUNDLE": str(server.ca_file),
                "DC_TO_CORE_STATE_DIR": str(root / "state"),
                "DC_TO_CORE_TIME_SCALE": str(server.org.profile.time_scale), **env}
    live = resources_from_env({**settings, "DC_TO_CORE_CLIENT_SECRET":
                               os.environ["DC_TO_CORE_CLIENT_SECRET"]},
                              resolve=True)
    syncs = load_syncs(Path(defs_module.__file__).parent if defs_module else None)
    for spec in syncs.planned():
        given = (boundaries or {}).get(spec.name)
        save_plan(compute_plan(live["datacloud"], spec, partitions) if given is None else
                  plan_from_boundaries(spec.name, given), root / "plans")
    defs = build_definitions(plans_dir=root / "plans", resources=resources_from_env(settings),
                             defs_module=defs_module)
    return Project(server, root, settings, defs, live, Path(defs_module.__file__).parent)


def load_everything(project: Project, instance: dg.DagsterInstance, sync: str
                    ) -> list[dg.ExecuteInProcessResult]:
    return [project.run(sync, p, instance) for p in project.partitions(sync)]


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """What the operator reads: each failed step's error message."""
    return [e.step_failure_data.error.message for e in result.all_events
            if e.is_step_failure and e.step_failure_data.error]


def observation(result: dg.ExecuteInProcessResult) -> dict:
    """The metadata of a run's one asset observation (a dry run's report)."""
    events = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert len(events) == 1, failure_messages(result)
    return {k: v.value for k, v in
            events[0].event_specific_data.asset_observation.metadata.items()}


def outcomes(project: Project, results: list[dg.ExecuteInProcessResult]
             ) -> list[tuple[str, dict]]:
    """(sync, materialization metadata) of successful runs; a failed run fails the test with
    what its operator would read."""
    out = []
    for result in results:
        assert result.success, failure_messages(result)
        out.append((result.job_def.name.removeprefix("load_"), project.materialization(result)))
    return out


def stored_outcomes(instance: dg.DagsterInstance, project: Project, sync: str
                    ) -> list[tuple[str, dict]]:
    """(sync, metadata) of each partition's latest materialization in the instance."""
    out = []
    for p in project.partitions(sync):
        records = instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(["core", sync]), asset_partitions=[p]), limit=1).records
        assert records, f"{sync} {p} was not materialized"
        meta = records[0].asset_materialization.metadata  # type: ignore[union-attr]
        out.append((sync, {k: v.value for k, v in meta.items()}))
    return out


def assert_reconciled(project: Project, outcomes: list[tuple[str, dict]]) -> None:
    """The chaos invariant over every partition of both syncs."""
    datacloud, bulk = project.live["datacloud"], project.live["bulk"]
    loaded = {"Account": 0, "Opportunity": 0}
    for sync, meta in outcomes:
        start, end = meta["range_start"] or None, meta["range_end"] or None
        dc = datacloud.count_range(f"{sync}_Staging__dlm", "ExternalId__c", start, end,
                                   fold=True)  # plans cut the folded key space
        assert meta["rows_extracted"] == meta["rows_loaded"] + meta["rows_quarantined"] == dc
        for row in pq.read_table(meta["quarantine_path"]).to_pylist():
            assert row["error_code"] and row["error_message"], row
        loaded[sync] += meta["rows_loaded"]
    for obj, n in loaded.items():
        keys = bulk.query(f"SELECT External_Id__c FROM {obj}").column(0).to_pylist()
        assert len(keys) == n, f"Core holds {len(keys)} {obj} records, runs loaded {n}"
        assert not [k for k, c in Counter(keys).items() if c > 1], "duplicate external ids"


def run_apart(project: Project, home: Path, sync: str, partitions: list[str]) -> None:
    """Partition runs in processes of their own, at the same time (as the run launcher
    starts them); their events go to the instance in ``home``."""
    env = {**os.environ, **project.env, "DAGSTER_HOME": str(home)}
    children = [subprocess.Popen(project.run_apart_command(sync, p), env=env)
                for p in partitions]
    codes = [c.wait(timeout=600) for c in children]
    assert codes == [0] * len(children), f"partition runs exited with {codes}"


def run_partition_main(argv: list[str]) -> int:
    """``python -m dc_to_core_tests.pipeline_support PLANS SYNC PARTITION [DEFS]``: one
    partition run in a process of its own (instance from DAGSTER_HOME, settings from the
    environment; the syncs of the defs package DEFS, else the project's), for tests that
    kill it."""
    plans, sync, partition, *defs_dir = argv
    module = None
    if defs_dir and defs_dir[0]:
        sys.path.insert(0, str(Path(defs_dir[0]).parent))
        module = importlib.import_module(Path(defs_dir[0]).name)
    defs = build_definitions(plans_dir=Path(plans), resources=resources_from_env(),
                             defs_module=module)
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def(f"load_{sync}").execute_in_process(
            partition_key=partition, instance=instance, raise_on_error=False)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(run_partition_main(sys.argv[1:]))
