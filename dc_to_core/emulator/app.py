"""The emulator's ASGI application: routes behind the guard middleware."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from .api import admin, bulk, bulkquery, datacloud, oauth, rest
from .api.common import api_error_response
from .api.rest import Cursors
from .errors import ApiError
from .middleware import Guard
from .org import Org


def create_app(org: Org) -> Guard:
    """An ASGI app serving ``org``'s APIs (the caller starts and stops the org)."""
    app = Starlette(
        routes=[*oauth.routes, *bulk.routes, *bulkquery.routes, *datacloud.routes, *rest.routes,
                *admin.routes],
        exception_handlers={ApiError: api_error_response, HTTPException: http_error_response},
    )
    app.router.redirect_slashes = False
    app.state.org = org
    app.state.cursors = Cursors()
    return Guard(app, org)


def http_error_response(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (no route, a method a route lacks) in Salesforce's shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allowed = sorted({m for route in request.app.routes
                          if route.matches(request.scope)[0] != Match.NONE
                          for m in (getattr(route, "methods", None) or ()) if m != "HEAD"})
        error = ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not "
                         f"allowed. Allowed are {','.join(allowed)}")
    elif exc.status_code == 404:
        error = ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    else:
        error = ApiError(exc.status_code, "API_ERROR", str(exc.detail))
    return api_error_response(request, error)
