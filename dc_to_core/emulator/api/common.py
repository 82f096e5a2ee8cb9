"""Helpers shared by the route modules."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import ApiError
from ..org import Org


def org_of(request: Request) -> Org:
    return request.app.state.org


def api_version(request: Request) -> float:
    raw = request.path_params.get("version", "64.0")
    try:
        return float(raw)
    except ValueError:
        raise ApiError(404, "NOT_FOUND", f"Unknown API version v{raw}") from None


async def json_body(request: Request) -> dict:
    raw = await request.body()
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
        params.update(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
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
