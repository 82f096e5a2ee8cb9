"""The emulator's ASGI application: routes behind the guard middleware."""

from __future__ import annotations

from starlette.applications import Starlette

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
        exception_handlers={ApiError: api_error_response},
    )
    app.router.redirect_slashes = False
    app.state.org = org
    app.state.cursors = Cursors()
    return Guard(app, org)
