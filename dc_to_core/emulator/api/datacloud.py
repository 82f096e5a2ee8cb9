"""Data Cloud queries: tenant Query API v2 (``/api/v2/query``), ``/api/v1/metadata``, and the
Connect ``/services/data/vXX.X/ssot/query-sql`` endpoints on the core host."""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..dcquery import DcQueryError, ResultSet, arrow_stream, connect_metadata, connect_status
from ..org import Org
from .common import json_body, negotiated, org_of

SQL_BASE = "/services/data/v{version}/ssot/query-sql"
CATEGORY = {"__dlm": "Profile", "__dll": "DataLakeObject", "__cio": "CalculatedInsight"}


async def _run(org: Org, body: dict) -> ResultSet:
    sql = body.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise DcQueryError("The request body needs a non-empty 'sql'")
    params = {p["name"]: p.get("value") for p in body.get("sqlParameters") or []
              if isinstance(p, dict) and "name" in p}
    return await run_in_threadpool(org.datacloud.run, sql, org.storage.dc_columns(), params)


async def _wait_ready(org: Org, result: ResultSet, max_emulated_s: float) -> bool:
    """Sleep (wall time) until the query has results, at most ``max_emulated_s``."""
    give_up = org.clock.now() + max_emulated_s
    while (now := org.clock.now()) < result.ready_emu and now < give_up:
        await asyncio.sleep(org.clock.wall_delay(min(result.ready_emu, give_up) - now) + 0.001)
    return org.clock.now() >= result.ready_emu


def _v2_response(org: Org, request: Request, result: ResultSet, offset: int) -> Response:
    body = org.datacloud.v2_page(result, offset, org.profile.dc_v2_batch_rows)
    if request.headers.get("enable-arrow-stream", "").lower() == "true":
        stop = offset + len(body.pop("data"))
        body["arrowStream"] = arrow_stream(result, offset, stop)
    return JSONResponse(body)


async def v2_query(request: Request) -> Response:
    org = org_of(request)
    result = await _run(org, await json_body(request))
    await _wait_ready(org, result, float("inf"))
    return await negotiated(request, _v2_response(org, request, result, 0))


async def v2_next(request: Request) -> Response:
    org = org_of(request)
    result, offset = org.datacloud.next_batch(request.path_params["batch_id"])
    return await negotiated(request, _v2_response(org, request, result, offset))


async def v1_metadata(request: Request) -> Response:
    wanted = request.query_params.get("entityName")
    entities = []
    for table, cols in org_of(request).storage.dc_columns().items():
        if wanted and table != wanted:
            continue
        fields = [{"name": c.name, "displayName": c.name.removesuffix("__c"), "type": c.type}
                  for c in cols.values()]
        key = next((c for c in cols if c.lower() == "externalid__c"), next(iter(cols), ""))
        entities.append({
            "name": table, "displayName": table.rsplit("__", 1)[0],
            "category": CATEGORY.get(table[-5:], "Profile"), "fields": fields,
            "primaryKeys": [{"name": key, "displayName": key, "indexOrder": "1"}],
            "relationships": [], "partitionBy": None})
    return JSONResponse({"metadata": entities})


async def sql_submit(request: Request) -> Response:
    org = org_of(request)
    body = await json_body(request)
    result = await _run(org, body)
    ready = await _wait_ready(org, result, org.profile.dc_sync_wait_ms / 1000)
    status = connect_status(result, org.clock.now())
    limit = min(int(body.get("rowLimit") or org.profile.dc_sql_max_rows),
                org.profile.dc_sql_max_rows)
    data = result.render(0, limit) if ready else []
    return await negotiated(request, JSONResponse({
        "data": data, "metadata": connect_metadata(result.columns), "returnedRows": len(data),
        "status": status, **status}))


async def sql_status(request: Request) -> Response:
    org = org_of(request)
    result = org.datacloud.get(request.path_params["query_id"])
    wait_ms = min(int(request.query_params.get("waitTimeMs", "0") or 0), 10_000)
    await _wait_ready(org, result, wait_ms / 1000 * org.profile.time_scale)
    status = connect_status(result, org.clock.now())
    return JSONResponse({"status": status, **status})


async def sql_rows(request: Request) -> Response:
    org = org_of(request)
    result = org.datacloud.get(request.path_params["query_id"])
    if org.clock.now() < result.ready_emu:
        raise DcQueryError(f"Query {result.query_id} is still running; poll its status first")
    q = request.query_params
    offset = max(0, int(q.get("offset", "0") or 0))
    limit = min(int(q.get("rowLimit") or org.profile.dc_sql_max_rows),
                org.profile.dc_sql_max_rows)
    data = result.render(offset, offset + limit)
    body: dict = {"data": data, "returnedRows": len(data)}
    if q.get("omitSchema", "false").lower() != "true":
        body["metadata"] = connect_metadata(result.columns)
    return await negotiated(request, JSONResponse(body))


async def sql_cancel(request: Request) -> Response:
    org_of(request).datacloud.cancel(request.path_params["query_id"])
    return Response(status_code=204)


routes = [
    Route("/api/v2/query", v2_query, methods=["POST"]),
    Route("/api/v2/query/{batch_id}", v2_next, methods=["GET"]),
    Route("/api/v1/metadata", v1_metadata, methods=["GET"]),
    Route(SQL_BASE, sql_submit, methods=["POST"]),
    Route(SQL_BASE + "/{query_id}", sql_status, methods=["GET"]),
    Route(SQL_BASE + "/{query_id}/rows", sql_rows, methods=["GET"]),
    Route(SQL_BASE + "/{query_id}", sql_cancel, methods=["DELETE"]),
]
