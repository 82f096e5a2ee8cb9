"""What an operator does in the Dagster UI, done through the webserver's GraphQL API (the
same mutations and queries the UI sends), for the end-to-end tests.

Every result union is checked by ``__typename``: an error member fails with its message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

PY_ERR = "fragment PyErr on PythonError { message className }"
METADATA = """fragment MD on MetadataEntry { __typename label
  ... on IntMetadataEntry { intRepr } ... on FloatMetadataEntry { floatValue }
  ... on TextMetadataEntry { text } ... on JsonMetadataEntry { jsonString }
  ... on PathMetadataEntry { path } }"""
TERMINAL_BACKFILL = {"COMPLETED", "FAILED", "CANCELED", "COMPLETED_SUCCESS", "COMPLETED_FAILED"}
REPO = "__repository__"
CHECKS = ["counts_reconcile", "no_quarantined_rows", "no_duplicate_external_ids", "fields_match"]


class GraphQLError(AssertionError):
    pass


def _key(asset: str) -> dict:
    return {"path": asset.split("/")}


def _tags(pairs: list[dict]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in pairs}


def metadata_values(entries: list[dict]) -> dict[str, Any]:
    """Metadata entries as plain values (ints from their exact text, JSON decoded)."""
    out: dict[str, Any] = {}
    for e in entries:
        kind = e["__typename"]
        if kind == "IntMetadataEntry":
            out[e["label"]] = int(e["intRepr"])
        elif kind == "FloatMetadataEntry":
            out[e["label"]] = e["floatValue"]
        elif kind == "JsonMetadataEntry":
            out[e["label"]] = json.loads(e["jsonString"])
        else:
            out[e["label"]] = e.get("text") or e.get("path")
    return out


class DagsterUI:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        self._location: str | None = None

    def query(self, document: str, **variables: Any) -> dict:
        fragments = "\n".join(f for name, f in (("PyErr", PY_ERR), ("MD", METADATA))
                              if f"...{name}" in document)
        r = self.http.post("/graphql", json={"query": f"{document}\n{fragments}",
                                              "variables": variables})
        try:
            body = r.json()
        except ValueError:
            raise GraphQLError(f"GraphQL answered {r.status_code}: {r.text[:500]}") from None
        if r.status_code != 200 or body.get("errors"):
            raise GraphQLError(f"GraphQL {r.status_code}: {body.get('errors')}")
        return body["data"]

    @staticmethod
    def unwrap(result: dict, expected: str) -> dict:
        if result["__typename"] != expected:
            raise GraphQLError(f"expected {expected}, got {result['__typename']}: "
                               f"{result.get('message')}")
        return result

    # -- the code location -------------------------------------------------------------------
    def location(self) -> str:
        """The loaded code location's name; fails with its load error if it did not load."""
        if self._location is None:
            data = self.query("""{ workspaceOrError { __typename ... on Workspace {
                locationEntries { name loadStatus locationOrLoadError { __typename
                  ... on PythonError { ...PyErr } } } } } }""")
            entry = data["workspaceOrError"]["locationEntries"][0]
            loaded = entry["locationOrLoadError"]
            if entry["loadStatus"] != "LOADED" or loaded is None:
                return ""
            self.unwrap(loaded, "RepositoryLocation")
            self._location = entry["name"]
        return self._location

    def selector(self, kind: str, name: str) -> dict:
        return {"repositoryLocationName": self.location(), "repositoryName": REPO,
                f"{kind}Name": name}

    # -- backfills -----------------------------------------------------------------------------
    def launch_backfill(self, partitions: dict[str, list[str] | None], title: str,
                        tags: dict[str, str] | None = None) -> str:
        """A backfill of these partitions per asset (None = all partitions of that asset),
        its runs carrying ``tags``."""
        by_asset = [{"assetKey": _key(a), **({} if keys is None else {
            "partitions": {"ranges": [{"start": k, "end": k} for k in keys]}})}
            for a, keys in partitions.items()]
        data = self.query("""mutation($p: LaunchBackfillParams!) {
            launchPartitionBackfill(backfillParams: $p) { __typename
              ... on LaunchBackfillSuccess { backfillId } ... on PythonError { ...PyErr }
              ... on Error { message } } }""", p={
            "partitionsByAssets": by_asset, "title": title,
            "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]})
        return self.unwrap(data["launchPartitionBackfill"], "LaunchBackfillSuccess")["backfillId"]

    def backfill(self, backfill_id: str) -> dict:
        data = self.query("""query($id: String!) { partitionBackfillOrError(backfillId: $id) {
            __typename ... on PartitionBackfill { id status error { ...PyErr }
              assetBackfillData { assetBackfillStatuses { __typename
                ... on AssetPartitionsStatusCounts { assetKey { path } numPartitionsTargeted
                  numPartitionsMaterialized numPartitionsFailed } } }
              runs(limit: 500) { runId status tags { key value } } }
            ... on PythonError { ...PyErr } } }""", id=backfill_id)
        backfill = self.unwrap(data["partitionBackfillOrError"], "PartitionBackfill")
        for r in backfill["runs"]:
            r["tags"] = _tags(r["tags"])
        return backfill

    def wait_backfill(self, backfill_id: str, timeout: float,
                      alive: Callable[[], str | None] = lambda: None) -> dict:
        """Poll until the backfill is terminal; fail at once if ``alive`` reports a dead
        process (the daemon), else after ``timeout`` with each run's status."""
        deadline = time.monotonic() + timeout
        while True:
            dead = alive()
            if dead:
                raise AssertionError(f"waiting for backfill {backfill_id}: {dead}")
            b = self.backfill(backfill_id)
            if b["status"] in TERMINAL_BACKFILL:
                return b
            if time.monotonic() > deadline:
                runs = ", ".join(f"{r['runId'][:8]} {r['status']}" for r in b["runs"])
                raise AssertionError(f"backfill {backfill_id} still {b['status']} after "
                                     f"{timeout:.0f} s; runs: {runs}")
            time.sleep(2)

    # -- assets, partitions, checks ------------------------------------------------------------
    def partition_statuses(self, asset: str) -> dict[str, list[str]]:
        data = self.query("""query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) {
            __typename ... on AssetNode { assetPartitionStatuses { __typename
              ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions
                failedPartitions unmaterializedPartitions } } } } }""", k=_key(asset))
        node = self.unwrap(data["assetNodeOrError"], "AssetNode")
        statuses = dict(node["assetPartitionStatuses"])
        statuses.pop("__typename")
        return statuses

    def latest_materializations(self, asset: str) -> dict[str, dict]:
        """partition → {run_id, metadata} of its latest materialization."""
        data = self.query("""query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) {
            __typename ... on AssetNode { latestMaterializationByPartition {
              partition runId metadataEntries { ...MD } } } } }""", k=_key(asset))
        node = self.unwrap(data["assetNodeOrError"], "AssetNode")
        return {m["partition"]: {"run_id": m["runId"],
                                 "metadata": metadata_values(m["metadataEntries"])}
                for m in node["latestMaterializationByPartition"] if m}

    def latest_checks(self, asset: str, checks: list[str]) -> dict[str, dict[str, dict]]:
        """check → partition → its latest execution (status, severity, metadata)."""
        fields = "\n".join(
            f'{c}: assetCheckExecutions(assetKey: $k, checkName: "{c}", limit: 200) {{ '
            "runId status partition evaluation { severity success metadataEntries { ...MD } } }"
            for c in checks)
        data = self.query(f"query($k: AssetKeyInput!) {{ {fields} }}", k=_key(asset))
        out: dict[str, dict[str, dict]] = {}
        for check in checks:
            latest: dict[str, dict] = {}
            for e in data[check]:  # newest first
                if e["partition"] not in latest:
                    ev = e["evaluation"] or {}
                    latest[e["partition"]] = {
                        "status": e["status"], "run_id": e["runId"],
                        "severity": ev.get("severity"),
                        "metadata": metadata_values(ev.get("metadataEntries") or [])}
            out[check] = latest
        return out

    # -- runs ----------------------------------------------------------------------------------
    def runs(self, **tags: str) -> list[dict]:
        data = self.query("""query($f: RunsFilter) { runsOrError(filter: $f, limit: 500) {
            __typename ... on Runs { results { runId jobName status creationTime endTime
              assets { key { path } } tags { key value } } } ... on PythonError { ...PyErr } } }""",
                          f={"tags": [{"key": k, "value": v} for k, v in tags.items()]})
        runs = self.unwrap(data["runsOrError"], "Runs")["results"]
        for r in runs:
            r["tags"] = _tags(r["tags"])
        return runs

    def step_failures(self, run_id: str) -> list[str]:
        data = self.query("""query($id: ID!) { logsForRun(runId: $id, limit: 5000) {
            __typename ... on EventConnection { events { __typename
              ... on ExecutionStepFailureEvent { stepKey error { message } } } } } }""",
                          id=run_id)
        events = self.unwrap(data["logsForRun"], "EventConnection")["events"]
        return [f"{e['stepKey']}: {e['error']['message']}" for e in events
                if e["__typename"] == "ExecutionStepFailureEvent"]

    def launch_run(self, job: str, tags: dict[str, str]) -> str:
        """A run of ``job`` through the queued run coordinator (the daemon starts it)."""
        data = self.query("""mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
            __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { ...PyErr }
            ... on Error { message } } }""", p={
            "selector": {"repositoryLocationName": self.location(), "repositoryName": REPO,
                         "jobName": job},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}})
        return self.unwrap(data["launchRun"], "LaunchRunSuccess")["run"]["runId"]

    def run_messages(self, run_id: str) -> list[str]:
        data = self.query("""query($id: ID!) { logsForRun(runId: $id, limit: 5000) {
            __typename ... on EventConnection { events { __typename
              ... on MessageEvent { message } } } } }""", id=run_id)
        return [e.get("message") or "" for e in
                self.unwrap(data["logsForRun"], "EventConnection")["events"]]

    def claimed_slots(self, pool: str) -> list[dict]:
        """Who holds the pool's slots now (run id and step key of each claim)."""
        data = self.query("""query($k: String!) { instance { concurrencyLimit(
            concurrencyKey: $k) { claimedSlots { runId stepKey } } } }""", k=pool)
        return data["instance"]["concurrencyLimit"]["claimedSlots"]
