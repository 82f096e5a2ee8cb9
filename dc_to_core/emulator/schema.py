"""Typed description of the emulated org: Core sObjects and Data Cloud objects."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEMO_SCHEMA = Path(__file__).with_name("demo_org.yaml")

CORE_TYPES = {
    "string", "textarea", "picklist", "date", "datetime", "double", "currency", "percent",
    "int", "boolean", "reference",
}
TEXT_TYPES = {"string", "textarea", "picklist"}
DC_TYPE = re.compile(r"^(VARCHAR|DECIMAL|TIMESTAMP|DATE|BOOLEAN|BIGINT|DOUBLE)(\((\d+),(\d+)\))?$")
SYSTEM_FIELDS = ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp")


class SchemaError(ValueError):
    """The org schema file is invalid; the message names the file, object and field."""


@dataclass(frozen=True)
class CoreField:
    name: str
    type: str
    label: str
    length: int | None = None
    required: bool = False
    external_id: bool = False
    values: tuple[str, ...] = ()
    restricted: bool = False
    precision: int | None = None
    scale: int | None = None
    to: str | None = None
    relationship: str | None = None
    locks_parent: bool = False
    case_sensitive: bool = False  # text compares, sorts and is unique ignoring case unless set
    on_save: str | None = None    # "upper": a trigger upper-cases the value on every save
    createable: bool = True       # false: a value sent on insert fails the row
    updateable: bool = True       # false: a value sent on update fails the row
    defaulted_on_create: bool = False  # the org fills it on insert (required is then optional)
    id_lookup: bool | None = None  # usable to match records (default: an external id is)

    @property
    def matches_records(self) -> bool:
        """idLookup in describe: an upsert key or a relationship may go through it."""
        return self.external_id if self.id_lookup is None else self.id_lookup

    @property
    def folds_case(self) -> bool:
        """Text Salesforce compares ignoring case: every text field but a case-sensitive one."""
        return self.type in TEXT_TYPES and not self.case_sensitive


@dataclass(frozen=True)
class CoreObject:
    name: str
    key_prefix: str
    fields: dict[str, CoreField]

    def field(self, name: str) -> CoreField | None:
        """Case-insensitive field lookup, as Salesforce resolves field names."""
        return next((f for f in self.fields.values() if f.name.lower() == name.lower()), None)

    @property
    def external_ids(self) -> list[str]:
        return [f.name for f in self.fields.values() if f.external_id]

    def relationship(self, name: str) -> CoreField | None:
        """The reference field whose relationship name is ``name`` (``Account`` → AccountId),
        ignoring case, as Salesforce resolves the names of a CSV header."""
        for f in self.fields.values():
            if f.type == "reference" and (f.relationship or "").lower() == name.lower():
                return f
        return None


@dataclass(frozen=True)
class DcColumn:
    name: str
    type: str  # VARCHAR, DECIMAL, TIMESTAMP, DATE, BOOLEAN, BIGINT, DOUBLE
    precision: int | None = None
    scale: int | None = None

    @property
    def declared(self) -> str:
        if self.precision is None:
            return self.type
        return f"{self.type}({self.precision},{self.scale})"


@dataclass(frozen=True)
class OrgSchema:
    core: dict[str, CoreObject]
    datacloud: dict[str, dict[str, DcColumn]] = field(default_factory=dict)

    def object(self, name: str) -> CoreObject | None:
        """Case-insensitive lookup, as Salesforce resolves sObject names."""
        for key, obj in self.core.items():
            if key.lower() == name.lower():
                return obj
        return None


def _core_field(where: str, name: str, spec: dict) -> CoreField:
    ftype = spec.get("type")
    if ftype not in CORE_TYPES:
        raise SchemaError(f"{where}.{name}: type {ftype!r} is not one of {sorted(CORE_TYPES)}")
    if ftype == "reference" and not (spec.get("to") and spec.get("relationship")):
        raise SchemaError(f"{where}.{name}: a reference needs 'to' and 'relationship'")
    if spec.get("on_save") not in (None, "upper"):
        raise SchemaError(f"{where}.{name}: on_save {spec['on_save']!r} is not 'upper'")
    for flag in ("createable", "updateable", "defaulted_on_create", "external_id", "required",
                 "restricted", "case_sensitive", "locks_parent"):
        if not isinstance(spec.get(flag, False), bool):
            raise SchemaError(f"{where}.{name}: {flag} must be true or false")
    known = set(CoreField.__dataclass_fields__) - {"name"}
    unknown = set(spec) - known
    if unknown:
        raise SchemaError(f"{where}.{name}: unknown keys {sorted(unknown)}")
    args = {k: v for k, v in spec.items() if k != "values"}
    args.setdefault("label", name)
    return CoreField(name=name, values=tuple(spec.get("values") or ()), **args)


def _dc_column(where: str, name: str, declared: str) -> DcColumn:
    m = DC_TYPE.match(str(declared).replace(" ", "").upper())
    if not m:
        raise SchemaError(f"{where}.{name}: Data Cloud type {declared!r} is not supported")
    precision = int(m.group(3)) if m.group(3) else None
    scale = int(m.group(4)) if m.group(4) else None
    return DcColumn(name, m.group(1), precision, scale)


def parse_schema(doc: dict, source: str = "<schema>") -> OrgSchema:
    """Validate a schema document (the YAML's parsed form) into an :class:`OrgSchema`."""
    core: dict[str, CoreObject] = {}
    for obj_name, spec in (doc.get("core") or {}).items():
        where = f"{source}: core.{obj_name}"
        prefix = str(spec.get("key_prefix", ""))
        if not re.fullmatch(r"[0-9a-zA-Z]{3}", prefix):
            raise SchemaError(f"{where}: key_prefix must be 3 alphanumerics, got {prefix!r}")
        fields = {n: _core_field(where, n, f or {}) for n, f in (spec.get("fields") or {}).items()}
        core[obj_name] = CoreObject(obj_name, prefix, fields)
    for obj in core.values():
        for f in obj.fields.values():
            if f.type == "reference" and f.to not in core:
                raise SchemaError(f"{source}: core.{obj.name}.{f.name}: unknown object {f.to!r}")
    dc = {
        table: {c: _dc_column(f"{source}: datacloud.{table}", c, t) for c, t in cols.items()}
        for table, cols in (doc.get("datacloud") or {}).items()
    }
    return OrgSchema(core=core, datacloud=dc)


def load_schema(path: str | Path | None = None) -> OrgSchema:
    """The org schema from a YAML file (default: the demo org)."""
    path = Path(path or DEMO_SCHEMA)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SchemaError(f"{path}: cannot read org schema: {exc}") from exc
    return parse_schema(doc, str(path))
