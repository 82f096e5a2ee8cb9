"""Sync files: the demo file loads; every mistake names the file, the sync and the field."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dc_to_core.sync.spec import CONFIG_DIR, SyncConfigError, load_syncs, parse_syncs

GOOD = {"syncs": [{"name": "A", "source": "A__dlm", "target": "Account",
                   "key": {"source": "Id__c", "target": "Ext__c"}, "fields": {"Name": "N__c"}}]}


def test_demo_file_loads_in_dependency_order():
    syncs = load_syncs()
    assert [s.name for s in syncs.ordered()] == ["Account", "Opportunity"]
    opp = syncs.syncs["Opportunity"]
    assert opp.parent and opp.parent.relationship == "Account.External_Id__c"
    assert opp.target_columns[0] == "External_Id__c"
    assert opp.target_columns[-1] == "Account.External_Id__c"
    assert {f.target: f.type for f in opp.fields}["CloseDate"] == "date"


@pytest.mark.parametrize(("change", "message"), [
    ({"fields": {"Name": {"source": "N__c", "type": "strng"}}},
     "f.yaml: sync 'A', field 'Name': type 'strng' is not one of"),
    ({"fields": {"Name": {"type": "string"}}}, "sync 'A', field 'Name': needs a source column"),
    ({"source": "Account"}, "sync 'A': 'source' must be a Data Cloud object"),
    ({"colour": "red"}, "sync 'A': unknown keys ['colour']"),
    ({"key": {"source": "Id__c"}}, "sync 'A': 'key' needs"),
    ({"parent": {"sync": "Nope", "relationship": "Account.X__c", "source": "P__c"}},
     "sync 'A', parent: unknown sync 'Nope'"),
    ({"fields": {"Ext__c": "E__c"}}, "sync 'A', field 'Ext__c': the external id is mapped"),
    ({"operation": "insert"}, "operation 'insert' is not supported"),
])
def test_mistakes_name_file_sync_and_field(change, message):
    doc = {"syncs": [{**GOOD["syncs"][0], **change}]}
    with pytest.raises(SyncConfigError) as err:
        parse_syncs(doc, "f.yaml")
    assert message in str(err.value)


def test_cycles_and_duplicates():
    a = {**GOOD["syncs"][0], "parent": {"sync": "B", "relationship": "B.X__c", "source": "P"}}
    b = {**GOOD["syncs"][0], "name": "B",
         "parent": {"sync": "A", "relationship": "A.X__c", "source": "P"}}
    with pytest.raises(SyncConfigError, match="cycle"):
        parse_syncs({"syncs": [a, b]}, "f.yaml")
    with pytest.raises(SyncConfigError, match="defined twice"):
        parse_syncs({"syncs": [GOOD["syncs"][0]] * 2}, "f.yaml")
    with pytest.raises(SyncConfigError, match=r"missing\.yaml: cannot read"):
        load_syncs("missing.yaml")


def test_a_bad_sync_file_fails_dagster_definitions_validate(tmp_path: Path):
    bad = tmp_path / "syncs.yaml"
    doc = yaml.safe_load(Path("dc_to_core/config/syncs.yaml").read_text())
    doc["syncs"][1]["fields"]["CloseDate"]["type"] = "calendar"
    bad.write_text(yaml.safe_dump(doc))
    home = tmp_path / "home"   # not the project's production dagster.yaml (needs PostgreSQL)
    home.mkdir()
    shutil.copy(CONFIG_DIR / "dagster_local.yaml", home / "dagster.yaml")
    env = {**os.environ, "DC_TO_CORE_SYNCS": str(bad), "DC_TO_CORE_CLIENT_SECRET": "x",
           "DAGSTER_HOME": str(home)}
    cmd = [sys.executable, "-m", "dagster", "definitions", "validate", "-m",
           "dc_to_core.definitions"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert f"{bad}: sync 'Opportunity', field 'CloseDate': type 'calendar'" in out.stdout + \
        out.stderr
    good = subprocess.run(cmd, env={**env, "DC_TO_CORE_SYNCS": ""}, capture_output=True,
                          text=True, timeout=120)
    assert good.returncode == 0, good.stdout + good.stderr
