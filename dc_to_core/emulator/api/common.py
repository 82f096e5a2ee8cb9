"""Helpers shared by the route modules."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ApiError
from ..org import Org

Handler = Callable[[Request], Awaitable[Response]]


def org_of(request: Request) -> Org:
    return request.app.state.org


def api_version(request: Request) -> float:
    raw = request.path_params.get("version", "64.0")
    try:
        return float(raw)
    except ValueError:
        raise ApiError(404, "NOT_FOUND", f"Unknown API version v{raw}") from None


async def negotiated(request: Request, response: Response) -> Response:
    """``response`` gzip-compressed when the client sent ``Accept-Encoding: gzip`` and the body
    is worth it, as Salesforce's REST, Bulk and Data Cloud APIs answer such clients (level 1:
    a server compresses for speed)."""
    body = bytes(response.body)
    if "gzip" not in request.headers.get("accept-encoding", "").lower() or len(body) <= 4096:
        return response
    response.body = await run_in_threadpool(gzip.compress, body, 1)
    response.headers["content-encoding"] = "gzip"
    response.headers["content-length"] = str(len(response.body))
    return response


SMALL_BODY = 1 << 20  # any request body but an upload's


def too_large(what: str, limit: int) -> ApiError:
    return ApiError(400, "API_ERROR", f"ClientInputError : {what} exceeds {limit} bytes")


async def bounded_body(request: Request, limit: int = SMALL_BODY,
                       what: str = "the request body") -> bytes:
    """The request body, read in pieces and refused once it exceeds ``limit``."""
    parts, size = [], 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise too_large(what, limit)
        parts.append(piece)
    return b"".join(parts)


async def json_body(request: Request) -> dict:
    raw = await bounded_body(request)
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Invalid JSON in the request body: {exc}") \
            from None
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    return body


async def form_params(request: Request) -> dict[str, str]:
    """Parameters from the query string and a form-encoded body (clients use either)."""
    params = dict(request.query_params)
    if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
        params.update(parse_qsl((await bounded_body(request)).decode("utf-8", "replace"),
                                keep_blank_values=True))
    return params


def basic_auth(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def api_error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body_for(request.url.path), status_code=exc.status)


def job_routes(base: str, create: Handler, list_jobs: Handler, get_job: Handler,
               patch_job: Handler, delete_job: Handler) -> list[Route]:
    """The job collection and job resource routes both Bulk API 2.0 job kinds share."""
    return [Route(base, create, methods=["POST"]), Route(base, list_jobs, methods=["GET"]),
            Route(base + "/{job_id}", get_job, methods=["GET"]),
            Route(base + "/{job_id}", patch_job, methods=["PATCH"]),
            Route(base + "/{job_id}", delete_job, methods=["DELETE"])]
