"""What the org says about an sObject (REST ``sobjects/<Object>/describe``), typed.

Only what the sync checks and validates against is kept: per field its type, length,
precision and scale, nillable / createable / updateable / defaultedOnCreate, external id and
idLookup, case sensitivity, the restricted picklist's active values and, for a reference,
the object(s) it points at and its relationship name. It round-trips through JSON, so a run
describes once and every step of it uses the same answer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

TEXT_TYPES = frozenset({"string", "textarea", "picklist", "multipicklist", "email", "phone",
                        "url", "combobox", "encryptedstring"})
NUMBER_TYPES = frozenset({"double", "currency", "percent"})


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    defaulted_on_create: bool = False
    external_id: bool = False
    id_lookup: bool = False
    case_sensitive: bool = False
    restricted_picklist: bool = False
    picklist_values: tuple[str, ...] = ()
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None

    @property
    def required_on_create(self) -> bool:
        """A record cannot be created without a value (Salesforce's own definition: not
        nillable, createable, not defaulted on create; a boolean always has one)."""
        return (not self.nillable and self.createable and not self.defaulted_on_create
                and self.type != "boolean")

    @classmethod
    def from_describe(cls, raw: dict) -> FieldInfo:
        return cls(
            name=raw["name"], type=raw.get("type", "string"), label=raw.get("label") or
            raw["name"], length=int(raw.get("length") or 0),
            precision=int(raw.get("precision") or 0), scale=int(raw.get("scale") or 0),
            nillable=bool(raw.get("nillable", True)),
            createable=bool(raw.get("createable", True)),
            updateable=bool(raw.get("updateable", True)),
            defaulted_on_create=bool(raw.get("defaultedOnCreate", False)),
            external_id=bool(raw.get("externalId", False)),
            id_lookup=bool(raw.get("idLookup", False)),
            case_sensitive=bool(raw.get("caseSensitive", False)),
            restricted_picklist=bool(raw.get("restrictedPicklist", False)),
            picklist_values=tuple(v["value"] for v in raw.get("picklistValues") or []
                                  if v.get("active", True)),
            reference_to=tuple(raw.get("referenceTo") or ()),
            relationship_name=raw.get("relationshipName"))


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    fields: dict[str, FieldInfo] = field(default_factory=dict)  # by lower-case name
    deletable: bool = True

    def field(self, name: str) -> FieldInfo | None:
        """Salesforce resolves field names ignoring case."""
        return self.fields.get(name.lower())

    def relationship(self, name: str) -> FieldInfo | None:
        """The reference field whose relationship name is ``name`` (``Account`` → AccountId)."""
        return next((f for f in self.fields.values() if f.type == "reference"
                     and (f.relationship_name or "").lower() == name.lower()), None)

    @classmethod
    def from_describe(cls, raw: dict) -> ObjectInfo:
        fields = [FieldInfo.from_describe(f) for f in raw.get("fields") or []]
        return cls(raw["name"], {f.name.lower(): f for f in fields},
                   bool(raw.get("deletable", True)))

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "deletable": self.deletable,
                           "fields": [asdict(f) for f in self.fields.values()]})

    @classmethod
    def from_json(cls, text: str | bytes) -> ObjectInfo:
        raw = json.loads(text)
        fields = [FieldInfo(**{**f, "picklist_values": tuple(f["picklist_values"]),
                               "reference_to": tuple(f["reference_to"])})
                  for f in raw["fields"]]
        return cls(raw["name"], {f.name.lower(): f for f in fields},
                   bool(raw.get("deletable", True)))
