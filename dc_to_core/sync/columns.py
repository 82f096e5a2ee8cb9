"""What a sync sends, column by column: mapped fields with their policies (a constant, a
default, a value map, whether a null clears the Core field) and lookups (relationship
columns, resolved by another sync of the project or by records already in Core).

Parsed from a sync's ``fields`` and ``lookups``; every error names the file, the sync and
the field (``where``) and carries the key's path for the YAML loader.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

FIELD_TYPES = ("string", "number", "int", "date", "datetime", "boolean")
ON_NULL = ("clear", "keep")
BOOLEAN_TEXT = ("true", "false", "1", "0", "yes", "no")
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RELATIONSHIP = re.compile(r"^[A-Za-z][A-Za-z0-9_]*\.[A-Za-z][A-Za-z0-9_]*$")
FIELD_KEYS = {"source", "type", "empty_as_null", "compare", "on_null", "value", "default", "map"}
LOOKUP_KEYS = {"source", "sync", "locks_parent", "on_null"}


class ColumnError(ValueError):
    """A field or lookup declaration is invalid: ``path`` is its key path in the sync."""

    def __init__(self, where: str, message: str, *path: str) -> None:
        super().__init__(f"{where}: {message}")
        self.path = path
        self.reason = message


@dataclass(frozen=True)
class FieldMap:
    target: str
    source: str | None          # None: a constant (``value``)
    type: str = "string"
    empty_as_null: bool = True
    compare: bool = True   # false: fields_match leaves it out (a field the org rewrites)
    on_null: str = "clear"      # clear: a null clears the Core field (#N/A); keep: leaves it
    value: str | None = None    # a constant sent on every row (text, coerced to ``type``)
    default: str | None = None  # sent where the source is null
    mapping: tuple[tuple[str, str], ...] = ()  # source value -> target value (picklists)

    @property
    def keeps_nulls(self) -> bool:
        return self.on_null == "keep"


@dataclass(frozen=True)
class Lookup:
    """A relationship column of the Bulk CSV (``Account.External_Id__c``): the related record
    is found by the value of ``source`` in its external id (or idLookup) field."""

    relationship: str            # <relationship name>.<the related object's matching field>
    source: str                  # the source column holding the related record's key
    sync: str | None = None      # the sync that loads the related records (loaded first);
                                 # None: records already in Core
    locks_parent: bool = False   # writing the row locks the related record (master-detail)
    on_null: str = "clear"       # clear: a null empties the lookup; keep: leaves it
    from_parent: bool = field(default=False, compare=False)  # declared as ``parent:``

    @property
    def name(self) -> str:
        """The relationship name: ``Account``, ``Parent``, ``Primary_Contact__r``."""
        return self.relationship.split(".", 1)[0]

    @property
    def through(self) -> str:
        """The related object's field the key is matched against."""
        return self.relationship.split(".", 1)[1]

    @property
    def reference_field(self) -> str:
        """The child's reference field holding the parent's Id: ``Account.…`` → ``AccountId``,
        ``Parent__r.…`` → ``Parent__c``."""
        return self.name[:-3] + "__c" if self.name.endswith("__r") else self.name + "Id"

    @property
    def keeps_nulls(self) -> bool:
        return self.on_null == "keep"


def _scalar(where: str, what: str, value: object, ftype: str, *path: str) -> str:
    """A constant of the config as text, checked against the field's type."""
    if isinstance(value, dt.datetime | dt.date):
        value = value.isoformat()
    if isinstance(value, bool):
        value = "true" if value else "false"
    if not isinstance(value, str | int | float):
        raise ColumnError(where, f"{what} must be a single value, got {value!r}", *path)
    text = str(value)
    try:
        if ftype == "number":
            float(text)
        elif ftype == "int":
            int(text)
        elif ftype == "date":
            dt.date.fromisoformat(text)
        elif ftype == "datetime":
            dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        elif ftype == "boolean" and text.lower() not in BOOLEAN_TEXT:
            raise ValueError(text)
    except ValueError:
        raise ColumnError(where, f"{what} {value!r} is not a valid {ftype}", *path) from None
    return text


def _only(where: str, spec: dict, allowed: set[str], path: tuple[str, ...]) -> None:
    """``spec`` has no key but ``allowed``; else the error names the first other one."""
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ColumnError(where, f"unknown keys {unknown} (allowed: "
                          f"{', '.join(sorted(allowed))})", *path, unknown[0])


def _on_null(where: str, spec: dict, *path: str) -> str:
    on_null = spec.get("on_null", "clear")
    if on_null not in ON_NULL:
        raise ColumnError(where, f"on_null {on_null!r} is not one of clear, keep (clear: a "
                          "null empties the Core field; keep: leaves what Core holds)",
                          *path, "on_null")
    return on_null


def _mapping(where: str, raw: object, *path: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict) or not raw:
        raise ColumnError(where, "map must map source values to target values, e.g. "
                          "{won: Closed Won}", *path, "map")
    out = []
    for k, v in raw.items():
        if not isinstance(k, str) or not isinstance(v, str | int | float) or isinstance(
                v, bool):
            raise ColumnError(where, f"map entry {k!r}: {v!r} must be text to text (quote "
                              "values YAML reads as booleans or numbers, e.g. 'yes')",
                              *path, "map")
        out.append((k, str(v)))
    return tuple(out)


def parse_field(where: str, target: object, spec: object) -> FieldMap:
    """One entry of ``fields``: ``Target: Source__c`` or a mapping of FIELD_KEYS."""
    if not FIELD_NAME.match(str(target)):
        raise ColumnError(where, f"target field name {target!r} is not a valid API name",
                          "fields", str(target))
    target = str(target)
    path = ("fields", target)
    if isinstance(spec, str):
        spec = {"source": spec}
    if not isinstance(spec, dict):
        raise ColumnError(where, "needs a source column: 'Field: Source__c', {source: "
                          "Source__c} or a constant {value: ...}", *path)
    _only(where, spec, FIELD_KEYS, path)
    has_source, has_value = isinstance(spec.get("source"), str), "value" in spec
    if has_source == has_value:
        raise ColumnError(where, "needs exactly one of source (a Data Cloud column) and "
                          "value (a constant)" if has_value else "needs a source column: "
                          "'Field: Source__c' or {source: Source__c}", *path)
    for flag in ("compare", "empty_as_null"):
        if not isinstance(spec.get(flag, True), bool):
            raise ColumnError(where, f"{flag} must be true or false, got {spec[flag]!r}",
                              *path, flag)
    ftype = spec.get("type", "string")
    if ftype not in FIELD_TYPES:
        raise ColumnError(where, f"type {ftype!r} is not one of {', '.join(FIELD_TYPES)}",
                          *path, "type")
    if has_value and ({"default", "map", "on_null"} & set(spec)):
        raise ColumnError(where, "a constant (value) takes no default, map or on_null",
                          *path, "value")
    value = _scalar(where, "value", spec["value"], ftype, *path, "value") if has_value \
        else None
    default = _scalar(where, "default", spec["default"], ftype, *path, "default") \
        if "default" in spec else None
    mapping = _mapping(where, spec["map"], *path) if "map" in spec else ()
    if mapping and ftype != "string":
        raise ColumnError(where, "map translates text values (picklists): the field's type "
                          "must be string", *path, "map")
    return FieldMap(target, spec.get("source"), ftype, spec.get("empty_as_null", True),
                    spec.get("compare", True), _on_null(where, spec, *path), value, default,
                    mapping)


def parse_lookup(where: str, relationship: object, spec: object, path: tuple[str, ...]
                 ) -> Lookup:
    """One entry of ``lookups``: ``Rel.Field: Source__c`` or a mapping of LOOKUP_KEYS."""
    if not isinstance(relationship, str) or not RELATIONSHIP.match(relationship):
        raise ColumnError(where, f"{relationship!r} is not a relationship column: write "
                          "<relationship name>.<external id field of the related object>, "
                          "e.g. Account.External_Id__c or Primary_Contact__r.External_Id__c",
                          *path)
    if isinstance(spec, str):
        spec = {"source": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("source"), str):
        raise ColumnError(where, "needs the source column holding the related record's key: "
                          "'Account.External_Id__c: AccountKey__c' or {source: ...}", *path)
    _only(where, spec, LOOKUP_KEYS, path)
    sync = spec.get("sync")
    if sync is not None and (not isinstance(sync, str) or not FIELD_NAME.match(sync)):
        raise ColumnError(where, f"sync must name a sync of the project, got {sync!r}",
                          *path, "sync")
    locks = spec.get("locks_parent", False)
    if not isinstance(locks, bool):
        raise ColumnError(where, f"locks_parent must be true or false, got {locks!r}",
                          *path, "locks_parent")
    return Lookup(relationship, spec["source"], sync, locks, _on_null(where, spec, *path))
