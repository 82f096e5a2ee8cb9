"""The Dagster UI in headless Chromium (Debian's package, driven by Playwright): what an
operator sees on an asset's page, saved as screenshots under the test artifacts."""

from __future__ import annotations

import os
import re
from pathlib import Path

from dc_to_core_tests.conftest import service_unavailable
from dc_to_core_tests.graphql_client import CHECKS, DagsterUI
from dc_to_core_tests.operator_support import ROOT, OperatorStack

CHROMIUM = os.environ.get("DC_TO_CORE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def artifacts() -> Path:
    out = Path(os.environ.get("DC_TO_CORE_ARTIFACTS", ROOT / "test-artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def browse_asset_page(stack: OperatorStack, ui: DagsterUI, asset: str) -> tuple[Path, Path]:
    """Open the asset's Partitions and Checks tabs; wait until they show what GraphQL says;
    return the two screenshots."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        service_unavailable(f"Playwright is not installed ({exc}); pip install -e '.[test]'")
    if not Path(CHROMIUM).exists():
        service_unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    statuses = ui.partition_statuses(asset)
    passed = any(e["status"] == "SUCCEEDED" for by_partition in
                 ui.latest_checks(asset, CHECKS).values() for e in by_partition.values())
    name = asset.replace("/", "_")
    shots = artifacts() / f"{name}_partitions.png", artifacts() / f"{name}_checks.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{stack.webserver_url}/assets/{asset}?view=partitions")
            page.get_by_text(re.compile(r"\d+ Partitions? Selected")).first.wait_for(
                timeout=60_000)
            done = len(statuses["materializedPartitions"])
            page.get_by_text(f"Materialized ({done})").first.wait_for(timeout=30_000)
            if done:  # open one partition: its latest materialization and metadata
                page.get_by_text(statuses["materializedPartitions"][0], exact=True).first.click()
                page.get_by_text("rows_loaded").first.wait_for(timeout=30_000)
            page.screenshot(path=str(shots[0]))
            page.goto(f"{stack.webserver_url}/assets/{asset}?view=checks")
            page.get_by_text(f"Checks ({len(CHECKS)})").first.wait_for(timeout=60_000)
            for check in CHECKS:
                page.get_by_text(check, exact=True).first.wait_for(timeout=30_000)
            if passed:  # results loaded: a check GraphQL reports as passed says so
                page.get_by_text("Succeeded", exact=True).first.wait_for(timeout=30_000)
            page.screenshot(path=str(shots[1]))
        finally:
            browser.close()
    return shots
