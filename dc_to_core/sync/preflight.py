"""Pre-flight: check a sync against what the org says about its objects, before anything of
a partition is read or sent.

Every mapped field must exist and be writable by the sync's operation (an upsert creates and
updates), the key must be an external id declared as case-sensitive as the org says, every
lookup's relationship must exist on the target, point at the object its sync loads and go
through an external id or idLookup field of the related object, each declared source type
must suit the field's type, and every field a new record needs must be mapped (unless the
sync only updates). All mismatches are reported at once, each
naming the file, the sync, the field and what the org says.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from ..salesforce.describe import NUMBER_TYPES, TEXT_TYPES, FieldInfo, ObjectInfo
from ..salesforce.errors import SalesforceApiError
from .spec import FieldMap, Lookup, SyncSpec

ANY_TEXT = TEXT_TYPES | {"reference", "id"}
SUITS = {  # the sync's declared source type -> Salesforce field types it can be written to
    "string": ANY_TEXT,
    "number": ANY_TEXT | NUMBER_TYPES,
    "int": ANY_TEXT | NUMBER_TYPES | {"int"},
    "date": ANY_TEXT | {"date"},
    "datetime": ANY_TEXT | {"datetime"},
    "boolean": ANY_TEXT | {"boolean"},
}
TYPE_FOR = {"double": "number", "currency": "number", "percent": "number", "int": "int",
            "date": "date", "datetime": "datetime", "boolean": "boolean"}


class PreflightError(ValueError):
    """The sync does not match the org; the message lists every mismatch."""

    def __init__(self, spec: SyncSpec, problems: list[str]) -> None:
        where = f"{spec.file}: sync {spec.name!r}" if spec.file else f"sync {spec.name!r}"
        super().__init__(f"{where} does not match the org ({len(problems)} problem"
                         f"{'s' if len(problems) > 1 else ''}; nothing was read or sent):\n- "
                         + "\n- ".join(problems))
        self.problems = problems


Describe = Callable[[str], ObjectInfo]


def describe_objects(spec: SyncSpec, describe: Describe
                     ) -> tuple[ObjectInfo, dict[str, ObjectInfo]]:
    """The target's describe and, per lookup, the related object's (read once per object);
    an object the org lacks is a pre-flight error, not an API error."""
    def one(name: str, role: str) -> ObjectInfo:
        try:
            return describe(name)
        except SalesforceApiError as exc:
            if exc.status == 404:
                raise PreflightError(spec, [f"{role} {name!r}: the org has no such sObject "
                                            f"(describe answered {exc.error_code}); check the "
                                            "API name and that the integration user can see "
                                            "it"]) from None
            raise
    target = one(spec.target, "target")
    objects: dict[str, ObjectInfo] = {target.name.lower(): target}
    related = {}
    for lk in spec.lookups:
        ref = target.relationship(lk.name)
        if ref is None or not ref.reference_to:
            continue  # check() reports it
        name = ref.reference_to[0]
        if name.lower() not in objects:
            objects[name.lower()] = one(name, f"lookup {lk.relationship!r}: related object")
        related[lk.relationship] = objects[name.lower()]
    return target, related


def check(spec: SyncSpec, target: ObjectInfo,
          related: dict[str, ObjectInfo] | ObjectInfo | None = None,
          source: dict[str, str] | None = None, loaded_by: dict[str, str] | None = None
          ) -> None:
    """Raise :class:`PreflightError` listing every way ``spec`` does not fit the org
    (``related``: the describe of each lookup's related object, by relationship column, or
    one object for every lookup a sync resolves; ``source``: the Data Cloud object's columns
    and types, when known; ``loaded_by``: the object each lookup's sync loads)."""
    if isinstance(related, ObjectInfo):
        related = {lk.relationship: related for lk in spec.lookups if lk.sync}
    problems = _source(spec, source) if source is not None else []
    problems += _key(spec, target)
    for f in spec.fields:
        problems += _field(spec, target, f)
    for lk in spec.lookups:
        problems += _relationship(spec, lk, target, (related or {}).get(lk.relationship),
                                  (loaded_by or {}).get(lk.relationship))
    if spec.operation != "update":  # an update never creates a record
        problems += _unmapped_required(spec, target)
    if spec.mirrors_deletes and not target.deletable:
        problems.append(f"deletes: mirror: the org does not let this user delete {target.name} "
                        "records (describe: deletable false); grant Delete on the object or "
                        "remove 'deletes'")
    if problems:
        raise PreflightError(spec, problems)


DC_KIND = {"VARCHAR": "text", "STRING": "text", "TEXT": "text", "DECIMAL": "number",
           "NUMBER": "number", "DOUBLE": "number", "BIGINT": "number", "INTEGER": "number",
           "DATE": "date", "TIMESTAMP": "datetime", "DATETIME": "datetime",
           "DATE_TIME": "datetime", "BOOLEAN": "boolean"}
READS_AS = {  # a Data Cloud column's kind -> the declared types it can be read as
    "text": set(SUITS), "number": {"number", "int", "string", "boolean"},
    "date": {"date", "datetime", "string"}, "datetime": {"datetime", "date", "string"},
    "boolean": {"boolean", "string"}}


def _scale(declared: str) -> int:
    inside = declared.partition("(")[2].rstrip(")").split(",")
    return int(inside[1]) if len(inside) > 1 and inside[1].strip().isdigit() else 0


def _fractional(declared: str) -> bool:
    """A Data Cloud number type whose values have decimals when read as text."""
    kind = declared.split("(")[0].upper()
    return kind in ("DOUBLE", "FLOAT") or (kind in ("DECIMAL", "NUMBER") and _scale(declared))


def _source(spec: SyncSpec, columns: dict[str, str]) -> list[str]:
    keys = {spec.source_key, *(lk.source for lk in spec.lookups)}  # matched as text
    by_name = {c.lower(): (c, t) for c, t in columns.items()}
    problems = []
    declared = {spec.source_key: "string", **{lk.source: "string" for lk in spec.lookups},
                **({spec.modified: "datetime"} if spec.modified else {}),
                **{m.source: m.type for m in spec.fields if m.source}}
    for col, kind in declared.items():
        found = by_name.get(col.lower())
        if found is None:
            close = difflib.get_close_matches(col.lower(), list(by_name), n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(by_name[c][0] for c in close)}?)" if close else ""
            problems.append(f"source column {col!r}: {spec.source} has no such column in Data "
                            f"Cloud{hint}")
            continue
        dc = DC_KIND.get(found[1].split("(")[0].upper())
        if dc is not None and kind not in READS_AS[dc]:
            problems.append(f"source column {col!r}: Data Cloud holds it as {found[1]}, which "
                            f"cannot be read as type {kind}")
        elif col in keys and _fractional(found[1]):
            problems.append(f"source column {col!r}: Data Cloud holds it as {found[1]}, so "
                            f"its values read as text like '123.{'0' * _scale(found[1])}', "
                            "which no external id matches; give it a text or integer type "
                            "in Data Cloud (a calculated insight can cast it)")
    return problems


def _missing(obj: ObjectInfo, name: str, what: str) -> str:
    close = difflib.get_close_matches(name.lower(), list(obj.fields), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(obj.fields[c].name for c in close)}?)" if close else ""
    return f"{what} {name!r}: {obj.name} has no such field in the org{hint}"


def _key(spec: SyncSpec, obj: ObjectInfo) -> list[str]:
    f = obj.field(spec.target_key)
    if f is None:
        return [_missing(obj, spec.target_key, "key")]
    problems = []
    if not f.external_id and f.name.lower() != "id":
        problems.append(f"key {f.name!r}: {obj.name}.{f.name} is not an external id field "
                        "(describe: externalId false), so Bulk API cannot upsert by it; mark "
                        "it External ID in Setup or choose an external id field")
    elif f.name.lower() != "id" and f.case_sensitive != spec.key_case_sensitive:
        says = "case-sensitive" if f.case_sensitive else "not case-sensitive"
        problems.append(f"key {f.name!r}: the org says {obj.name}.{f.name} is {says} but the "
                        f"sync declares key.case_sensitive: {str(spec.key_case_sensitive).lower()}"
                        f"; set key.case_sensitive: {str(f.case_sensitive).lower()} so keys are "
                        "matched as Salesforce matches them")
    if not f.createable and f.name.lower() != "id" and spec.operation != "update":
        problems.append(f"key {f.name!r}: {obj.name}.{f.name} is not createable, so new "
                        "records cannot be inserted by it")
    return problems


def _field(spec: SyncSpec, obj: ObjectInfo, m: FieldMap) -> list[str]:
    f = obj.field(m.target)
    if f is None:
        return [_missing(obj, m.target, "field")]
    problems = []
    needs = {"upsert": ("createable", "updateable"), "insert": ("createable",),
             "update": ("updateable",)}[spec.operation]
    denied = [what for flag, what in ((f.createable, "createable"), (f.updateable, "updateable"))
              if not flag and what in needs]
    if denied:
        said = "neither createable nor updateable" if len(denied) == 2 else f"not {denied[0]}"
        problems.append(f"field {f.name!r}: {obj.name}.{f.name} is {said} "
                        f"(describe: {' and '.join(d + ' false' for d in denied)}; a formula, "
                        f"roll-up or read-only field), so an {spec.operation} cannot write "
                        "it; remove it from 'fields'")
    if f.type not in SUITS[m.type]:
        want = TYPE_FOR.get(f.type)
        fix = f"declare type: {want}" if want else "map a field of a type text can fill"
        problems.append(f"field {f.name!r}: {obj.name}.{f.name} is a {f.type} field but the "
                        f"sync declares {m.source} as type {m.type}; {fix}")
    return problems


def _relationship(spec: SyncSpec, lk: Lookup, obj: ObjectInfo, related: ObjectInfo | None,
                  loaded_by: str | None) -> list[str]:
    ref = obj.relationship(lk.name)
    where = f"lookup {lk.relationship!r}"
    if ref is None:
        names = sorted(f.relationship_name for f in obj.fields.values()
                       if f.type == "reference" and f.relationship_name)
        close = difflib.get_close_matches(lk.name, names, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return [f"{where}: {obj.name} has no relationship named {lk.name!r} (its "
                f"relationships: {', '.join(names) or 'none'}{hint})"]
    problems = []
    if not (ref.createable and (ref.updateable or spec.operation == "insert")):
        problems.append(f"{where}: {obj.name}.{ref.name} is not writable by this user "
                        "(describe: createable/updateable false)")
    if related is None:
        return problems
    if loaded_by and loaded_by.lower() not in {t.lower() for t in ref.reference_to}:
        return [*problems, f"{where}: {obj.name}.{ref.name} points at "
                f"{', '.join(ref.reference_to)}, not at {loaded_by} (the object sync "
                f"{lk.sync!r} loads)"]
    by = related.field(lk.through)
    if by is None:
        return [*problems, _missing(related, lk.through, where + ", through")]
    if not (by.external_id or by.id_lookup):
        problems.append(f"{where}: {related.name}.{by.name} is neither an external id nor an "
                        "idLookup field, so Salesforce cannot find the related record by it")
    return problems


def _unmapped_required(spec: SyncSpec, obj: ObjectInfo) -> list[str]:
    written = {spec.target_key.lower(), *(m.target.lower() for m in spec.fields)}
    for lk in [*spec.lookups, *spec.hierarchy]:
        ref = obj.relationship(lk.name)
        if ref is not None:
            written.add(ref.name.lower())
    needed = [f for f in obj.fields.values() if f.required_on_create and f.name.lower()
              not in written and f.type not in ("id",)]
    return [f"field {f.name!r}: {obj.name}.{f.name} is required to create a record (describe: "
            "nillable false, no default) but the sync does not map it; every new record would "
            "fail REQUIRED_FIELD_MISSING. Map it in 'fields'" for f in needed]


def constraints_of(info: ObjectInfo, names: list[str]) -> dict[str, FieldInfo]:
    """The described fields behind the given target columns (those the org knows)."""
    return {n: f for n in names if (f := info.field(n)) is not None}
