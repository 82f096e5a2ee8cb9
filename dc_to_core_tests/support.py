"""Helpers for tests: a raw HTTP client for the emulated org (the wire protocol, not our own
connectors) and CSV helpers."""

from __future__ import annotations

import csv
import io
import ssl
import time

import httpx

from dc_to_core.emulator import EmulatorServer
from dc_to_core.emulator.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

V = "/services/data/v64.0"
TERMINAL = ("JobComplete", "Failed", "Aborted")


def tls(server: EmulatorServer) -> ssl.SSLContext | bool:
    """What httpx should verify an emulator's certificate with."""
    return ssl.create_default_context(cafile=str(server.ca_file)) if server.ca_file else False


def csv_text(header: list[str], rows: list[list[object]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


class OrgClient:
    """Talks to an emulator over real HTTP(S) with a core token."""

    def __init__(self, server: EmulatorServer, token: str | None = None) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, verify=tls(server), timeout=60)
        self.token = token or self.new_token()
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def new_token(self) -> str:
        r = self.http.post("/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET})
        r.raise_for_status()
        return r.json()["access_token"]

    def get(self, path: str, **kw: object) -> httpx.Response:
        return self.http.get(path, **kw)  # type: ignore[arg-type]

    def post(self, path: str, **kw: object) -> httpx.Response:
        return self.http.post(path, **kw)  # type: ignore[arg-type]

    def create_job(self, obj: str, operation: str = "upsert",
                   ext: str | None = "External_Id__c") -> str:
        body = {"object": obj, "operation": operation}
        if ext and operation == "upsert":
            body["externalIdFieldName"] = ext
        r = self.http.post(f"{V}/jobs/ingest", json=body)
        assert r.status_code == 200, r.text
        return r.json()["id"]

    def upload(self, job_id: str, data: str | bytes, **headers: str) -> httpx.Response:
        content = data.encode() if isinstance(data, str) else data
        return self.http.put(f"{V}/jobs/ingest/{job_id}/batches", content=content,
                             headers={"Content-Type": "text/csv", **headers})

    def close(self, job_id: str) -> httpx.Response:
        return self.http.patch(f"{V}/jobs/ingest/{job_id}", json={"state": "UploadComplete"})

    def submit(self, obj: str, data: str, **kw: str) -> str:
        job_id = self.create_job(obj, **kw)
        assert self.upload(job_id, data).status_code == 201
        assert self.close(job_id).status_code == 200
        return job_id

    def wait(self, job_id: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            info = self.http.get(f"{V}/jobs/ingest/{job_id}").json()
            if info["state"] in TERMINAL:
                return info
            assert time.monotonic() < deadline, f"job {job_id} still {info['state']}"
            time.sleep(0.02)

    def run_job(self, obj: str, data: str, **kw: str) -> dict:
        return self.wait(self.submit(obj, data, **kw))

    def results(self, job_id: str, kind: str) -> list[dict[str, str]]:
        r = self.http.get(f"{V}/jobs/ingest/{job_id}/{kind}")
        assert r.status_code == 200, r.text
        return parse_csv(r.text)

    def query(self, soql: str) -> dict:
        r = self.http.get(f"{V}/query", params={"q": soql})
        assert r.status_code == 200, r.text
        return r.json()

    def dc_sql(self, sql: str) -> dict:
        r = self.http.post(f"{V}/ssot/query-sql", json={"sql": sql})
        assert r.status_code == 200, r.text
        return r.json()


def rsa_pair() -> tuple[bytes, bytes]:
    """(private key PEM, public key PEM) for JWT tests."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def sign_jwt(private_pem: bytes, claims: dict) -> str:
    """An RS256 JWT, signed with cryptography only."""
    import base64
    import json

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    key = serialization.load_pem_private_key(private_pem, None)
    sig = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64(sig)}"


def auth_for(server: EmulatorServer, **overrides: object):
    """A SalesforceAuth for an emulator, trusting its certificate (verification stays on)."""
    from dc_to_core.salesforce.auth import SalesforceAuth

    settings = {"login_url": server.url, "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
                "ca_bundle": str(server.ca_file) if server.ca_file else None, **overrides}
    return SalesforceAuth(**settings)


def set_faults(server: object, **faults: object) -> None:
    """Switch an emulator's faults (with a fresh token: fast-profile sessions last seconds).
    ``server`` is an EmulatorServer or a SpawnedEmulator."""
    org = OrgClient(server)  # type: ignore[arg-type]
    org.http.patch("/__emulator__/profile", json={"faults": faults}).raise_for_status()
