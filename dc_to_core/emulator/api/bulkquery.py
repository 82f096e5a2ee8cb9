"""Bulk API 2.0 query: ``/services/data/vXX.X/jobs/query[...]``, results paged by
``Sforce-Locator`` and ``maxRecords``."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ApiError
from .common import api_version, job_routes, json_body, negotiated, org_of

BASE = "/services/data/v{version}/jobs/query"


async def create(request: Request) -> Response:
    body = await json_body(request)
    info = await run_in_threadpool(org_of(request).queries.create, body, api_version(request))
    return JSONResponse(info)


async def list_jobs(request: Request) -> Response:
    return JSONResponse(org_of(request).queries.list(api_version(request)))


async def get_job(request: Request) -> Response:
    return JSONResponse(org_of(request).queries.info(request.path_params["job_id"]))


async def patch_job(request: Request) -> Response:
    state = (await json_body(request)).get("state")
    queries = org_of(request).queries
    if state != "Aborted":
        queries.job(request.path_params["job_id"])  # 404 first if the job does not exist
        raise ApiError(400, "INVALIDJOBSTATE", f"Invalid state {state!r}: a query job can "
                       "only be set to Aborted")
    return JSONResponse(queries.abort(request.path_params["job_id"]))


async def delete_job(request: Request) -> Response:
    org_of(request).queries.delete(request.path_params["job_id"])
    return Response(status_code=204)


async def results(request: Request) -> Response:
    raw = request.query_params.get("maxRecords")
    if raw is not None and not raw.isdigit():
        raise ApiError(400, "INVALIDLOCATOR", f"maxRecords must be a positive integer: {raw}")
    data, locator, n = await run_in_threadpool(
        org_of(request).queries.results, request.path_params["job_id"],
        request.query_params.get("locator"), int(raw) if raw else None)
    return await negotiated(request, Response(
        data, media_type="text/csv; charset=UTF-8",
        headers={"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(n)}))


routes = [
    *job_routes(BASE, create, list_jobs, get_job, patch_job, delete_job),
    Route(BASE + "/{job_id}/results", results, methods=["GET"]),
]
