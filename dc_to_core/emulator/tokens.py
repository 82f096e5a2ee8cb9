"""OAuth for the emulated org: grants, Data Cloud token exchange, revoke, validation.

Error bodies follow Salesforce: ``400 {"error", "error_description"}`` on the token endpoints,
``401 [{"errorCode": "INVALID_SESSION_ID"}]`` on API calls with a bad or expired token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .clock import EmulatedClock
from .errors import invalid_session
from .profile import OrgProfile
from .storage import Storage

CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PASSWORD = "password"
CDP_EXCHANGE = "urn:salesforce:grant-type:external:cdp"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class AppCredentials:
    """The emulated connected app and its integration user."""

    client_id: str
    client_secret: str
    username: str = "integration@dc-to-core.emulator"
    password: str | None = None
    jwt_public_key: bytes | None = None  # PEM public key or certificate


@dataclass
class Session:
    kind: str                 # "core" or "dc"
    client_id: str
    expires_emu: float
    revoked: bool = False
    calls: int = 0


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    """A PEM public key, or the key of a PEM certificate (what a connected app holds)."""
    key = (x509.load_pem_x509_certificate(pem).public_key() if b"CERTIFICATE" in pem
           else serialization.load_pem_public_key(pem))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the JWT key must be RSA")
    return key


class TokenStore:
    def __init__(self, storage: Storage, clock: EmulatedClock, profile: OrgProfile,
                 app: AppCredentials, org_id: str, user_id: str) -> None:
        self.storage, self.clock, self.profile, self.app = storage, clock, profile, app
        self.org_id, self.user_id = org_id, user_id
        self.instance_url = ""   # set once the server knows its address
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        rows = storage.reader().execute(
            "SELECT token, kind, client_id, expires_emu, revoked FROM token WHERE revoked=0 "
            "AND expires_emu > ?", (clock.now(),))
        for token, kind, client, expires, revoked in rows:
            self._sessions[token] = Session(kind, client, expires, bool(revoked))
        self._public_key = load_public_key(app.jwt_public_key) if app.jwt_public_key else None

    # -- grants -------------------------------------------------------------------------------
    def grant(self, params: dict[str, str], basic: tuple[str, str] | None) -> dict:
        """The ``/services/oauth2/token`` response for client credentials, JWT or password."""
        grant = params.get("grant_type", "")
        if grant == CLIENT_CREDENTIALS:
            client_id, secret = basic or (params.get("client_id", ""), params.get("client_secret",
                                                                                  ""))
            self._check_client(client_id, secret)
        elif grant == JWT_BEARER:
            client_id = self._check_assertion(params.get("assertion", ""))
        elif grant == PASSWORD:
            client_id = params.get("client_id", "")
            self._check_client(client_id, params.get("client_secret", ""))
            if (self.app.password is None or params.get("username") != self.app.username
                    or not hmac.compare_digest(params.get("password", ""), self.app.password)):
                raise OAuthError("invalid_grant", "authentication failure")
        else:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        token = f"{self.org_id[:15]}!AQ{secrets.token_urlsafe(72)}"
        self._store(token, Session("core", client_id, self.clock.now() + self.profile.token_ttl_s))
        issued = str(int(time.time() * 1000))
        ident = f"https://login.salesforce.com/id/{self.org_id}/{self.user_id}"
        sig = hmac.new(self.app.client_secret.encode(), (ident + issued).encode(), hashlib.sha256)
        return {"access_token": token, "signature": base64.b64encode(sig.digest()).decode(),
                "scope": "api cdp_query_api cdp_ingest_api", "instance_url": self.instance_url,
                "id": ident, "token_type": "Bearer", "issued_at": issued}

    def _check_client(self, client_id: str, secret: str) -> None:
        if client_id != self.app.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not hmac.compare_digest(secret, self.app.client_secret):
            raise OAuthError("invalid_client", "invalid client credentials")

    def _check_assertion(self, assertion: str) -> str:
        if self._public_key is None:
            raise OAuthError("invalid_grant", "this org has no certificate for the JWT flow")
        try:
            head, body, sig = assertion.split(".")
            header = json.loads(_b64url_decode(head))
            claims = json.loads(_b64url_decode(body))
            if header.get("alg") != "RS256":
                raise ValueError("alg")
            self._public_key.verify(_b64url_decode(sig), f"{head}.{body}".encode(),
                                    padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, InvalidSignature, json.JSONDecodeError, UnicodeDecodeError):
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if claims.get("iss") != self.app.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if claims.get("sub") != self.app.username:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        audiences = (*JWT_AUDIENCES, self.instance_url)
        if str(claims.get("aud", "")).rstrip("/") not in audiences:
            raise OAuthError("invalid_grant", "audience is invalid")
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] < time.time():
            raise OAuthError("invalid_grant", "expired authorization code")
        return self.app.client_id

    def exchange(self, params: dict[str, str]) -> dict:
        """``/services/a360/token``: a core token for a Data Cloud token."""
        if params.get("grant_type") != CDP_EXCHANGE:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        if params.get("subject_token_type") != ACCESS_TOKEN_TYPE:
            raise OAuthError("invalid_request", "unsupported subject_token_type")
        try:
            core = self.validate(params.get("subject_token", ""), "core", count=False)
        except Exception:
            raise OAuthError("invalid_grant", "invalid subject token", 400) from None
        header = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').rstrip(b"=").decode()
        token = f"{header}.{secrets.token_urlsafe(96)}.{secrets.token_urlsafe(43)}"
        ttl = self.profile.dc_token_ttl_s
        self._store(token, Session("dc", core.client_id, self.clock.now() + ttl))
        return {"access_token": token, "instance_url": self.instance_url.split("://", 1)[-1],
                "token_type": "Bearer", "issued_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "expires_in": max(1, int(self.profile.wall(ttl)))}

    def revoke(self, token: str) -> None:
        with self._lock:
            session = self._sessions.pop(token, None)
        if session is None:
            raise OAuthError("invalid_token", "invalid token")
        with self.storage.write_lock:
            self.storage.core.execute("UPDATE token SET revoked=1 WHERE token=?", (token,))

    # -- validation ---------------------------------------------------------------------------
    def validate(self, token: str, kind: str, count: bool = True) -> Session:
        """The live session of ``token``; raises 401 INVALID_SESSION_ID otherwise."""
        every = self.profile.faults.expire_token_every
        with self._lock:
            session = self._sessions.get(token)
            if session is None or session.kind != kind or session.revoked:
                raise invalid_session()
            if session.expires_emu <= self.clock.now() or (every and session.calls >= every):
                del self._sessions[token]
                raise invalid_session()
            if count:
                session.calls += 1
            return session

    def _store(self, token: str, session: Session) -> None:
        with self._lock:
            self._sessions[token] = session
        with self.storage.write_lock:
            self.storage.core.execute(
                "INSERT INTO token VALUES (?,?,?,?,0)",
                (token, session.kind, session.client_id, session.expires_emu))
