"""Mirroring deletes through the real pipeline: keys removed from Data Cloud are deleted from
Core by Salesforce Id, children before their parents, and a short or failed read never wipes
Core."""

from __future__ import annotations

import dagster as dg
import pyarrow.parquet as pq

from dc_to_core.emulator.seed import SeedSpec, seed_datacloud
from dc_to_core.orchestration.preview import DRY_RUN_TAG
from dc_to_core.sync.deletes import ALLOW_TAG
from dc_to_core.sync.state import SyncState
from dc_to_core_tests.pipeline_support import (
    defs_package,
    failure_messages,
    make_project,
    observation,
)
from dc_to_core_tests.support import set_faults

ACCOUNT = """
    name: Account
    source: Account_Staging__dlm
    target: Account
    key: {{source: ExternalId__c, target: External_Id__c}}
    {deletes}
    fields:
      Name: Name__c
      Industry: Industry__c
"""
OPPORTUNITY = """
    name: Opportunity
    source: Opportunity_Staging__dlm
    target: Opportunity
    key: {{source: ExternalId__c, target: External_Id__c}}
    parent: {{sync: Account, relationship: Account.External_Id__c, source: AccountExternalId__c}}
    {deletes}
    fields:
      Name: Name__c
      StageName: StageName__c
      CloseDate: {{source: CloseDate__c, type: date}}
      Amount: {{source: Amount__c, type: number}}
"""
MIRROR = "deletes: mirror\n    max_delete_share: {share}"


def project_with_deletes(make_server, tmp_path, share: float = 0.5, accounts: int = 8,
                         opportunities: int = 400):
    server = make_server(time_scale=200.0)
    seed_datacloud(server.org.storage, SeedSpec(accounts=accounts, opportunities=opportunities,
                                                seed=5))
    defs = defs_package(tmp_path, {
        "account": ACCOUNT.format(deletes=MIRROR.format(share=share)),
        "opportunity": OPPORTUNITY.format(deletes=MIRROR.format(share=share))})
    return make_project(server, tmp_path, partitions=2, defs_module=defs)


def dc_delete(server, obj: str, where: str, *args: object) -> list[str]:
    dc = server.org.storage.dc
    keys = [r[0] for r in dc.execute(f'SELECT "ExternalId__c" FROM "{obj}" WHERE {where}', args)]
    dc.execute(f'DELETE FROM "{obj}" WHERE {where}', args)
    return sorted(keys)


def core_keys(server, obj: str) -> set[str]:
    return {r[0] for r in server.org.storage.core.execute(f"SELECT External_Id__c FROM {obj}")}


def dc_keys(server, obj: str) -> set[str]:
    return {r[0] for r in server.org.storage.dc.execute(f'SELECT "ExternalId__c" FROM "{obj}"')}


def jobs_by_operation(server) -> dict[str, int]:
    return dict(server.org.storage.core.execute(
        "SELECT operation, COUNT(*) FROM ingest_job GROUP BY operation").fetchall())


def night(project, instance, failing: list | None = None, **tags: str) -> list[dict]:
    out = []
    for sync in ("Account", "Opportunity"):
        for p in project.partitions(sync):
            result = project.job(sync).execute_in_process(
                partition_key=p, instance=instance, raise_on_error=False, tags=tags)
            assert result.success, failure_messages(result)
            if failing is not None:
                failing.extend((e.check_name, {k: v.value for k, v in e.metadata.items()})
                               for e in result.get_asset_check_evaluations() if not e.passed)
            out.append(project.materialization(result))
    return out


def test_removed_rows_are_deleted_children_before_their_parents(make_server, tmp_path):
    """Night 2 deletes the removed Opportunities, the Account with no children left in Core,
    and defers the Account whose Opportunities were still in Core when its run came (its
    check passes, reporting it); night 3 deletes that one. Core then equals Data Cloud, the
    state forgets the deleted keys, the deleted rows' file keeps their last values, and no
    record was ever removed by a cascade."""
    project = project_with_deletes(make_server, tmp_path)
    server = project.server
    with dg.instance_for_test() as instance:
        night(project, instance)
        assert jobs_by_operation(server).keys() == {"upsert"}
        account = "ACC-0000003"
        children = dc_delete(server, "Opportunity_Staging__dlm", '"AccountExternalId__c" = ?',
                             account)
        loose = dc_delete(server, "Opportunity_Staging__dlm", '"ExternalId__c" IN (SELECT '
                          '"ExternalId__c" FROM "Opportunity_Staging__dlm" WHERE '
                          '"AccountExternalId__c" <> ? ORDER BY 1 LIMIT 4)', account)
        dc_delete(server, "Account_Staging__dlm", '"ExternalId__c" = ?', account)
        assert children and len(loose) == 4
        dry = [observation(project.job("Account").execute_in_process(
            partition_key=p, instance=instance, tags={DRY_RUN_TAG: "true"}))
            for p in project.partitions("Account")]  # its children are still in Core
        assert sum(d["rows_delete_deferred"] for d in dry) == 1
        assert sum(d["rows_would_delete"] for d in dry) == 0
        failing: list = []
        second = night(project, instance, failing)
        assert failing == []
        assert sum(m.get("rows_deleted", 0) for m in second) == len(children) + len(loose)
        assert sum(m.get("rows_delete_deferred", 0) for m in second) == 1
        assert sum(m["rows_sent"] for m in second) == 0  # nothing else changed
        assert account in core_keys(server, "Account")
        waiting = [m for m in second if m.get("rows_delete_deferred")]
        deferred = pq.read_table(waiting[0]["deleted_path"]).to_pylist()
        assert [(r["key"], r["status"]) for r in deferred] == [(account.lower(), "deferred")]
        assert "children in Opportunity" in deferred[0]["error_message"]
        files = [pq.read_table(m["deleted_path"]) for m in second if m.get("rows_deleted")]
        opp_rows = [r for t in files for r in t.to_pylist() if r["key"].startswith("opp")]
        assert sorted(r["key"] for r in opp_rows) == sorted(k.lower() for k in children + loose)
        assert all(r["status"] == "deleted" and r["Name"] and r["sf_id"] for r in opp_rows)
        third = night(project, instance, failing)
    assert failing == []
    assert sum(m.get("rows_deleted", 0) for m in third) == 1
    for obj in ("Account", "Opportunity"):
        assert core_keys(server, obj) == dc_keys(server, f"{obj}_Staging__dlm")
        assert SyncState(project.live["ledger"]).keys(obj) == len(core_keys(server, obj))
    binned = server.org.storage.core.execute(
        "SELECT object, COUNT(*) FROM recycle_bin GROUP BY object").fetchall()
    assert dict(binned) == {"Account": 1, "Opportunity": len(children) + len(loose)}
    assert jobs_by_operation(server)["delete"] >= 2


def test_a_short_read_or_a_large_share_deletes_nothing_and_says_what_to_do(make_server,
                                                                            tmp_path):
    project = project_with_deletes(make_server, tmp_path, share=0.2, accounts=4,
                                   opportunities=400)
    server = project.server
    first = project.partitions("Opportunity")[0]
    with dg.instance_for_test() as instance:
        night(project, instance)
        held, jobs = core_keys(server, "Opportunity"), jobs_by_operation(server)
        # a read that comes back short (a page cut off) must not look like removed rows
        rows = project.materialization(project.run("Opportunity", first, instance))[
            "rows_extracted"]
        set_faults(server, dc_truncate_rows=rows - rows // 10)
        cut = project.run("Opportunity", first, instance)
        assert not cut.success
        said = " ".join(failure_messages(cut))
        assert "read was incomplete" in said and "Nothing was deleted" in said, said
        set_faults(server, dc_truncate_rows=0)
        # rows really removed, but more than max_delete_share of the partition
        removed = dc_delete(server, "Opportunity_Staging__dlm", '"ExternalId__c" IN (SELECT '
                            '"ExternalId__c" FROM "Opportunity_Staging__dlm" ORDER BY 1 '
                            'LIMIT ?)', rows // 3)
        refused = project.run("Opportunity", first, instance)
        assert not refused.success
        said = " ".join(failure_messages(refused))
        assert "max_delete_share (20%)" in said and f"{ALLOW_TAG}=true" in said, said
        assert core_keys(server, "Opportunity") == held
        assert jobs_by_operation(server) == jobs  # not one job of any kind
        allowed = project.job("Opportunity").execute_in_process(
            partition_key=first, instance=instance, raise_on_error=False,
            tags={ALLOW_TAG: "true"})
    assert allowed.success, failure_messages(allowed)
    assert project.materialization(allowed)["rows_deleted"] == len(removed)
    assert core_keys(server, "Opportunity") == held - set(removed)
