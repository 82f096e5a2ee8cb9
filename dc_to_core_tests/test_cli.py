"""The dc-to-core command line: emulator (as a child process), seed, plan."""

from __future__ import annotations

import json
import ssl

import httpx
from click.testing import CliRunner

from dc_to_core.cli import main
from dc_to_core.emulator import spawn_emulator
from dc_to_core.emulator.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from dc_to_core.sync.plan import load_plan
from dc_to_core.sync.spec import load_syncs


def test_emulator_command_serves_https_with_its_own_certificate(tmp_path):
    seeded = CliRunner().invoke(main, ["seed", "--data-dir", str(tmp_path), "--accounts", "5",
                                       "--opportunities", "100", "--bad-share", "0.07"])
    assert seeded.exit_code == 0, seeded.output
    assert json.loads(seeded.stdout[: seeded.stdout.rindex("}") + 1])["bad_rows"][
        "bad_date"] == 1
    said = seeded.stderr.splitlines()  # not a terminal: plain progress lines, no bar
    assert said[0] == "seeding Data Cloud: 0/115 rows (0%)"  # 5 accounts, 10 contacts, 100 opps
    assert said[-1].startswith("seeding Data Cloud: 115/115 rows (100%), done in ")
    emu = spawn_emulator(tmp_path, "--profile", "fast", "--set", "workers=2",
                         env={"DC_TO_CORE_EMULATOR_CLIENT_SECRET": "s3cret"})
    try:
        assert emu.url.startswith("https://127.0.0.1:")
        verify = ssl.create_default_context(cafile=emu.ca_file)
        r = httpx.post(f"{emu.url}/services/oauth2/token", verify=verify, data={
            "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
            "client_secret": "s3cret"})
        assert r.status_code == 200
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        profile = httpx.get(f"{emu.url}/__emulator__/profile", headers=auth, verify=verify)
        assert profile.json()["profile"]["workers"] == 2
        stats = httpx.get(f"{emu.url}/__emulator__/stats", headers=auth, verify=verify).json()
        assert stats["holdings"]["datacloud"]["Opportunity_Staging__dlm"] == 100
    finally:
        emu.stop()
    assert emu.process.returncode == 0


def test_seed_command_seeds_the_object_graph_and_says_what_it_wrote(tmp_path):
    seeded = CliRunner().invoke(main, [
        "seed", "--data-dir", str(tmp_path), "--accounts", "10", "--opportunities", "20",
        "--users", "4", "--hierarchy-share", "0.5", "--contacts-per-account", "3",
        "--allocations", "400", "--allocation-graph", "structured", "--cluster-accounts", "2",
        "--warehouses-per-account", "2", "--warehouses", "12", "--core-parents"])
    assert seeded.exit_code == 0, seeded.output
    summary = json.loads(seeded.stdout[: seeded.stdout.rindex("}") + 1])
    assert summary["account_hierarchy"]["with_parent"] == 5 and summary["contacts"] == 30
    assert summary["allocations"]["components"] == 5  # clusters of 2 of the 10 accounts
    assert summary["core"] == {"users": 4, "warehouses": 12, "accounts": 10}
    assert ("Data Cloud: 10 accounts (5 with a parent), 30 contacts, 20 opportunities, 400 "
            "allocations; Core: 4 users, 12 warehouses, 10 accounts") in seeded.stdout
    refused = CliRunner().invoke(main, ["seed", "--data-dir", str(tmp_path), "--allocations",
                                        "5", "--warehouses", "1"])
    assert refused.exit_code == 2 and "needs 600 warehouses, not 1" in refused.output


def test_plan_command_writes_boundaries_from_datacloud_quantiles(shared_server, tmp_path,
                                                                monkeypatch):
    monkeypatch.setenv("DC_TO_CORE_LOGIN_URL", shared_server.url)
    monkeypatch.setenv("DC_TO_CORE_CA_BUNDLE", str(shared_server.ca_file))
    monkeypatch.setenv("DC_TO_CORE_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
    result = CliRunner().invoke(main, ["plan", "Opportunity", "-n", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "3 partitions over 3,000 rows" in result.stdout
    assert result.stderr.splitlines()[0] == "planning Opportunity from Data Cloud quantiles ..."
    assert "planning Opportunity from Data Cloud quantiles: done in " in result.stderr
    plan = load_plan(load_syncs().syncs["Opportunity"], tmp_path)
    assert [r.key for r in plan.ranges] == ["p00", "p01", "p02"]
    assert plan.ranges[0].start is None and plan.ranges[-1].end is None


def test_plan_command_names_the_known_syncs():
    result = CliRunner().invoke(main, ["plan", "Lead"])
    assert result.exit_code == 2
    assert ("no sync 'Lead'; the defs folder declares Account, Contact, Opportunity"
            in result.output)
