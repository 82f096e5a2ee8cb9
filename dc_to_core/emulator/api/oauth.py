"""OAuth 2.0 token endpoint, revoke, and the Data Cloud token exchange."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..tokens import OAuthError
from .common import basic_auth, form_params, org_of


async def token(request: Request) -> Response:
    params = await form_params(request)
    try:
        return JSONResponse(org_of(request).tokens.grant(params, basic_auth(request)))
    except OAuthError as err:
        return JSONResponse(err.body(), status_code=err.status)


async def revoke(request: Request) -> Response:
    params = await form_params(request)
    try:
        org_of(request).tokens.revoke(params.get("token", ""))
    except OAuthError as err:
        return JSONResponse(err.body(), status_code=err.status)
    return Response(status_code=200)


async def exchange(request: Request) -> Response:
    params = await form_params(request)
    try:
        return JSONResponse(org_of(request).tokens.exchange(params))
    except OAuthError as err:
        return JSONResponse(err.body(), status_code=err.status)


routes = [
    Route("/services/oauth2/token", token, methods=["POST"]),
    Route("/services/oauth2/revoke", revoke, methods=["POST", "GET"]),
    Route("/services/a360/token", exchange, methods=["POST"]),
]
