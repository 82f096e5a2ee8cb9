"""``RestApi``: SOQL queries into Arrow (following ``nextRecordsUrl``), counts of an
external id range on a target object, ``limits`` and ``describe``."""

from __future__ import annotations

from urllib.parse import quote

import pyarrow as pa

from .describe import ObjectInfo
from .sqltext import soql_identifier, soql_literal
from .transport import SalesforceApi


def soql_range(key: str, start: str | None, end: str | None) -> str:
    """``[start, end)`` over ``key`` as a SOQL condition (open start includes null keys)."""
    k = soql_identifier(key)
    parts = ([f"{k} >= {soql_literal(start)}"] if start is not None else []) + (
        [f"{k} < {soql_literal(end)}"] if end is not None else [])
    bounded = " AND ".join(parts)
    if start is None:
        return f"({k} = null OR ({bounded}))" if bounded else ""
    return bounded


def range_soql(object_name: str, fields: list[str], key: str, start: str | None,
               end: str | None) -> str:
    """``SELECT fields FROM object`` for the key range ``[start, end)``, ordered by key."""
    where = soql_range(key, start, end)
    select = ", ".join(soql_identifier(f) for f in fields)
    return (f"SELECT {select} FROM {soql_identifier(object_name)}"
            + (f" WHERE {where}" if where else "") + f" ORDER BY {soql_identifier(key)}")


def keys_soql(object_name: str, fields: list[str], key: str, values: list[str]) -> str:
    """``SELECT fields FROM object WHERE key IN (values)``."""
    listed = ", ".join(soql_literal(v) for v in values)
    return (f"SELECT {', '.join(soql_identifier(f) for f in fields)} FROM "
            f"{soql_identifier(object_name)} WHERE {soql_identifier(key)} IN ({listed})")


def _flatten(record: dict, prefix: str = "") -> dict:
    out = {}
    for name, value in record.items():
        if name == "attributes":
            continue
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


class RestApi(SalesforceApi):
    """Core REST API: queries for reconciliation, limits, describe."""

    def query(self, soql: str, fields: list[str] | None = None) -> pa.Table:
        """All records of a SOQL query as a table; relationship fields flattened to
        ``Account.External_Id__c``. ``fields`` fixes the columns (and their order)."""
        c = self.client()
        page = c.request("GET", c.data_path(f"query?q={quote(soql, safe='')}")).json()
        records = [_flatten(r) for r in page.get("records", [])]
        while not page.get("done", True) and page.get("nextRecordsUrl"):
            page = c.request("GET", page["nextRecordsUrl"]).json()
            records += [_flatten(r) for r in page.get("records", [])]
        names = fields or list(dict.fromkeys(k for r in records for k in r))
        return pa.table({n: pa.array([r.get(n) for r in records]) for n in names}) if (
            records) else pa.table({n: pa.array([], pa.string()) for n in names})

    def count(self, soql: str) -> int:
        c = self.client()
        return int(c.request("GET", c.data_path(f"query?q={quote(soql, safe='')}")).json()[
            "totalSize"])

    def count_range(self, object_name: str, key: str, start: str | None, end: str | None
                    ) -> int:
        """Records of ``object_name`` whose ``key`` is in ``[start, end)``."""
        where = soql_range(key, start, end)
        return self.count(f"SELECT COUNT() FROM {soql_identifier(object_name)}"
                          + (f" WHERE {where}" if where else ""))

    def read_range(self, object_name: str, fields: list[str], key: str, start: str | None,
                   end: str | None) -> pa.Table:
        """The given fields of the records in a key range, ordered by key (REST: typed values,
        2,000 records per call; ``BulkApi.read_range`` reads large ranges cheaper)."""
        return self.query(range_soql(object_name, fields, key, start, end), fields)

    def limits(self) -> dict:
        c = self.client()
        return c.request("GET", c.data_path("limits")).json()

    def describe(self, object_name: str) -> dict:
        c = self.client()
        return c.request("GET", c.data_path(f"sobjects/{soql_identifier(object_name)}/describe"
                                            )).json()

    def describe_object(self, object_name: str) -> ObjectInfo:
        """The object's describe, typed (``salesforce.describe``)."""
        return ObjectInfo.from_describe(self.describe(object_name))
