"""The syncs as Dagster Components: ``dg list defs`` and ``dg check defs`` on the project, and
a broken ``defs.yaml`` failing ``dg check defs`` and ``dagster definitions validate`` with the
file, the line and the key, in a copy of the project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dc_to_core_tests.operator_support import ROOT, script

OPPORTUNITY = Path("dc_to_core/defs/opportunity/defs.yaml")


def project_copy(tmp_path: Path) -> Path:
    """The project's package, pyproject.toml and workspace.yaml in a folder of their own (it
    comes first on PYTHONPATH), with a DAGSTER_HOME on the embedded SQLite instance."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "dc_to_core", root / "dc_to_core",
                    ignore=shutil.ignore_patterns("__pycache__", "emulator"))
    for name in ("pyproject.toml", "workspace.yaml"):
        shutil.copy(ROOT / name, root / name)
    (root / "home").mkdir()
    shutil.copy(ROOT / "dc_to_core/config/dagster_local.yaml", root / "home/dagster.yaml")
    return root


def run(root: Path, *cmd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root), "DAGSTER_HOME": str(root / "home"),
           "VIRTUAL_ENV": sys.prefix, "DC_TO_CORE_CLIENT_SECRET": "x", "NO_COLOR": "1"}
    return subprocess.run(list(cmd), cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def break_yaml(root: Path, old: str, new: str) -> None:
    path = root / OPPORTUNITY
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_dg_lists_and_checks_the_project(tmp_path):
    root = project_copy(tmp_path)
    checked = run(root, script("dg"), "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = run(root, script("dg"), "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout[listed.stdout.index("{"):])
    assets = {a["asset_key"]: a for a in doc["assets"]}
    assert set(assets) == {"core/Account", "core/Account/hierarchy", "core/Contact",
                           "core/Opportunity", "datacloud/Account_Staging__dlm",
                           "datacloud/Contact_Staging__dlm",
                           "datacloud/Opportunity_Staging__dlm"}
    opportunity = assets["core/Opportunity"]
    assert opportunity["kinds"] == ["salesforce"]
    assert opportunity["owners"] == [{"team": "salesforce-data"}]
    assert set(opportunity["dependency_keys"]) == {"core/Account", "core/Account/hierarchy",
                                                   "core/Contact",
                                                   "datacloud/Opportunity_Staging__dlm"}
    assert opportunity["source"] == "dc_to_core/defs/opportunity/defs.yaml:3"
    assert {c["key"] for c in doc["asset_checks"]} >= {"core/Opportunity:fields_match"}
    assert {s["name"] for s in doc["sensors"]} >= {"sync_automation", "source_changes"}
    components = run(root, script("dg"), "list", "components")
    assert "dc_to_core.SalesforceSync" in components.stdout, components.stderr


@pytest.mark.parametrize(("old", "new", "where", "says"), [
    ("  target: Opportunity", "  targt: Opportunity", "opportunity/defs.yaml:7",
     "attributes.targt"),
    ("CloseDate: {source: CloseDate__c, type: date}",
     "CloseDate: {source: CloseDate__c, type: calendar}", "opportunity/defs.yaml:20",
     "attributes.fields.CloseDate.type: sync 'Opportunity', field 'CloseDate': type 'calendar'"
     " is not one of"),
    ("AccountExternalId__c, sync: Account,", "AccountExternalId__c, sync: Acount,",
     "opportunity/defs.yaml:10", "attributes.lookups.Account.External_Id__c.sync: sync "
     "'Opportunity', lookup 'Account.External_Id__c': unknown sync 'Acount' (known: Account, "
     "Contact, Opportunity)"),
    ("    Primary_Contact__r.External_Id__c: {source",
     "    Primary_Contact__r.External_Id__c: {sorce", "opportunity/defs.yaml:9",
     "attributes.lookups.dict[str,union[str,LookupMap]].Primary_Contact__r.External_Id__c."
     "LookupMap.sorce"),  # the component's model catches it first
    ("source: Opportunity_Staging__dlm", "source: Opportunity_Staging", "opportunity/defs.yaml:6",
     "'source' must be a Data Cloud object"),
    ("target: External_Id__c}", "target: External_Id__c, case_sensitive: sometimes}",
     "opportunity/defs.yaml:8", "case_sensitive"),
])
def test_a_broken_sync_yaml_names_file_line_and_key(tmp_path, old, new, where, says):
    root = project_copy(tmp_path)
    break_yaml(root, old, new)
    for cmd in ([script("dg"), "check", "defs"],
                [script("dagster"), "definitions", "validate", "-w", "workspace.yaml"]):
        out = run(root, *cmd)
        said = out.stdout + out.stderr
        assert out.returncode != 0, said
        assert where in said and says in said, said[-3000:]


def test_a_parent_cycle_is_reported_for_the_syncs_in_it(tmp_path):
    root = project_copy(tmp_path)
    account = root / "dc_to_core/defs/account/defs.yaml"
    account.write_text(account.read_text().replace(
        "  modified: LastModifiedDate__c", "  parent: {sync: Opportunity, relationship: "
        "Opportunity.External_Id__c, source: OppId__c}\n  modified: LastModifiedDate__c"))
    out = run(root, script("dg"), "check", "defs")
    said = out.stdout + out.stderr
    assert out.returncode != 0
    assert ("attributes.parent: the parent references of syncs Account, Contact, Opportunity "
            "form a cycle") in said, said[-3000:]  # Contact looks up Account, Opportunity both
    assert "unknown sync" not in said


def test_scheduling_attributes_are_component_attributes_not_sync_keys(tmp_path):
    root = project_copy(tmp_path)
    break_yaml(root, "  owners:", "  fresh_by_cron: 30 5 * * *\n  fresh_within_hours: 3\n"
               "  nightly_cron: 15 1 * * *\n  owners:")
    mismatch = run(root, script("dg"), "check", "defs")
    said = mismatch.stdout + mismatch.stderr
    assert mismatch.returncode != 0
    assert "opportunity/defs.yaml:" in said and "attributes.nightly_cron" in said, said[-3000:]
    assert "differs from parent sync Account's '0 2 * * *'" in said, said[-3000:]
    for parent in ("account", "contact"):  # the night of each sync it looks up
        path = root / f"dc_to_core/defs/{parent}/defs.yaml"
        path.write_text(path.read_text().rstrip() + "\n  nightly_cron: 15 1 * * *\n")
    assert run(root, script("dg"), "check", "defs").returncode == 0
    probe = ("import dagster as dg; from dc_to_core.sync.spec import load_syncs; "
             "from dc_to_core.orchestration.project import build_definitions; "
             "print(sorted(load_syncs().syncs)); print(build_definitions().resolve_asset_graph()"
             ".get(dg.AssetKey(['core', 'Opportunity'])).freshness_policy.deadline_cron); "
             "f = lambda c: [c.get_label(), *(x for k in c.children for x in f(k))]; "
             "print(next(x for x in f(build_definitions().resolve_asset_graph().get("
             "dg.AssetKey(['core', 'Opportunity'])).automation_condition) "
             "if x and x.startswith('nightly')))")
    listed = run(root, sys.executable, "-c", probe)
    assert listed.stdout.split("\n")[-4:-1] == [
        "['Account', 'Account_hierarchy', 'Contact', 'Opportunity']", "30 5 * * *",
                                                "nightly (15 1 * * *, UTC)"], \
        listed.stdout + listed.stderr


def test_dg_scaffold_defs_writes_a_sync_that_checks(tmp_path):
    root = project_copy(tmp_path)
    made = run(root, script("dg"), "scaffold", "defs", "dc_to_core.SalesforceSync", "lead",
               "--source", "Lead_Home__dlm", "--target", "Lead")
    assert made.returncode == 0, made.stdout + made.stderr
    text = (root / "dc_to_core/defs/lead/defs.yaml").read_text()
    assert "type: dc_to_core.SalesforceSync" in text and "source: Lead_Home__dlm" in text
    checked = run(root, script("dg"), "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = run(root, script("dg"), "list", "defs", "--json")
    assert "core/Lead" in listed.stdout
