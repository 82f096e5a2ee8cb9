"""The emulator's front door: every request passes here before reaching a route.

It strips trailing slashes (Salesforce accepts both spellings), applies injected faults,
requires a valid bearer token (a core token for ``/services/data`` and ``/__emulator__``, a Data
Cloud token for the tenant ``/api`` routes), counts API requests against the org's allocation
and reports the usage in the ``Sforce-Limit-Info`` header.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .errors import ApiError
from .faults import Fault, FaultInjector
from .limits import API
from .org import Org

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
log = logging.getLogger("dc_to_core.emulator.http")
PUBLIC = ("/services/oauth2/", "/services/a360/token")


class InjectedReset(ConnectionResetError):
    """Raised to make the server drop the connection (an injected fault)."""


def token_kind(path: str) -> str | None:
    """Which token a path needs: "core", "dc", None (public) — or "" for an unknown path."""
    if path.startswith(PUBLIC):
        return None
    if path.startswith(("/services/data", "/__emulator__")):
        return "core"
    if path.startswith("/api/"):
        return "dc"
    return ""


async def send_json(send: Send, status: int, body: object,
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json;charset=UTF-8"),
        (b"content-length", str(len(data)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


class Guard:
    def __init__(self, app: ASGIApp, org: Org) -> None:
        self.app = app
        self.org = org
        self.faults = FaultInjector(org.profile.faults)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
            scope = dict(scope, path=path, raw_path=path.encode())
        kind = token_kind(path)
        if kind == "":
            return await send_json(send, 404, ApiError(
                404, "NOT_FOUND", f"The requested resource does not exist: {path}").body())
        fault = self.faults.decide(path)
        if fault is not None and await self._before(fault, send, path):
            return
        if kind is not None:
            try:
                self._authorize(scope, kind, path)
            except ApiError as err:
                return await send_json(send, err.status, err.body_for(path))
        if fault is not None and fault.kind == "reset_after":
            send = _truncating(send)
        if path.startswith("/services/data"):
            send = _with_limit_info(send, self.org)
        await self.app(scope, receive, send)

    def _authorize(self, scope: Scope, kind: str, path: str) -> None:
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token:
            raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        self.org.tokens.validate(token.strip(), kind)
        if path.startswith("/services/data") and not self.org.limits.take(API):
            raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")

    async def _before(self, fault: Fault, send: Send, path: str) -> bool:
        """Apply a fault that acts before the route; True if the request is answered."""
        if fault.kind == "slow":
            await asyncio.sleep(fault.seconds)
            return False
        if fault.kind == "error":
            await send_json(send, fault.status, ApiError(
                fault.status, "SERVER_UNAVAILABLE" if fault.status == 503 else "UNKNOWN_EXCEPTION",
                "An unexpected error occurred (injected fault)").body_for(path))
            return True
        if fault.kind == "throttle":
            await send_json(send, 429, ApiError(
                429, "REQUEST_LIMIT_EXCEEDED", f"Too many requests; retry after "
                f"{fault.seconds:g} s (injected fault)").body_for(path),
                [(b"retry-after", f"{fault.seconds:g}".encode())])
            return True
        if fault.kind == "limit":
            await send_json(send, 403, ApiError(
                403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.").body_for(path))
            return True
        if fault.kind == "reset_before":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"1024")]})
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            raise InjectedReset("injected connection reset before the request was handled")
        return False


def _with_limit_info(send: Send, org: Org) -> Send:
    """A ``send`` that adds ``Sforce-Limit-Info: api-usage=<used>/<max>`` to the response, as
    Salesforce does on REST (and Bulk API 2.0) responses."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            usage = f"api-usage={org.limits.used(API)}/{org.limits.max(API)}".encode()
            message = dict(message, headers=[*message.get("headers", []),
                                             (b"sforce-limit-info", usage)])
        await send(message)

    return wrapped


def _truncating(send: Send) -> Send:
    """A ``send`` that drops the connection half-way through the response body."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":  # promise a body even for an empty 201
            headers = [(k, v) for k, v in message.get("headers", []) if k != b"content-length"]
            message = dict(message, headers=[*headers, (b"content-length", b"1024")])
        if message["type"] == "http.response.body":
            body = message.get("body", b"")
            await send({"type": "http.response.body", "body": body[: len(body) // 2],
                        "more_body": True})
            raise InjectedReset("injected connection reset mid-response")
        await send(message)

    return wrapped
