"""Sync specs: which Data Cloud object loads which Core object, and how its fields map.

A sync is configuration: one ``defs/<sync>/defs.yaml`` per sync (the ``attributes`` of a
``dc_to_core.SalesforceSync`` component), validated here into typed objects. Every error
names the file, the sync and the field (and carries the key's path, so the component can
point at its line), so a bad file fails ``dg check defs`` and ``dagster definitions validate``
with a message an operator can act on.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).parents[1] / "config"
DEFS_DIR = Path(__file__).parents[1] / "defs"   # the project's component instances
SYNC_TYPE = "dc_to_core.SalesforceSync"
SCHEDULING_KEYS = {"nightly_cron", "fresh_by_cron",  # read by the Dagster layer only
                   "fresh_within_hours"}
FIELD_TYPES = ("string", "number", "int", "date", "datetime", "boolean")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
SOURCE_OBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*__(dlm|dll|cio)$")
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class SyncConfigError(ValueError):
    """A sync declaration is invalid; ``path`` is the offending key within the sync (e.g.
    ``("fields", "CloseDate", "type")``), so a YAML loader can point at its line."""

    def __init__(self, message: str, path: tuple[str, ...] = (), reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason or message


@dataclass(frozen=True)
class FieldMap:
    target: str
    source: str
    type: str = "string"
    empty_as_null: bool = True
    compare: bool = True   # false: fields_match leaves it out (a field the org rewrites)


@dataclass(frozen=True)
class ParentRef:
    sync: str           # the sync that loads the parents
    relationship: str   # target CSV column, e.g. Account.External_Id__c
    source: str         # source column holding the parent's external id

    @property
    def reference_field(self) -> str:
        """The child's reference field holding the parent's Id: ``Account.…`` → ``AccountId``,
        ``Parent__r.…`` → ``Parent__c``."""
        name = self.relationship.split(".", 1)[0]
        return name[:-3] + "__c" if name.endswith("__r") else name + "Id"


DELETE_MODES = ("none", "mirror")


@dataclass(frozen=True)
class SyncSpec:
    name: str
    source: str
    target: str
    source_key: str
    target_key: str
    fields: tuple[FieldMap, ...]
    parent: ParentRef | None = None
    modified: str | None = None
    operation: str = "upsert"
    file: str = ""
    owners: tuple[str, ...] = ()
    key_case_sensitive: bool = False  # as the target's external id field is declared
    deletes: str = "none"             # "mirror": keys gone from the source are deleted in Core
    hard_delete: bool = False         # ... with hardDelete (no recycle bin)
    max_delete_share: float = 0.05    # more of a partition's known rows than this: refused

    @property
    def mirrors_deletes(self) -> bool:
        return self.deletes == "mirror"

    @property
    def folds_key(self) -> bool:
        """Keys match ignoring case (Salesforce's default for an external id): ``OPP-X`` and
        ``opp-x`` are one record, so ranges, duplicates and checks compare keys folded."""
        return not self.key_case_sensitive

    @property
    def source_columns(self) -> list[str]:
        """Every source column the sync reads (key first)."""
        cols = [self.source_key, *(f.source for f in self.fields)]
        if self.parent:
            cols.append(self.parent.source)
        return list(dict.fromkeys(cols))

    @property
    def mapping_fingerprint(self) -> str:
        """Changes exactly when what the sync sends changes (objects, key, fields, types,
        parent): the asset's code version."""
        mapping = [self.source, self.target, self.source_key, self.target_key, self.operation,
                   [(f.target, f.source, f.type, f.empty_as_null) for f in self.fields],
                   [self.parent.relationship, self.parent.source] if self.parent else None]
        if self.key_case_sensitive:  # appended, so the default leaves versions as they were
            mapping.append("case-sensitive key")
        return hashlib.sha256(json.dumps(mapping).encode()).hexdigest()[:16]

    @property
    def target_columns(self) -> list[str]:
        """The columns of the Bulk upload, key first."""
        cols = [self.target_key, *(f.target for f in self.fields)]
        if self.parent:
            cols.append(self.parent.relationship)
        return cols


@dataclass
class SyncSet:
    syncs: dict[str, SyncSpec] = field(default_factory=dict)

    def ordered(self) -> list[SyncSpec]:
        """Parents before children (syncs caught in a parent cycle are left out)."""
        done: list[SyncSpec] = []
        pending = list(self.syncs.values())
        while pending:
            ready = [s for s in pending if not s.parent or s.parent.sync in {d.name for d in done}]
            if not ready:
                break
            done += ready
            pending = [s for s in pending if s not in ready]
        return done

    def children(self, name: str) -> list[SyncSpec]:
        return [s for s in self.syncs.values() if s.parent and s.parent.sync == name]


def _fail(where: str, message: str, *path: str) -> SyncConfigError:
    return SyncConfigError(f"{where}: {message}", tuple(path), message)


def _field(where: str, target: str, spec: object) -> FieldMap:
    if not FIELD_NAME.match(str(target)):
        raise _fail(where, f"target field name {target!r} is not a valid API name", "fields",
                    str(target))
    if isinstance(spec, str):
        spec = {"source": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("source"), str):
        raise _fail(where, "needs a source column: 'Field: Source__c' or {source: Source__c}",
                    "fields", target)
    unknown = set(spec) - {"source", "type", "empty_as_null", "compare"}
    if unknown:
        raise _fail(where, f"unknown keys {sorted(unknown)} (allowed: compare, source, type, "
                    "empty_as_null)", "fields", target, sorted(unknown)[0])
    if not isinstance(spec.get("compare", True), bool):
        raise _fail(where, f"compare must be true or false, got {spec['compare']!r}", "fields",
                    target, "compare")
    ftype = spec.get("type", "string")
    if ftype not in FIELD_TYPES:
        raise _fail(where, f"type {ftype!r} is not one of {', '.join(FIELD_TYPES)}", "fields",
                    target, "type")
    return FieldMap(str(target), spec["source"], ftype, bool(spec.get("empty_as_null", True)),
                    spec.get("compare", True))


def _sync(where: str, raw: object, file: str) -> SyncSpec:
    if not isinstance(raw, dict):
        raise _fail(where, "each sync must be a mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise _fail(where, f"'name' must be a plain identifier, got {name!r}", "name")
    where = f"{file}: sync {name!r}"
    allowed = {"name", "source", "target", "key", "fields", "parent", "modified", "operation",
               "owners", "deletes", "hard_delete", "max_delete_share"}
    unknown = set(raw) - allowed - SCHEDULING_KEYS
    if unknown:
        raise _fail(where, f"unknown keys {sorted(unknown)} "
                    f"(allowed: {', '.join(sorted(allowed))})", sorted(unknown)[0])
    source, target = raw.get("source"), raw.get("target")
    if not isinstance(source, str) or not SOURCE_OBJECT.match(source):
        raise _fail(where, f"'source' must be a Data Cloud object (…__dlm/__dll/__cio), "
                    f"got {source!r}", "source")
    if not isinstance(target, str) or not NAME.match(target):
        raise _fail(where, f"'target' must be an sObject API name, got {target!r}", "target")
    key = raw.get("key")
    if not isinstance(key, dict) or not all(isinstance(key.get(k), str) for k in ("source",
                                                                                "target")):
        raise _fail(where, "'key' needs {source: <Data Cloud column>, target: <external id "
                    "field>}", "key")
    _only(where, "key", key, {"source", "target", "case_sensitive"})
    case_sensitive = key.get("case_sensitive", False)
    if not isinstance(case_sensitive, bool):
        raise _fail(f"{where}, key", f"case_sensitive must be true or false (as the "
                    f"{target}.{key['target']} field is declared in Salesforce), got "
                    f"{case_sensitive!r}", "key", "case_sensitive")
    fields_raw = raw.get("fields")
    if not isinstance(fields_raw, dict) or not fields_raw:
        raise _fail(where, "'fields' must map at least one target field to a source column",
                    "fields")
    fields = tuple(_field(f"{where}, field {t!r}", t, s) for t, s in fields_raw.items())
    if key["target"] in {f.target for f in fields}:
        raise _fail(f"{where}, field {key['target']!r}", "the external id is mapped by 'key'; "
                    "remove it from 'fields'", "fields", key["target"])
    parent = None
    if raw.get("parent") is not None:
        p = raw["parent"]
        if not isinstance(p, dict) or not all(isinstance(p.get(k), str) for k in (
                "sync", "relationship", "source")):
            raise _fail(f"{where}, parent", "needs {sync, relationship, source}", "parent")
        _only(where, "parent", p, {"sync", "relationship", "source"})
        if "." not in p["relationship"]:
            raise _fail(f"{where}, parent", f"relationship {p['relationship']!r} must look like "
                        "Account.External_Id__c", "parent", "relationship")
        parent = ParentRef(p["sync"], p["relationship"], p["source"])
    operation = raw.get("operation", "upsert")
    if operation != "upsert":
        raise _fail(where, f"operation {operation!r} is not supported (upsert only)",
                    "operation")
    owners = raw.get("owners") or []
    if not isinstance(owners, list) or not all(isinstance(o, str) for o in owners):
        raise _fail(where, "'owners' must be a list of emails or team:<name>", "owners")
    deletes, hard, share = _deletes(where, raw)
    return SyncSpec(name, source, target, key["source"], key["target"], fields, parent,
                    raw.get("modified"), operation, file, tuple(owners), case_sensitive,
                    deletes, hard, share)


def _deletes(where: str, raw: dict) -> tuple[str, bool, float]:
    deletes = raw.get("deletes", "none")
    if deletes not in DELETE_MODES:
        raise _fail(where, f"deletes {deletes!r} is not one of {', '.join(DELETE_MODES)} "
                    "(mirror: records whose key is gone from the source are deleted in Core)",
                    "deletes")
    hard = raw.get("hard_delete", False)
    if not isinstance(hard, bool):
        raise _fail(where, f"hard_delete must be true or false, got {hard!r}", "hard_delete")
    share = raw.get("max_delete_share", 0.05)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise _fail(where, f"max_delete_share must be a share between 0 and 1 (0.05 = 5 % of "
                    f"a partition's rows), got {share!r}", "max_delete_share")
    if deletes == "none" and ("hard_delete" in raw or "max_delete_share" in raw):
        raise _fail(where, "hard_delete and max_delete_share apply to deletes: mirror; set it "
                    "or remove them", "deletes")
    return deletes, hard, float(share)


def _only(where: str, what: str, mapping: dict, allowed: set[str]) -> None:
    """``mapping`` (the sync's ``what``) has no key but ``allowed``."""
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise _fail(f"{where}, {what}", f"unknown keys {unknown} (allowed: "
                    f"{', '.join(sorted(allowed))})", what, unknown[0])


def parse_sync(raw: object, file: str) -> SyncSpec:
    """One sync declaration (a component's ``attributes``) from ``file``."""
    return _sync(file, raw, file)


def sync_set(specs: list[SyncSpec]) -> SyncSet:
    """The syncs of one project: names unique, every parent known, no cycle."""
    out = SyncSet()
    for spec in specs:
        if spec.name in out.syncs:
            raise _fail(spec.file, f"sync {spec.name!r} is defined twice (also in "
                        f"{out.syncs[spec.name].file})", "name")
        out.syncs[spec.name] = spec
    for spec in out.syncs.values():
        if spec.parent and spec.parent.sync not in out.syncs:
            raise _fail(f"{spec.file}: sync {spec.name!r}, parent", f"unknown sync "
                        f"{spec.parent.sync!r} (known: {', '.join(sorted(out.syncs))})",
                        "parent", "sync")
    if len(out.ordered()) != len(out.syncs):
        stuck = sorted(set(out.syncs) - {s.name for s in out.ordered()})
        raise _fail(out.syncs[stuck[0]].file, f"the parent references of syncs "
                    f"{', '.join(stuck)} form a cycle", "parent")
    return out


def load_syncs(defs_dir: str | Path | None = None) -> SyncSet:
    """The syncs declared in a defs folder (the project's own by default): every
    ``defs.yaml`` whose ``type`` is ``dc_to_core.SalesforceSync``."""
    root = Path(defs_dir or DEFS_DIR)
    specs = []
    for path in sorted(root.rglob("defs.yaml")):
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except OSError as exc:
            raise SyncConfigError(f"{path}: cannot read the sync file: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SyncConfigError(f"{path}: not valid YAML: {exc}") from None
        specs += [parse_sync(d.get("attributes"), str(path)) for d in docs
                  if isinstance(d, dict) and d.get("type") == SYNC_TYPE]
    if not specs:
        raise SyncConfigError(f"{root}: no {SYNC_TYPE} declared in any defs.yaml")
    return sync_set(specs)
