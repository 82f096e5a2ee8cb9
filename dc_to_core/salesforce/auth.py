"""``SalesforceAuth``: logs in to Core (client credentials or JWT bearer), exchanges the Core token
for a Data Cloud token, caches both, and refreshes a token that the org rejected."""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, Field, PrivateAttr

from .errors import (
    AuthenticationError,
    ConfigurationError,
    OrgUnreachableError,
    tls_verification_failed,
    untrusted_certificate,
)

log = logging.getLogger("dc_to_core.salesforce.auth")
CDP_GRANT = "urn:salesforce:grant-type:external:cdp"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DC_REFRESH_MARGIN_S = 60


@dataclass(frozen=True)
class Session:
    """A bearer token and the base URL it is valid for (never printed whole)."""

    kind: str                      # "core" or "dc"
    base_url: str
    token: str = field(repr=False)
    expires_at: float | None = None


def sign_jwt(private_key_pem: str, claims: dict) -> str:
    """An RS256 JWT signed with ``private_key_pem``."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise AuthenticationError("the JWT private key is not a readable, unencrypted PEM key"
                                  ) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AuthenticationError("the JWT private key must be an RSA key")
    head = b64(json.dumps({"alg": "RS256"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64(signature)}"


class SalesforceAuth(BaseModel):
    """How to reach and log in to one Salesforce org (the Dagster layer fills the secrets from
    the environment at run time)."""

    login_url: str = Field(description="My Domain or login host, e.g. https://acme.my.salesforce.com")
    client_id: str = Field(description="Connected app consumer key.")
    client_secret: str | None = Field(default=None, repr=False,
                                      description="Client credentials flow secret (EnvVar).")
    private_key: str | None = Field(default=None, repr=False,
                                    description="PEM RSA key for the JWT bearer flow (EnvVar).")
    username: str | None = Field(default=None, description="Integration user (JWT flow).")
    jwt_audience: str | None = Field(default=None, description="JWT aud; default by login host.")
    api_version: str = Field(default="64.0", description="REST/Bulk API version.")
    ca_bundle: str | None = Field(default=None, description="CA file to trust (the emulator's).")
    verify_tls: bool = Field(default=True, description="Verify certificates (keep on).")
    timeout_s: float = Field(default=120.0, description="Per-request timeout in seconds.")

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _sessions: dict = PrivateAttr(default_factory=dict)
    _http: httpx.Client | None = PrivateAttr(default=None)

    # -- plumbing shared with the API clients --------------------------------------------------
    def verify(self) -> ssl.SSLContext | bool:
        """What to verify server certificates with."""
        if not self.verify_tls:
            log.warning("TLS verification is OFF for %s: only acceptable against a local "
                        "emulator", self.login_url)
            return False
        if self.ca_bundle:
            if not Path(self.ca_bundle).is_file():
                raise ConfigurationError(
                    f"DC_TO_CORE_CA_BUNDLE (ca_bundle) is {self.ca_bundle}, which is not a file; "
                    "set it to the CA certificate (PEM) to trust, or unset it to trust the "
                    "system's CAs")
            try:
                return ssl.create_default_context(cafile=self.ca_bundle)
            except (ssl.SSLError, OSError) as exc:  # no PEM in it, or it cannot be read
                raise ConfigurationError(
                    f"DC_TO_CORE_CA_BUNDLE (ca_bundle) {self.ca_bundle} holds no readable PEM "
                    f"certificate or cannot be read ({exc}); set it to the CA certificate to trust"
                ) from None
        return True

    def http(self) -> httpx.Client:
        """One pooled HTTP client per resource instance (and process)."""
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(verify=self.verify(), timeout=self.timeout_s,
                                          limits=httpx.Limits(max_connections=16))
            return self._http

    # -- sessions -------------------------------------------------------------------------------
    def session(self, kind: str = "core") -> Session:
        """A cached session of ``kind`` ("core" or "dc"), logging in when needed."""
        with self._lock:
            cached = self._sessions.get(kind)
        if cached is not None and (cached.expires_at is None or cached.expires_at > time.time()):
            return cached
        new = self._login() if kind == "core" else self._exchange()
        with self._lock:
            self._sessions[kind] = new
        return new

    def refresh(self, stale: Session) -> Session:
        """Replace a session the org rejected (401), once; another thread may have already."""
        with self._lock:
            current = self._sessions.get(stale.kind)
            if current is not None and current.token != stale.token:
                return current
            self._sessions.pop(stale.kind, None)
            if stale.kind == "core":
                self._sessions.pop("dc", None)
        log.info("the org rejected the %s session; logging in again", stale.kind)
        return self.session(stale.kind)

    def _post_token(self, url: str, form: dict[str, str]) -> dict:
        where = urlparse(url).path
        try:
            r = self.http().post(url, data=form)
        except httpx.HTTPError as exc:
            why = tls_verification_failed(exc)
            if why:
                raise untrusted_certificate(urlparse(url).netloc, why, self.ca_bundle) from None
            raise OrgUnreachableError(f"cannot reach {self.login_url} for {where}: "
                                      f"{type(exc).__name__}: {exc}") from None
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code != 200 or "access_token" not in body:
            reason = f"{body.get('error', r.status_code)}: {body.get('error_description', '')}"
            raise AuthenticationError(f"Salesforce refused {where} at {self.login_url}: "
                                      f"{reason.strip()}")
        return body

    def _login(self) -> Session:
        url = self.login_url.rstrip("/") + "/services/oauth2/token"
        if self.private_key:
            if not self.username:
                raise ConfigurationError("the JWT bearer flow needs a username: "
                                         "DC_TO_CORE_USERNAME is not set")
            claims = {"iss": self.client_id, "sub": self.username, "aud": self._audience(),
                      "exp": int(time.time()) + 180}
            form = {"grant_type": JWT_GRANT, "assertion": sign_jwt(self.private_key, claims)}
        elif self.client_secret:
            form = {"grant_type": "client_credentials", "client_id": self.client_id,
                    "client_secret": self.client_secret}
        else:
            raise ConfigurationError("no credentials: DC_TO_CORE_CLIENT_SECRET (client "
                                     "credentials) and DC_TO_CORE_PRIVATE_KEY (JWT bearer, with "
                                     "DC_TO_CORE_USERNAME) are both not set; set one of them")
        body = self._post_token(url, form)
        return Session("core", body["instance_url"].rstrip("/"), body["access_token"])

    def _audience(self) -> str:
        if self.jwt_audience:
            return self.jwt_audience
        host = urlparse(self.login_url).hostname or ""
        if host.endswith("salesforce.com"):
            sandbox = host.startswith("test.") or ".sandbox." in host
            return f"https://{'test' if sandbox else 'login'}.salesforce.com"
        return self.login_url.rstrip("/")

    def _exchange(self) -> Session:
        core = self.session("core")
        body = self._post_token(core.base_url + "/services/a360/token", {
            "grant_type": CDP_GRANT, "subject_token": core.token,
            "subject_token_type": ACCESS_TOKEN})
        host = str(body["instance_url"])
        scheme = urlparse(core.base_url).scheme or "https"
        base = host if "://" in host else f"{scheme}://{host}"
        lifetime = float(body.get("expires_in", 7200))
        expires = time.time() + lifetime - min(DC_REFRESH_MARGIN_S, lifetime / 10)
        return Session("dc", base.rstrip("/"), body["access_token"], expires)

    def close(self) -> None:
        """Close the pooled HTTP client (a later call opens a new one)."""
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None
