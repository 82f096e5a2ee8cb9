"""One request path for every Salesforce API call: bearer auth with one re-login on 401,
transport retries with tenacity (connect/read errors, 5xx, 429, REQUEST_LIMIT_EXCEEDED,
honouring Retry-After), typed errors, and a count of API calls made."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, Field, PrivateAttr
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from .auth import SalesforceAuth, Session
from .errors import (
    OrgUnreachableError,
    SalesforceApiError,
    tls_verification_failed,
    untrusted_certificate,
)

log = logging.getLogger("dc_to_core.salesforce.transport")
RETRY_STATUS = {429, 500, 502, 503, 504}


class _Retryable(Exception):
    """A failure worth another attempt; carries the server's Retry-After if any."""

    def __init__(self, reason: str, retry_after: float | None = None,
                 error: Exception | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.error = error


@dataclass
class RetrySettings:
    attempts: int = 6
    initial_s: float = 0.5
    max_s: float = 30.0


def _error_fields(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "HTTP_ERROR", response.text[:300]
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if isinstance(body, dict):
        return (str(body.get("errorCode") or body.get("error") or "HTTP_ERROR"),
                str(body.get("message") or body.get("error_description") or body)[:500])
    return "HTTP_ERROR", str(body)[:300]


class ApiClient:
    """Calls one org's APIs through a :class:`SalesforceAuth` (its token cache: clients built
    on the same auth object share it; Dagster gives each resource a copy of its own)."""

    def __init__(self, auth: SalesforceAuth, retry: RetrySettings | None = None) -> None:
        self.auth = auth
        self.retry = retry or RetrySettings()
        self.calls = 0
        self._count_lock = threading.Lock()

    def data_path(self, path: str) -> str:
        """``/services/data/vXX.X/<path>``."""
        return f"/services/data/v{self.auth.api_version}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, kind: str = "core", safe: bool = True,
                ok: tuple[int, ...] = (200, 201, 204), **kwargs: object) -> httpx.Response:
        """Send with retries. ``safe`` = the call may be repeated even if the server may have
        processed it (reads, idempotent writes); unsafe calls retry only what surely did not
        reach the server or was refused before processing."""
        where = path.split("?", 1)[0]

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            backoff = min(self.retry.max_s, self.retry.initial_s * 2 ** (state.attempt_number - 1))
            backoff *= 0.5 + random.random()  # jitter
            after = getattr(exc, "retry_after", None)
            return max(backoff, after) if after is not None else backoff

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("%s %s: %s; retry %d/%d in %.1f s", method, where, exc,
                        state.attempt_number, self.retry.attempts - 1,
                        state.next_action.sleep if state.next_action else 0)

        retrying = Retrying(stop=stop_after_attempt(self.retry.attempts), wait=wait,
                            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
                            before_sleep=before_sleep, reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    response = self._send_authenticated(method, path, kind, safe, **kwargs)
        except _Retryable as exc:
            if isinstance(exc.error, SalesforceApiError):
                raise exc.error from None
            raise OrgUnreachableError(f"{method} {where} on {self.auth.login_url} failed after "
                                      f"{self.retry.attempts} attempts: {exc}") from None
        if response.status_code not in ok:
            code, message = _error_fields(response)
            raise SalesforceApiError(response.status_code, code, message, method, where)
        return response

    def _send_authenticated(self, method: str, path: str, kind: str, safe: bool,
                            **kwargs: object) -> httpx.Response:
        session = self.auth.session(kind)
        response = self._send(method, path, session, safe, **kwargs)
        if response.status_code == 401:  # expired or revoked: log in again, replay once
            response = self._send(method, path, self.auth.refresh(session), safe, **kwargs)
        return response

    def _send(self, method: str, path: str, session: Session, safe: bool,
              **kwargs: object) -> httpx.Response:
        url = path if path.startswith("http") else session.base_url + path
        headers = dict(kwargs.pop("headers", None) or {})  # type: ignore[call-overload]
        headers["Authorization"] = f"Bearer {session.token}"
        with self._count_lock:
            self.calls += 1
        where = path.split("?", 1)[0]
        try:
            response = self.auth.http().request(method, url, headers=headers, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            why = tls_verification_failed(exc)
            if why:
                raise untrusted_certificate(httpx.URL(url).host, why, self.auth.ca_bundle
                                            ) from None
            raise _Retryable(f"cannot connect ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            if safe:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
            raise OrgUnreachableError(f"{method} {where}: the connection failed after the "
                                      f"request was sent ({type(exc).__name__})") from exc
        status = response.status_code
        if status in RETRY_STATUS or (status == 403 and b"REQUEST_LIMIT_EXCEEDED"
                                      in response.content):
            code, message = _error_fields(response)
            error = SalesforceApiError(status, code, message, method, where)
            if safe or status in (429, 503, 403):
                raise _Retryable(f"HTTP {status} {code}", _retry_after(response), error)
        return response


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class SalesforceApi(BaseModel):
    """What every Salesforce API client shares: the org's auth and one pooled, retrying
    transport per client instance."""

    auth: SalesforceAuth
    retry_attempts: int = Field(default=6, description="Transport attempts per call.")

    _client: ApiClient | None = PrivateAttr(default=None)

    def client(self) -> ApiClient:
        if self._client is None:
            self._client = ApiClient(self.auth, RetrySettings(attempts=self.retry_attempts))
        return self._client
