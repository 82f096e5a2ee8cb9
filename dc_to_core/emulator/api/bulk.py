"""Bulk API 2.0 ingest: ``/services/data/vXX.X/jobs/ingest[...]``."""

from __future__ import annotations

import zlib

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ApiError, not_found
from .common import (
    api_version,
    bounded_body,
    job_routes,
    json_body,
    negotiated,
    org_of,
    too_large,
)

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


UPLOAD = "the upload (the job limit, raw; 150 MB after base64)"


async def upload(request: Request) -> Response:
    org, job_id = org_of(request), request.path_params["job_id"]
    limit = org.profile.max_upload_bytes
    data = await bounded_body(request, limit, UPLOAD)
    if "gzip" in request.headers.get("content-encoding", "").lower():
        data = await run_in_threadpool(gunzip, data, limit)
    await run_in_threadpool(org.jobs.upload, job_id, data)
    return Response(status_code=201)


def gunzip(data: bytes, limit: int) -> bytes:
    """A gzip body (one member or several, as ``gzip.decompress`` takes it) inflated in
    pieces and refused once it expands beyond ``limit``."""
    out: list[bytes] = []
    size = 0

    def take(piece: bytes) -> None:
        nonlocal size
        size += len(piece)
        if size > limit:
            raise too_large(UPLOAD, limit)
        out.append(piece)

    try:
        while data:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            while data:
                take(inflater.decompress(data, 1 << 20))
                data = inflater.unconsumed_tail
            take(inflater.flush())
            if not inflater.eof:
                raise zlib.error("truncated gzip stream")
            data = inflater.unused_data  # the next member, if any
    except zlib.error as exc:
        raise ApiError(400, "API_ERROR", f"ClientInputError : invalid gzip body: {exc}") \
            from None
    return b"".join(out)


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
