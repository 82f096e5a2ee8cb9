"""The dc-to-core command line: emulator (as a child process), seed, demo."""

from __future__ import annotations

import json
import ssl

import httpx
from click.testing import CliRunner

from dc_to_core.cli import main
from dc_to_core.emulator import spawn_emulator
from dc_to_core.emulator.server import DEFAULT_CLIENT_ID


def test_emulator_command_serves_https_with_its_own_certificate(tmp_path):
    seeded = CliRunner().invoke(main, ["seed", "--data-dir", str(tmp_path), "--accounts", "5",
                                       "--opportunities", "100", "--bad-share", "0.07"])
    assert seeded.exit_code == 0, seeded.output
    assert json.loads(seeded.output[: seeded.output.rindex("}") + 1])["bad_rows"][
        "bad_date"] == 1
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


def test_demo_seeds_and_reports_holdings():
    result = CliRunner().invoke(main, ["demo", "--opportunities", "300", "--accounts", "7"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output[result.output.index("{"):])
    assert body["holdings"]["datacloud"] == {"Account_Staging__dlm": 7,
                                             "Opportunity_Staging__dlm": 300}
