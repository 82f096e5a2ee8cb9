"""The operator's path end to end: the real ``dagster-webserver`` and ``dagster-daemon`` on the
project's production ``dagster.yaml`` (PostgreSQL storage, queued runs), driven through the
webserver's GraphQL API as the UI drives it, against an emulated org.

Run alone with ``pytest -m e2e``. The tests share one stack and build on each other's data in
file order (the night → backfills → a change in Data Cloud → UI → a killed run worker), as one
operator's day would; each asserts only what its own actions must have caused. The stack's
night starts four minutes after it does (an hourly cron at that minute), so it comes once.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from dc_to_core.emulator.seed import SeedSpec
from dc_to_core.orchestration.automation import TRIGGER
from dc_to_core.orchestration.resources import resources_from_env
from dc_to_core.sync.plan import load_plan
from dc_to_core.sync.spec import load_syncs
from dc_to_core_tests.browser import browse_asset_page
from dc_to_core_tests.conftest import throwaway_database
from dc_to_core_tests.graphql_client import CHECKS, DagsterUI
from dc_to_core_tests.operator_support import OperatorStack, start_stack, wait_for
from dc_to_core_tests.support import OrgClient, set_faults

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
PARTITIONS = {"Account": 2, "Contact": 1, "Opportunity": 3}
BACKFILL_TIMEOUT_S = 600
# the partitions are loaded already: a full refresh resends every row, so there is a load to
# interrupt (an unchanged partition sends nothing)
RESEND = {"dc_to_core/full_refresh": "true"}


@pytest.fixture(scope="module")
def stack(postgres: dict[str, str], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[OperatorStack]:
    night = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=4)
    with throwaway_database(postgres) as db:
        s = start_stack(tmp_path_factory.mktemp("operator"), db,
                        SeedSpec(accounts=120, opportunities=12_000, bad_share=0.002, seed=11),
                        PARTITIONS, extra_env={"DC_TO_CORE_NIGHTLY_CRON": f"{night.minute} * * * *",
                                               "DC_TO_CORE_CHANGE_INTERVAL_S": "10",
                                               "DC_TO_CORE_AUTOMATION_INTERVAL_S": "10"})
        try:
            yield s
        finally:
            s.stop()


@pytest.fixture(scope="module")
def ui(stack: OperatorStack) -> DagsterUI:
    return DagsterUI(stack.webserver_url)


def live_of(stack: OperatorStack) -> dict:
    return resources_from_env(stack.env, resolve=True)


@pytest.fixture(scope="module")
def live(stack: OperatorStack) -> dict:
    return live_of(stack)


def ranges(stack: OperatorStack, sync: str) -> dict[str, tuple[str | None, str | None]]:
    plan = load_plan(load_syncs().syncs[sync], Path(stack.env["DC_TO_CORE_PLANS"]))
    return {r.key: (r.start, r.end) for r in plan.ranges}


def wait_backfill(ui: DagsterUI, stack: OperatorStack, backfill_id: str) -> dict:
    try:
        return ui.wait_backfill(backfill_id, BACKFILL_TIMEOUT_S, alive=stack.alive)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None


def failures(ui: DagsterUI, backfill: dict) -> list[str]:
    """What a backfill and its failed runs said (for assertion messages)."""
    return [str(backfill.get("error") or "")] + [
        f"{r['tags'].get('dagster/partition')}: {m}" for r in backfill["runs"]
        if r["status"] == "FAILURE" for m in ui.step_failures(r["runId"])]


def assert_matches_the_org(ui: DagsterUI, stack: OperatorStack, live: dict, sync: str,
                      partitions: list[str]) -> None:
    """Each partition's latest materialization and checks agree with Data Cloud and Core."""
    spec = load_syncs().syncs[sync]
    asset = f"core/{sync}"
    materialized = ui.latest_materializations(asset)
    checks = ui.latest_checks(asset, CHECKS)
    for key, (start, end) in ranges(stack, sync).items():
        if key not in partitions:
            continue
        meta = materialized[key]["metadata"]
        in_dc = live["datacloud"].count_range(spec.source, spec.source_key, start, end,
                                              spec.folds_key)
        in_core = live["core"].count_range(spec.target, spec.target_key, start, end)
        assert meta["rows_extracted"] == in_dc, (sync, key, meta)
        assert meta["rows_loaded"] + meta["rows_quarantined"] == in_dc, (sync, key, meta)
        assert meta["rows_loaded"] == in_core, (sync, key, meta, in_core)
        run = materialized[key]["run_id"]
        for check in CHECKS:
            result = checks[check][key]
            assert result["run_id"] == run, (check, key, "not evaluated by the latest run")
            if check == "no_quarantined_rows" and meta["rows_quarantined"]:
                assert (result["status"], result["severity"]) == ("FAILED", "WARN")
            else:
                assert result["status"] == "SUCCEEDED", (check, key, result)


def valid_key_in(stack: OperatorStack, live: dict, sync: str, partition: str) -> str:
    """An external id of a row in that partition that is not one of the seeded bad rows."""
    start, end = ranges(stack, sync)[partition]
    spec = load_syncs().syncs[sync]
    bad = {k for keys in stack.seed.bad_rows.values() for k in keys}
    table = live["datacloud"].read_range(spec.source, [], spec.source_key, start, end, 200,
                                         fold=spec.folds_key)
    keys = next(iter(table))[spec.source_key].to_pylist()
    return next(k for k in keys[50:] if k not in bad)


def finished(runs: list[dict]) -> bool:
    return bool(runs) and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs)


def automated(ui: DagsterUI) -> list[dict]:
    """The runs that declarative automation launched, oldest first."""
    return sorted(ui.runs(**{TRIGGER: "sync_automation"}), key=lambda r: r["creationTime"])


def asset_of(run: dict) -> str:
    """The one asset the run loads (it fails on a run of several)."""
    (asset,) = {"/".join(a["key"]["path"]) for a in run["assets"]}
    return asset


def test_the_night_loads_accounts_then_opportunities_under_the_daemon(stack, ui):
    """At the nightly tick sync_automation requests both Account partitions (one run each,
    from one evaluation); the hierarchy pass and the Contacts once both are loaded;
    Opportunity's three once the Accounts and the Contacts are (one evaluation); nothing
    else."""
    runs = wait_for("the night's runs to finish", lambda: (
        lambda rs: rs if len(rs) >= 8 and finished(rs) else None)(automated(ui)),
        900, every=3, alive=stack.alive)

    assert all(r["status"] == "SUCCESS" for r in runs), [(asset_of(r), r["status"]) for r in runs]
    assert sorted((asset_of(r), r["tags"]["dagster/partition"]) for r in runs) == [
        ("core/Account", "p00"), ("core/Account", "p01"), ("core/Account/hierarchy", "p00"),
        ("core/Account/hierarchy", "p01"), ("core/Contact", "p00"),
        ("core/Opportunity", "p00"), ("core/Opportunity", "p01"), ("core/Opportunity", "p02")]
    accounts = [r for r in runs if asset_of(r) == "core/Account"]
    after_accounts = [r for r in runs if asset_of(r) in ("core/Account/hierarchy",
                                                         "core/Contact")]
    contacts = [r for r in runs if asset_of(r) == "core/Contact"]
    children = [r for r in runs if asset_of(r) == "core/Opportunity"]
    assert min(r["creationTime"] for r in after_accounts) >= max(r["endTime"] for r in accounts)
    assert min(r["creationTime"] for r in children) >= max(r["endTime"] for r in contacts)
    assert len({r["tags"]["dagster/tick"] for r in accounts}) == 1  # runs, not a backfill
    assert len({r["tags"]["dagster/tick"] for r in children}) == 1
    assert not any("dagster/backfill" in r["tags"] for r in runs)
    assert_matches_the_org(ui, stack, live_of(stack), "Account", ["p00", "p01"])
    assert_matches_the_org(ui, stack, live_of(stack), "Opportunity", ["p00", "p01", "p02"])


def test_backfill_all_partitions_then_only_the_failed_one(stack, ui, live):
    poison = valid_key_in(stack, live, "Opportunity", "p01")
    set_faults(stack.emulator, job_fail_key=f"^{re.escape(poison)}$")
    try:
        first = wait_backfill(ui, stack, ui.launch_backfill(
            {"core/Account": None, "core/Opportunity": None}, "e2e: every partition",
            RESEND))  # loaded by the night already: resend, so the poisoned job is sent
    finally:  # the later tests need a healthy org whatever happened here
        set_faults(stack.emulator, job_fail_key="")

    assert first["status"] == "COMPLETED_FAILED", failures(ui, first)
    assert ui.partition_statuses("core/Account")["failedPartitions"] == []
    assert ui.partition_statuses("core/Opportunity")["failedPartitions"] == ["p01"]
    failed_run = next(r for r in first["runs"] if r["status"] == "FAILURE")
    assert failed_run["tags"]["dagster/partition"] == "p01"
    message = " ".join(ui.step_failures(failed_run["runId"]))
    assert "Opportunity p01" in message and "re-pass rounds" in message, message
    assert_matches_the_org(ui, stack, live, "Account", ["p00", "p01"])
    assert_matches_the_org(ui, stack, live, "Opportunity", ["p00", "p02"])

    failed = ui.partition_statuses("core/Opportunity")["failedPartitions"]
    retry = wait_backfill(ui, stack, ui.launch_backfill({"core/Opportunity": failed},
                                                        "e2e: backfill failed"))

    assert retry["status"] == "COMPLETED_SUCCESS", failures(ui, retry)
    assert [r["tags"]["dagster/partition"] for r in retry["runs"]] == ["p01"]
    assert ui.partition_statuses("core/Opportunity")["failedPartitions"] == []
    assert_matches_the_org(ui, stack, live, "Opportunity", ["p00", "p01", "p02"])
    keys = live["bulk"].read_range("Opportunity", ["External_Id__c"], "External_Id__c", None,
                                   None)["External_Id__c"]
    loaded = sum(m["metadata"]["rows_loaded"]
                 for m in ui.latest_materializations("core/Opportunity").values())
    assert len(keys) == len(set(keys.to_pylist())) == loaded  # nothing twice, nothing missing


def test_change_sensor_requests_only_the_changed_partition(stack, ui):
    spec = load_syncs().syncs["Opportunity"]
    start, end = ranges(stack, "Opportunity")["p02"]
    assert end is None  # the last range: the first rows from its start are inside it
    org = OrgClient(stack.emulator)  # type: ignore[arg-type]
    before = {r["runId"] for r in automated(ui)}
    org.post("/__emulator__/datacloud/sql", json={
        "sql": f'UPDATE "{spec.source}" SET "{spec.modified}" = ? WHERE "{spec.source_key}" IN '
               f'(SELECT "{spec.source_key}" FROM "{spec.source}" WHERE '
               f'LOWER("{spec.source_key}") >= ? LIMIT 3)',  # the plan cuts the folded keys
        "params": ["2031-01-01T00:00:00.000+00:00", start]}).raise_for_status()

    runs = wait_for("the run of the changed range to finish", lambda: (
        lambda rs: rs if finished(rs) else None)(
            [r for r in automated(ui) if r["runId"] not in before]), 120, every=2,
        alive=stack.alive)

    assert [(asset_of(r), r["tags"]["dagster/partition"], r["status"]) for r in runs] == [
        ("core/Opportunity", "p02", "SUCCESS")]


def test_the_asset_page_shows_partitions_and_check_results(stack, ui):
    shots = browse_asset_page(stack, ui, "core/Opportunity")
    assert all(s.exists() for s in shots)  # browse_asset_page waited for what GraphQL says


def loading_worker(ui: DagsterUI, run_id: str) -> int | None:
    """The pid of the run's worker once its load step holds a bulk_api slot."""
    if not any(s["runId"] == run_id for s in ui.claimed_slots("bulk_api")):
        return None
    for message in ui.run_messages(run_id):
        found = re.match(r"Started process for run \(pid: (\d+)\)", message)
        if found:
            return int(found.group(1))
    return None


def test_a_killed_run_worker_is_failed_retried_and_gives_back_its_slot(stack, ui):
    """SIGKILL a run worker mid-load twice in a row (an OOM kill, a node restart): each time
    the run is failed, its bulk_api slot is given back (run monitoring), and a run retry is
    launched; the third attempt succeeds and the next load of the pool runs."""
    org = OrgClient(stack.emulator)  # type: ignore[arg-type]
    # slow enough that the partition's 4,000 rows (8 jobs side by side, 500 rows each) are
    # still loading through two kills and their retries
    org.http.patch("/__emulator__/profile", json={"row_ms": 24000.0}).raise_for_status()
    try:
        run_id = ui.launch_run("load_Opportunity", {"dagster/partition": "p00", **RESEND})
        for _attempt in range(2):  # run_retries.max_retries is 2: two kills are absorbed
            pid = wait_for(f"run {run_id} to load (holding a bulk_api slot)",
                           lambda r=run_id: loading_worker(ui, r), 240, every=0.5,
                           alive=stack.alive)
            os.kill(pid, signal.SIGKILL)
            wait_for("the killed run to be marked failed", lambda r=run_id: any(
                x["runId"] == r and x["status"] == "FAILURE" for x in ui.runs()), 60,
                alive=stack.alive)
            wait_for("its bulk_api slot to be given back", lambda r=run_id: not any(
                s["runId"] == r for s in ui.claimed_slots("bulk_api")), 60, alive=stack.alive)
            run_id = wait_for("the run retry", lambda r=run_id: next((
                x["runId"] for x in ui.runs(**{"dagster/parent_run_id": r})), None), 60,
                alive=stack.alive)
    finally:  # a new session: the first may have expired in the minutes of the kills
        OrgClient(stack.emulator).http.patch(  # type: ignore[arg-type]
            "/__emulator__/profile", json={"row_ms": 8.0}).raise_for_status()
    done = wait_for("the last retry to finish", lambda r=run_id: next((
        x for x in ui.runs() if x["runId"] == r and x["status"] in ("SUCCESS", "FAILURE")),
        None), 300, every=2, alive=stack.alive)
    assert done["status"] == "SUCCESS", ui.step_failures(done["runId"])
    assert ui.claimed_slots("bulk_api") == []
    after = ui.launch_run("load_Opportunity", {"dagster/partition": "p01"})  # the next load
    nxt = wait_for("the next load to finish", lambda: next((
        x for x in ui.runs() if x["runId"] == after and x["status"] in ("SUCCESS", "FAILURE")),
        None), 300, every=2, alive=stack.alive)
    assert nxt["status"] == "SUCCESS", ui.step_failures(after)


def test_a_second_run_of_a_partition_waits_until_the_first_has_ended(stack, ui):
    """Two runs of one partition at once (a UI launch while another loads it): the second
    waits, naming the run that holds the partition, and loads only once that run has ended;
    both succeed and the partition matches the org."""
    org = OrgClient(stack.emulator)  # type: ignore[arg-type]
    # slow enough that the partition's 4,000 rows (8 jobs side by side, 500 rows each) are
    # still loading while the second run waits
    org.http.patch("/__emulator__/profile", json={"row_ms": 24000.0}).raise_for_status()
    try:
        first = ui.launch_run("load_Opportunity", {"dagster/partition": "p02", **RESEND})
        wait_for(f"run {first} to load (holding a bulk_api slot)",
                 lambda: loading_worker(ui, first), 240, every=0.5, alive=stack.alive)
        second = ui.launch_run("load_Opportunity", {"dagster/partition": "p02", **RESEND})
        wait_for("the second run to wait for the first", lambda: any(
            f"being loaded by run {first}: waiting for it to end" in m
            for m in ui.run_messages(second)), 240, every=1, alive=stack.alive)
    finally:  # a new session: the first may have expired in the minutes of the kills
        OrgClient(stack.emulator).http.patch(  # type: ignore[arg-type]
            "/__emulator__/profile", json={"row_ms": 8.0}).raise_for_status()

    def ended(run_id: str) -> dict | None:
        return next((x for x in ui.runs() if x["runId"] == run_id
                     and x["status"] in ("SUCCESS", "FAILURE")), None)

    done = wait_for("the first run to finish", lambda: ended(first), 300, every=2,
                    alive=stack.alive)
    later = wait_for("the second run to finish", lambda: ended(second), 300, every=2,
                     alive=stack.alive)
    assert done["status"] == later["status"] == "SUCCESS", ui.step_failures(second)
    assert later["endTime"] > done["endTime"]
    assert any("the other run ended: this run now loads Opportunity p02" in m
               for m in ui.run_messages(second))
    assert_matches_the_org(ui, stack, live_of(stack), "Opportunity", ["p02"])
