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
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from .columns import FIELD_TYPES, ColumnError, FieldMap, Lookup, parse_field, parse_lookup

__all__ = ["FIELD_TYPES", "FieldMap", "Lookup", "SyncConfigError", "SyncSet",
           "SyncSpec", "load_syncs", "parse_sync", "sync_set"]

CONFIG_DIR = Path(__file__).parents[1] / "config"
DEFS_DIR = Path(__file__).parents[1] / "defs"   # the project's component instances
SYNC_TYPE = "dc_to_core.SalesforceSync"
SCHEDULING_KEYS = {"nightly_cron", "fresh_by_cron",  # read by the Dagster layer only
                   "fresh_within_hours"}
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
SOURCE_OBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*__(dlm|dll|cio)$")
OPERATIONS = ("upsert", "insert", "update")


class SyncConfigError(ValueError):
    """A sync declaration is invalid; ``path`` is the offending key within the sync (e.g.
    ``("fields", "CloseDate", "type")``), so a YAML loader can point at its line."""

    def __init__(self, message: str, path: tuple[str, ...] = (), reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason or message


DELETE_MODES = ("none", "mirror")


@dataclass(frozen=True)
class SyncSpec:
    name: str
    source: str
    target: str
    source_key: str
    target_key: str
    fields: tuple[FieldMap, ...]
    lookups: tuple[Lookup, ...] = ()  # relationship columns (a self-lookup is in ``hierarchy``)
    modified: str | None = None
    operation: str = "upsert"
    file: str = ""
    owners: tuple[str, ...] = ()
    key_case_sensitive: bool = False  # as the target's external id field is declared
    deletes: str = "none"             # "mirror": keys gone from the source are deleted in Core
    hard_delete: bool = False         # ... with hardDelete (no recycle bin)
    max_delete_share: float = 0.05    # more of a partition's known rows than this: refused
    hierarchy: tuple[Lookup, ...] = ()  # self-lookups (Account.Parent): set by a second pass
    hierarchy_of: str | None = None   # this is that second pass of the named sync

    @property
    def parent(self) -> Lookup | None:
        """The first lookup another sync resolves (a locking one first), or None."""
        synced = [lk for lk in self.lookups if lk.sync]
        return next((lk for lk in synced if lk.locks_parent), synced[0] if synced else None)

    @property
    def depends_on(self) -> list[str]:
        """The syncs whose records this one's rows reference (loaded first), in order."""
        return list(dict.fromkeys(lk.sync for lk in self.lookups if lk.sync))

    @property
    def locking(self) -> list[Lookup]:
        """The lookups whose related record the org locks while it writes a row."""
        return [lk for lk in self.lookups if lk.locks_parent]

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
        cols = [self.source_key, *(f.source for f in self.fields if f.source)]
        cols += [lk.source for lk in self.lookups]
        return list(dict.fromkeys(cols))

    @property
    def mapping_fingerprint(self) -> str:
        """Changes exactly when what the sync sends changes (objects, key, fields, types,
        lookups, policies): the asset's code version."""
        fields = [[f.target, f.source, f.type, f.empty_as_null]
                  + ([f.on_null, f.value, f.default, sorted(f.mapping)] if (
                      f.on_null != "clear" or f.value is not None or f.default is not None
                      or f.mapping) else [])  # appended: plain fields keep their versions
                  for f in self.fields]
        lookups = [[lk.relationship, lk.source] + ([lk.on_null] if lk.keeps_nulls else [])
                   for lk in self.lookups]
        mapping = [self.source, self.target, self.source_key, self.target_key, self.operation,
                   fields, lookups[0] if len(lookups) == 1 else lookups or None]
        if self.key_case_sensitive:  # appended, so the default leaves versions as they were
            mapping.append("case-sensitive key")
        return hashlib.sha256(json.dumps(mapping).encode()).hexdigest()[:16]

    @property
    def target_columns(self) -> list[str]:
        """The columns of the Bulk upload, key first."""
        return [self.target_key, *(f.target for f in self.fields),
                *(lk.relationship for lk in self.lookups)]

    def hierarchy_pass(self) -> SyncSpec | None:
        """The second pass that sets this sync's self-lookups once every partition of it is
        loaded (a parent may sit in any partition): an update of the key and the lookups."""
        if not self.hierarchy:
            return None
        links = tuple(replace(lk, sync=self.name) for lk in self.hierarchy)
        return replace(self, name=f"{self.name}_hierarchy", fields=(), lookups=links,
                       operation="update", deletes="none", hard_delete=False, hierarchy=(),
                       hierarchy_of=self.name)


@dataclass
class SyncSet:
    syncs: dict[str, SyncSpec] = field(default_factory=dict)

    def ordered(self) -> list[SyncSpec]:
        """Parents before children (syncs caught in a cycle of lookups are left out)."""
        done: list[SyncSpec] = []
        pending = list(self.syncs.values())
        while pending:
            names = {d.name for d in done}
            ready = [s for s in pending if set(s.depends_on) <= names]
            if not ready:
                break
            done += ready
            pending = [s for s in pending if s not in ready]
        return done

    def cycle(self) -> list[str]:
        """The syncs on a cycle of lookups (not those only waiting behind one), sorted."""
        stuck = {s.name for s in self.syncs.values()} - {s.name for s in self.ordered()}
        on = set()
        for name in stuck:
            seen, todo = set(), [d for d in self.syncs[name].depends_on if d in stuck]
            while todo:
                at = todo.pop()
                if at == name:
                    on.add(name)
                    break
                if at not in seen:
                    seen.add(at)
                    todo += [d for d in self.syncs[at].depends_on if d in stuck]
        return sorted(on)

    def waits_for(self, spec: SyncSpec) -> list[SyncSpec]:
        """The syncs whose loads ``spec``'s load waits for: those its lookups resolve by, and
        their hierarchy passes (they write the same records, which its rows may lock)."""
        out = [self.syncs[n] for n in spec.depends_on if n in self.syncs]
        out += [s for s in self.syncs.values() if s.hierarchy_of in spec.depends_on
                and s.hierarchy_of != spec.hierarchy_of and s.name != spec.name]
        return out

    def planned(self) -> list[SyncSpec]:
        """``ordered``, without hierarchy passes (they use their sync's partition plan)."""
        return [s for s in self.ordered() if not s.hierarchy_of]

    def children(self, name: str) -> list[SyncSpec]:
        """The syncs whose rows reference the records of sync ``name`` (not its own second
        pass)."""
        return [s for s in self.syncs.values() if name in s.depends_on and s.hierarchy_of
                != name]


def _fail(where: str, message: str, *path: str) -> SyncConfigError:
    return SyncConfigError(f"{where}: {message}", tuple(path), message)


def _sync(where: str, raw: object, file: str) -> SyncSpec:
    if not isinstance(raw, dict):
        raise _fail(where, "each sync must be a mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise _fail(where, f"'name' must be a plain identifier, got {name!r}", "name")
    where = f"{file}: sync {name!r}"
    allowed = {"name", "source", "target", "key", "fields", "lookups", "parent", "modified",
               "operation", "owners", "deletes", "hard_delete", "max_delete_share"}
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
    operation = raw.get("operation", "upsert")
    if operation not in OPERATIONS:
        raise _fail(where, f"operation {operation!r} is not one of {', '.join(OPERATIONS)} "
                    "(upsert: create or update; insert: create only, never touch an existing "
                    "record; update: update only, never create)", "operation")
    if key["target"].lower() == "id" and operation != "update":
        raise _fail(f"{where}, key", "a key on the Salesforce Id matches only records that "
                    "exist: it needs operation: update (or key an external id field)", "key",
                    "target")
    fields, lookups = _columns(where, raw, key["target"])
    owners = raw.get("owners") or []
    if not isinstance(owners, list) or not all(isinstance(o, str) for o in owners):
        raise _fail(where, "'owners' must be a list of emails or team:<name>", "owners")
    deletes, hard, share = _deletes(where, raw)
    if deletes == "mirror" and operation != "upsert":
        raise _fail(where, f"deletes: mirror needs operation: upsert (an {operation}-only "
                    "sync does not own the records it would delete)", "deletes")
    hierarchy = tuple(lk for lk in lookups if lk.sync == name)
    if hierarchy and operation == "insert":
        raise _fail(f"{where}, lookup {hierarchy[0].relationship!r}", "a self-lookup is set by "
                    "a second pass that updates the records, which an insert-only sync never "
                    "does; make the sync an upsert or drop the lookup", "lookups",
                    hierarchy[0].relationship)
    if key["target"].lower() == "id":
        case_sensitive = True  # a 15-character Salesforce Id is case-sensitive
    return SyncSpec(name, source, target, key["source"], key["target"], fields,
                    tuple(lk for lk in lookups if lk.sync != name), raw.get("modified"),
                    operation, file, tuple(owners), case_sensitive, deletes, hard, share,
                    hierarchy=hierarchy)


def _columns(where: str, raw: dict, key: str) -> tuple[tuple[FieldMap, ...],
                                                       tuple[Lookup, ...]]:
    """The sync's fields and lookups (``parent:`` is a locking lookup another sync loads)."""
    fields_raw = raw.get("fields", {} if raw.get("lookups") else None)
    if not isinstance(fields_raw, dict) or not (fields_raw or raw.get("lookups")):
        raise _fail(where, "'fields' must map at least one target field to a source column",
                    "fields")
    lookups_raw = raw.get("lookups") or {}
    if not isinstance(lookups_raw, dict):
        raise _fail(where, "'lookups' must map relationship columns (Account.External_Id__c) "
                    "to {source, sync, locks_parent, on_null}", "lookups")
    try:
        fields = tuple(parse_field(f"{where}, field {t!r}", t, s)
                       for t, s in fields_raw.items())
        lookups = [parse_lookup(f"{where}, lookup {r!r}", r, s, ("lookups", str(r)))
                   for r, s in lookups_raw.items()]
    except ColumnError as exc:
        raise SyncConfigError(str(exc), exc.path, exc.reason) from None
    if key in {f.target for f in fields}:
        raise _fail(f"{where}, field {key!r}", "the external id is mapped by 'key'; "
                    "remove it from 'fields'", "fields", key)
    if raw.get("parent") is not None:
        p = raw["parent"]
        if not isinstance(p, dict) or not all(isinstance(p.get(k), str) for k in (
                "sync", "relationship", "source")):
            raise _fail(f"{where}, parent", "needs {sync, relationship, source}", "parent")
        _only(where, "parent", p, {"sync", "relationship", "source"})
        if "." not in p["relationship"]:
            raise _fail(f"{where}, parent", f"relationship {p['relationship']!r} must look like "
                        "Account.External_Id__c", "parent", "relationship")
        if p["relationship"] in {lk.relationship for lk in lookups}:
            raise _fail(f"{where}, parent", f"{p['relationship']} is also under lookups: "
                        "declare it once", "parent")
        lookups.insert(0, Lookup(p["relationship"], p["source"], p["sync"], locks_parent=True,
                                  from_parent=True))
    names = [lk.name.lower() for lk in lookups]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _fail(where, f"relationship {twice[0]!r} is declared twice; a record has one "
                    "value per lookup", "lookups")
    clash = {lk.reference_field.lower() for lk in lookups} & {f.target.lower() for f in fields}
    if clash:
        raise _fail(where, f"field {sorted(clash)[0]!r} is also set by a lookup; keep one",
                    "fields", sorted(clash)[0])
    return fields, tuple(lookups)


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


def sync_set(specs: list[SyncSpec], broken: frozenset[str] = frozenset()) -> SyncSet:
    """The syncs of one project (with the hierarchy pass of each sync that has
    self-lookups): names unique, every lookup's sync known and matched on its key, no
    cycle. ``broken``: syncs left out for errors of their own (a lookup to one says so)."""
    out = SyncSet()
    for spec in [s for one in specs for s in (one, one.hierarchy_pass()) if s is not None]:
        if spec.name in out.syncs:
            raise _fail(spec.file, f"sync {spec.name!r} is defined twice (also in "
                        f"{out.syncs[spec.name].file})", "name")
        out.syncs[spec.name] = spec
    for spec in out.syncs.values():
        for lk in spec.lookups:
            _resolvable(spec, lk, out, known_only=True, broken=broken)
    if len(out.ordered()) != len(out.syncs):
        stuck = out.cycle()
        first = out.syncs[stuck[0]]
        via = next(lk for lk in first.lookups if lk.sync in stuck)
        raise _fail(first.file, f"the parent references of syncs {', '.join(stuck)} form a "
                    "cycle", *(("parent",) if via.from_parent else ("lookups", via.relationship)))
    for spec in out.syncs.values():
        for lk in spec.lookups:
            _resolvable(spec, lk, out)
    return out


def _resolvable(spec: SyncSpec, lk: Lookup, syncs: SyncSet, known_only: bool = False,
                broken: frozenset[str] = frozenset()) -> None:
    """A lookup another sync resolves names a known sync (``known_only``: only that) and
    goes through its key."""
    if not lk.sync or spec.hierarchy_of:
        return
    via = ("parent",) if lk.from_parent else ("lookups", lk.relationship)
    where = f"{spec.file}: sync {spec.name!r}, " + (
        "parent" if via == ("parent",) else f"lookup {lk.relationship!r}")
    other = syncs.syncs.get(lk.sync)
    if other is None and lk.sync in broken:
        raise _fail(where, f"sync {lk.sync!r} is in error (its own file says why); this sync "
                    "loads once it is fixed", *via, "sync")
    if other is None:
        known = sorted(n for n, s in syncs.syncs.items() if not s.hierarchy_of)
        raise _fail(where, f"unknown sync {lk.sync!r} (known: {', '.join(known)})", *via,
                    "sync")
    if not known_only and lk.through.lower() != other.target_key.lower():
        raise _fail(where, f"sync {other.name} loads {other.target} by {other.target_key}, so "
                    f"the column must be {lk.name}.{other.target_key}", *via)


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
