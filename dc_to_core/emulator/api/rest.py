"""Core REST: ``query`` / ``queryAll`` with ``nextRecordsUrl`` paging, ``limits``, ``describe``."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ApiError, not_found
from ..org import Org
from ..schema import SYSTEM_FIELDS, TEXT_TYPES, CoreField
from ..soql import Compiled, compile_soql
from .common import api_version, org_of

BASE = "/services/data/v{version}"
MAX_CURSORS = 256
SF_TYPES = {"int": "int", "textarea": "textarea", "reference": "reference"}


class Cursors:
    """Query results kept for ``nextRecordsUrl`` paging (bounded, oldest dropped first)."""

    def __init__(self) -> None:
        self._kept: OrderedDict[str, tuple[Compiled, list[tuple]]] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, compiled: Compiled, rows: list[tuple]) -> str:
        key = "01g" + secrets.token_hex(8).upper()
        with self._lock:
            self._kept[key] = (compiled, rows)
            while len(self._kept) > MAX_CURSORS:
                self._kept.popitem(last=False)
        return key

    def get(self, key: str) -> tuple[Compiled, list[tuple]]:
        with self._lock:
            found = self._kept.get(key)
        if found is None:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return found


def _render(value: object, fdef: CoreField | None) -> object:
    if value is None or fdef is None:
        return value
    if fdef.type == "boolean":
        return bool(value)
    if fdef.type == "datetime" and isinstance(value, str) and value.endswith("Z"):
        return value[:-1] + "+0000"
    return value


def _records(compiled: Compiled, rows: list[tuple], version: str) -> list[dict]:
    """REST records: ``attributes`` plus fields; parent fields nested under the relationship."""
    out = []
    obj = compiled.obj.name
    rels = {c[0] for c in compiled.columns if c[0]}
    for row in rows:
        record: dict = {"attributes": {"type": obj,
                                       "url": f"/services/data/{version}/sobjects/{obj}/{row[0]}"}}
        for rel in rels:
            ref = compiled.obj.relationship(rel)
            record[rel] = {"attributes": {"type": ref.to if ref else rel}}
        for (rel, fdef, name), value in zip(compiled.columns, row[1:], strict=True):
            (record[rel] if rel else record)[name] = _render(value, fdef)
        for rel in rels:
            if all(v is None for k, v in record[rel].items() if k != "attributes"):
                record[rel] = None
        out.append(record)
    return out


def _page(org: Org, request: Request, compiled: Compiled, rows: list[tuple], offset: int,
          key: str | None) -> dict:
    size = org.profile.rest_page_rows
    version = f"v{api_version(request):.1f}"
    stop = min(offset + size, len(rows))
    body: dict = {"totalSize": len(rows), "done": stop >= len(rows),
                  "records": _records(compiled, rows[offset:stop], version)}
    if not body["done"]:
        key = key or request.app.state.cursors.keep(compiled, rows)
        body["nextRecordsUrl"] = f"/services/data/{version}/query/{key}-{stop}"
    return body


def _execute(org: Org, soql: str) -> tuple[Compiled, list[tuple]]:
    compiled = compile_soql(soql, org.schema)
    if compiled.count_only:
        (n,) = org.storage.reader().execute(compiled.sql, compiled.params).fetchone()
        return compiled, [()] * n
    sql = compiled.sql.replace("SELECT ", "SELECT t.Id, ", 1)
    return compiled, org.storage.reader().execute(sql, compiled.params).fetchall()


async def query(request: Request) -> Response:
    org = org_of(request)
    soql = request.query_params.get("q")
    if soql is None:
        raise ApiError(400, "MALFORMED_QUERY", "the query parameter q is missing")
    compiled, rows = await run_in_threadpool(_execute, org, soql)
    if compiled.count_only:
        return JSONResponse({"totalSize": len(rows), "done": True, "records": []})
    return JSONResponse(await run_in_threadpool(_page, org, request, compiled, rows, 0, None))


async def query_more(request: Request) -> Response:
    org = org_of(request)
    key, _, offset = request.path_params["locator"].rpartition("-")
    if not offset.isdigit():
        raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    compiled, rows = request.app.state.cursors.get(key)
    return JSONResponse(await run_in_threadpool(_page, org, request, compiled, rows, int(offset),
                                                key))


async def limits(request: Request) -> Response:
    return JSONResponse(org_of(request).limits.report())


async def versions(request: Request) -> Response:
    return JSONResponse([{"label": "Emulated", "url": f"/services/data/v{v}.0", "version":
                          f"{v}.0"} for v in range(58, 67)])


SOAP_TYPES = {"date": "xsd:date", "datetime": "xsd:dateTime", "int": "xsd:int",
              "boolean": "xsd:boolean", "double": "xsd:double", "currency": "xsd:double",
              "percent": "xsd:double", "reference": "tns:ID"}


def _describe_field(f: CoreField) -> dict:
    """One ``fields[]`` entry of ``sobjects/<Object>/describe``, in Salesforce's shape."""
    return {"name": f.name, "label": f.label, "type": SF_TYPES.get(f.type, f.type),
            "soapType": SOAP_TYPES.get(f.type, "xsd:string"), "length": f.length or 0,
            "precision": f.precision or 0, "scale": f.scale or 0,
            "digits": 9 if f.type == "int" else 0, "nillable": not f.required,
            "externalId": f.external_id, "unique": f.external_id,
            "idLookup": f.matches_records, "createable": f.createable,
            "updateable": f.updateable, "defaultedOnCreate": f.defaulted_on_create,
            "calculated": False, "autoNumber": False, "nameField": f.name == "Name",
            "caseSensitive": f.type in TEXT_TYPES and f.case_sensitive,
            "restrictedPicklist": f.restricted,
            "picklistValues": [{"value": v, "label": v, "active": True, "defaultValue": False,
                                "validFor": None} for v in f.values],
            "referenceTo": [f.to] if f.to else [], "relationshipName": f.relationship,
            "cascadeDelete": False, "defaultValue": None}


def _system_field(name: str) -> dict:
    is_id = name == "Id"
    return {"name": name, "label": name, "type": "id" if is_id else "datetime",
            "soapType": "tns:ID" if is_id else "xsd:dateTime", "length": 18 if is_id else 0,
            "precision": 0, "scale": 0, "digits": 0, "nillable": False,
            "externalId": False, "unique": False, "idLookup": is_id, "createable": False,
            "updateable": False, "defaultedOnCreate": True, "calculated": False,
            "autoNumber": False, "nameField": False, "caseSensitive": False,
            "restrictedPicklist": False, "picklistValues": [], "referenceTo": [],
            "relationshipName": None, "cascadeDelete": False, "defaultValue": None}


def _child_relationships(org: Org, name: str) -> list[dict]:
    """Reference fields of other objects that point at ``name`` (master-detail cascades)."""
    return [{"childSObject": other.name, "field": f.name, "relationshipName": None,
             "cascadeDelete": f.locks_parent, "restrictedDelete": False}
            for other in org.schema.core.values() for f in other.fields.values()
            if f.type == "reference" and f.to == name]


async def describe(request: Request) -> Response:
    org = org_of(request)
    obj = org.schema.object(request.path_params["sobject"])
    if obj is None:
        raise not_found()
    fields = [_system_field(n) for n in SYSTEM_FIELDS]
    fields += [_describe_field(f) for f in obj.fields.values()]
    return JSONResponse({"name": obj.name, "label": obj.name, "keyPrefix": obj.key_prefix,
                         "createable": True, "updateable": True, "deletable": True,
                         "queryable": True, "custom": obj.name.endswith("__c"),
                         "fields": fields,
                         "childRelationships": _child_relationships(org, obj.name)})


routes = [
    Route("/services/data", versions, methods=["GET"]),
    Route(BASE + "/query", query, methods=["GET"]),
    Route(BASE + "/queryAll", query, methods=["GET"]),
    Route(BASE + "/query/{locator}", query_more, methods=["GET"]),
    Route(BASE + "/queryAll/{locator}", query_more, methods=["GET"]),
    Route(BASE + "/limits", limits, methods=["GET"]),
    Route(BASE + "/sobjects/{sobject}/describe", describe, methods=["GET"]),
]
