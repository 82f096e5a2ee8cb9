"""Bulk API 2.0 ingest: ``/services/data/vXX.X/jobs/ingest[...]``."""

from __future__ import annotations

import gzip
import zlib

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ApiError, not_found
from .common import api_version, job_routes, json_body, negotiated, org_of

BASE = "/services/data/v{version}/jobs/ingest"
RESULT_KINDS = ("successfulresults", "failedresults", "unprocessedrecords")


async def create(request: Request) -> Response:
    body = await json_body(request)
    info = await run_in_threadpool(org_of(request).jobs.create, body, api_version(request))
    return JSONResponse(info)


async def list_jobs(request: Request) -> Response:
    org = org_of(request)
    locator = request.query_params.get("queryLocator")
    return JSONResponse(org.jobs.list(api_version(request), locator))


async def get_job(request: Request) -> Response:
    return JSONResponse(org_of(request).jobs.info(request.path_params["job_id"]))


async def patch_job(request: Request) -> Response:
    org, job_id = org_of(request), request.path_params["job_id"]
    state = (await json_body(request)).get("state")
    if state == "UploadComplete":
        return JSONResponse(await run_in_threadpool(org.close_job, job_id))
    if state == "Aborted":
        return JSONResponse(await run_in_threadpool(org.abort_job, job_id))
    org.jobs.row(job_id)  # 404 first if the job does not exist
    raise ApiError(400, "INVALIDJOBSTATE", f"Invalid state {state!r}: use UploadComplete or "
                   "Aborted")


async def delete_job(request: Request) -> Response:
    await run_in_threadpool(org_of(request).jobs.delete, request.path_params["job_id"])
    return Response(status_code=204)


async def upload(request: Request) -> Response:
    org, job_id = org_of(request), request.path_params["job_id"]
    data = await request.body()
    if "gzip" in request.headers.get("content-encoding", "").lower():
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ApiError(400, "API_ERROR", f"ClientInputError : invalid gzip body: {exc}") \
                from None
    await run_in_threadpool(org.jobs.upload, job_id, data)
    return Response(status_code=201)


async def results(request: Request) -> Response:
    kind = request.path_params["kind"].lower()
    if kind not in RESULT_KINDS:
        raise not_found()
    org = org_of(request)
    data = await run_in_threadpool(org.jobs.results, request.path_params["job_id"], kind)
    return await negotiated(request, Response(data, media_type="text/csv; charset=UTF-8"))


routes = [
    *job_routes(BASE, create, list_jobs, get_job, patch_job, delete_job),
    Route(BASE + "/{job_id}/batches", upload, methods=["PUT"]),
    Route(BASE + "/{job_id}/{kind}", results, methods=["GET"]),
]
