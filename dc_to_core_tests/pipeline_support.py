"""A small emulator-backed project for pipeline tests: plans computed from its data,
definitions built with resources pointing at it, and helpers to run partitions."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from dc_to_core.emulator import EmulatorServer
from dc_to_core.emulator.server import DEFAULT_CLIENT_SECRET
from dc_to_core.plan import compute_plan, save_plan
from dc_to_core.project import build_definitions
from dc_to_core.resources import resources_from_env
from dc_to_core.syncs import load_syncs


@dataclass
class Project:
    server: EmulatorServer
    root: Path
    env: dict[str, str]
    defs: dg.Definitions
    live: dict = field(default_factory=dict)   # resources usable outside a run

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


def make_project(server: EmulatorServer, root: Path, partitions: int = 2,
                 **env: str) -> Project:
    os.environ.setdefault("DC_TO_CORE_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
    settings = {"DC_TO_CORE_LOGIN_URL": server.url,
                "DC_TO_CORE_CA_BUNDLE": str(server.ca_file),
                "DC_TO_CORE_STATE_DIR": str(root / "state"),
                "DC_TO_CORE_TIME_SCALE": str(server.org.profile.time_scale), **env}
    live = resources_from_env({**settings, "DC_TO_CORE_CLIENT_SECRET":
                               os.environ["DC_TO_CORE_CLIENT_SECRET"]},
                              resolve=True)
    for spec in load_syncs().ordered():
        save_plan(compute_plan(live["datacloud"], spec, partitions), root / "plans")
    defs = build_definitions(plans_dir=root / "plans", resources=resources_from_env(settings))
    return Project(server, root, settings, defs, live)


def run_partition_main(argv: list[str]) -> int:
    """``python -m dc_to_core_tests.pipeline_support PLANS SYNC PARTITION``: one partition
    run in a process of its own (instance from DAGSTER_HOME, settings from the environment),
    for tests that kill it."""
    plans, sync, partition = argv
    defs = build_definitions(plans_dir=Path(plans), resources=resources_from_env())
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def(f"load_{sync}").execute_in_process(
            partition_key=partition, instance=instance, raise_on_error=False)
    return 0 if result.success else 1


if __name__ == "__main__":
    import sys

    sys.exit(run_partition_main(sys.argv[1:]))
