"""Emulator-only routes under ``/__emulator__`` (need a core token like every API route)."""

from __future__ import annotations

import dataclasses
import sqlite3

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ApiError
from ..org import Org
from ..storage import quote_ident
from .common import json_body, org_of


async def get_profile(request: Request) -> Response:
    org = org_of(request)
    return JSONResponse({"profile": org.profile.model_dump(), "emulated_now_s": org.clock.now(),
                         "fields": {k: v.description for k, v in
                                    type(org.profile).model_fields.items() if v.description}})


async def patch_profile(request: Request) -> Response:
    org = org_of(request)
    return JSONResponse({"profile": org.update_profile(await json_body(request)).model_dump()})


async def get_clock(request: Request) -> Response:
    """The org's emulated time, cheaply: clients that pace themselves in org time poll it."""
    org = org_of(request)
    return JSONResponse({"emulated_now_s": org.clock.now(), "time_scale": org.clock.scale})


def holdings(org: Org) -> dict:
    """Row counts of every Core object and Data Cloud object."""
    core = {name: org.storage.reader().execute(f"SELECT count(*) FROM {quote_ident(name)}")
            .fetchone()[0] for name in org.schema.core}
    dc = {name: org.storage.reader("dc").execute(f"SELECT count(*) FROM {quote_ident(name)}")
          .fetchone()[0] for name in org.storage.dc_columns()}
    return {"core": core, "datacloud": dc}


def last_job_end(org: Org) -> float | None:
    """Emulated time at which the latest ingest job became terminal."""
    return org.storage.reader().execute("SELECT max(ended_emu) FROM ingest_job").fetchone()[0]


async def stats(request: Request) -> Response:
    org = org_of(request)
    body = {"engine": dataclasses.asdict(org.engine.stats()),
            "holdings": await run_in_threadpool(holdings, org),
            "last_job_end_s": await run_in_threadpool(last_job_end, org),
            "limits": org.limits.report(), "emulated_now_s": org.clock.now(),
            "datacloud_statements": org.datacloud.statements}
    return JSONResponse(body)


async def engine(request: Request) -> Response:
    """The engine's counters and the emulated time, cheaply (no holdings): what a sampler
    polls every second; ``?object=Name`` adds that Core object's record count."""
    org = org_of(request)
    body: dict = {"engine": dataclasses.asdict(org.engine.stats()),
                  "emulated_now_s": org.clock.now()}
    name = request.query_params.get("object")
    if name:
        if name not in org.schema.core:
            raise ApiError(404, "NOT_FOUND", f"no Core object {name!r} in this org")
        body["records"] = await run_in_threadpool(
            lambda: org.storage.reader().execute(f"SELECT count(*) FROM {quote_ident(name)}")
            .fetchone()[0])
    return JSONResponse(body)


def _execute_dc(org: Org, sql: str, params: list | dict) -> int:
    with org.storage.write_lock:
        try:
            cur = org.storage.dc.execute(sql, params)
        except sqlite3.Error as exc:
            raise ApiError(400, "QUERY_ERROR", f"Data Cloud statement failed: {exc}") from None
        return cur.rowcount


async def datacloud_sql(request: Request) -> Response:
    """Change Data Cloud data (tests and demos): ``{"sql": ..., "params": [...]}``."""
    body = await json_body(request)
    rows = await run_in_threadpool(_execute_dc, org_of(request), str(body.get("sql", "")),
                                   body.get("params") or [])
    return JSONResponse({"rowcount": rows})


routes = [
    Route("/__emulator__/profile", get_profile, methods=["GET"]),
    Route("/__emulator__/profile", patch_profile, methods=["PATCH"]),
    Route("/__emulator__/stats", stats, methods=["GET"]),
    Route("/__emulator__/clock", get_clock, methods=["GET"]),
    Route("/__emulator__/engine", engine, methods=["GET"]),
    Route("/__emulator__/datacloud/sql", datacloud_sql, methods=["POST"]),
]
