"""``dc_to_core.SalesforceSync``: one sync (a Data Cloud object → a Core object) as a Dagster
Component, declared in ``defs/<sync>/defs.yaml`` and built into its partitioned asset and its
four reconciliation checks.

The YAML's shape is checked by the component's models (``dg check yaml``: a typo'd key, a
list where a mapping belongs); its meaning by ``sync.spec`` (``dg check defs``: a source that
is not a Data Cloud object, an unknown field type, a parent no sync loads, a cycle). Either
way the error names the file, the line and the key.
"""

import datetime as dt
import os
import textwrap
import zoneinfo

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string  # Dagster's own cron check
from pydantic import BaseModel, PrivateAttr

from ..sync.deletes import children_of
from ..sync.plan import load_plan, plans_dir
from ..sync.spec import SyncConfigError, SyncSet, SyncSpec, parse_sync, sync_set
from .assets import asset_key, build_sync_asset
from .budget_condition import WithinLimitBudget
from .checks import build_checks
from .conditions import sync_condition
from .sources import source_asset, source_key, source_owner


class KeyMap(dg.Model):
    source: str   # the Data Cloud column holding the external id
    target: str   # the Core external id field
    case_sensitive: bool = False  # as the field is declared in Salesforce (default: ignores)


Constant = str | int | float | bool  # a date is written as text: "2026-01-31"


class FieldMap(dg.Model):
    source: str | None = None    # the Data Cloud column (or a constant: value)
    type: str = "string"         # string | number | int | date | datetime | boolean
    empty_as_null: bool = True
    compare: bool = True         # false: fields_match leaves it out (the org rewrites it)
    on_null: str = "clear"       # clear: a null empties the Core field; keep: leaves it
    value: Constant | None = None    # the same value on every row
    default: Constant | None = None  # used where the source is null
    map: dict[str, bool | str | int | float] | None = None  # source value -> target value


class LookupMap(dg.Model):
    source: str                  # the source column holding the related record's key
    sync: str | None = None      # the sync that loads the related records (else: in Core)
    locks_parent: bool = False   # the org locks the related record while writing the row
    on_null: str = "clear"       # clear: a null empties the lookup; keep: leaves it


class ParentMap(dg.Model):
    sync: str           # the sync that loads the parents (loaded first)
    relationship: str   # the Bulk CSV column, e.g. Account.External_Id__c
    source: str         # the source column holding the parent's external id


class SyncScaffoldParams(BaseModel):
    source: str | None = None
    target: str | None = None


class SalesforceSyncScaffolder(dg.Scaffolder[SyncScaffoldParams]):
    """``dg scaffold defs dc_to_core.SalesforceSync contact --source Contact_Home__dlm
    --target Contact`` writes a commented ``defs.yaml`` to fill in."""

    @classmethod
    def get_scaffold_params(cls) -> type[SyncScaffoldParams]:
        return SyncScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[SyncScaffoldParams]) -> None:
        name = request.target_path.name.title().replace("_", "")
        source = request.params.source or f"{name}_Staging__dlm"
        target = request.params.target or name
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / "defs.yaml").write_text(textwrap.dedent(f"""\
            type: {request.type_name}
            attributes:
              name: {name}
              source: {source}     # the Data Cloud object (…__dlm, __dll or __cio)
              target: {target}     # the Core sObject
              key: {{source: ExternalId__c, target: External_Id__c}}   # an external id field
              modified: LastModifiedDate__c   # lets source_changes see edited rows
              owners: []                      # e.g. [team:salesforce-data, me@example.com]
              fields:   # target field: source column, or {{source, type, on_null, default,
                        #   value, map, compare, empty_as_null}}
                Name: Name__c
                # Amount: {{source: Amount__c, type: number}}
              # lookups:  # Relationship.Field: the related record's key, by a sync or in Core
              #   Account.External_Id__c: {{source: AccountExternalId__c, sync: Account,
              #                             locks_parent: true}}
              #   Owner.Employee_Id__c: OwnerEmployeeId__c
            """))


@dg.scaffold_with(SalesforceSyncScaffolder)
class SalesforceSync(dg.Component, dg.Model, dg.Resolvable):
    """Load one Core object from one Data Cloud object by external id, every night, with every
    row loaded or quarantined with its reason."""

    name: str
    source: str
    target: str
    key: KeyMap
    fields: dict[str, str | FieldMap] = {}
    lookups: dict[str, str | LookupMap] = {}  # Relationship.Field: the related record's key
    parent: ParentMap | None = None   # a lookup another sync loads that locks its parent
    modified: str | None = None
    operation: str = "upsert"
    owners: list[str] = []
    deletes: str = "none"              # mirror: keys gone from Data Cloud are deleted in Core
    hard_delete: bool = False          # ... by hardDelete (no recycle bin)
    max_delete_share: float = 0.05     # a run deleting more of a partition is refused
    nightly_cron: str | None = None    # when the night starts (DC_TO_CORE_NIGHTLY_CRON, 0 2 * * *)
    fresh_by_cron: str = "0 6 * * *"   # each night's load is due by then (DC_TO_CORE_TIMEZONE)
    fresh_within_hours: float = 4.0    # ... and no older than this at the deadline

    _file: str = PrivateAttr(default="")

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext
             ) -> "SalesforceSync":
        component = super().load(attributes, context)
        tree = context.component_decl.source_tree
        component._file = str(tree.source_position_tree.position.filename if tree
                              else context.path / "defs.yaml")
        return component

    def parsed(self) -> SyncSpec:
        """This sync as the sync logic sees it (``sync.spec`` validates it)."""
        return parse_sync(self.model_dump(exclude_unset=True), self._file)

    def spec(self, context: dg.ComponentLoadContext) -> SyncSpec:
        """``parsed``, with errors pointing into this component's YAML."""
        try:
            return self.parsed()
        except SyncConfigError as exc:
            raise yaml_error(context, exc) from None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        spec = self.spec(context)
        syncs = project_syncs(context, spec)
        tz, cron = self.night(context, [syncs.syncs[n] for n in spec.depends_on])
        second = spec.hierarchy_pass()  # its self-lookups, once every partition is loaded
        return dg.Definitions.merge(*(self.sync_defs(s, syncs, tz, cron)
                                      for s in (spec, second) if s is not None))

    def sync_defs(self, spec: SyncSpec, syncs: SyncSet, tz: str, cron: str) -> dg.Definitions:
        """One sync's asset, its source asset (if it owns the object) and its checks."""
        plan = load_plan(spec, plans_dir())
        parts = dg.StaticPartitionsDefinition(plan.keys)
        parents = tuple(syncs.waits_for(spec))  # and their hierarchy passes
        owner = source_owner(syncs, spec)
        alike = owner.name == spec.name or (
            owner.source_key == spec.source_key and owner.folds_key == spec.folds_key
            and load_plan(owner, plans_dir()).ranges == plan.ranges)  # its plan is read once
        parent_keys = {p.name: load_plan(p, plans_dir()).keys for p in parents}
        together = tuple(p for p in parents if len(plan.keys) == 1  # may share one run
                         and parent_keys[p.name] == plan.keys)
        asset = build_sync_asset(spec, plan, parts, parents, source_partitioned_alike=alike,
                                 children=tuple(children_of(spec, list(syncs.syncs.values()))),
                                 together=tuple(p.name for p in together),
                                 parent_partitions=parent_keys)
        sources = [source_asset(spec, plan, parts)] if owner.name == spec.name else []
        rows = (plan.source_rows or 0) // max(1, len(plan.ranges))
        condition = sync_condition(source_key(spec), cron, tz,
                                   watched=bool(spec.modified and owner.modified),
                                   budget=WithinLimitBudget(spec.name, rows),
                                   together=tuple(asset_key(p) for p in together))
        freshness = dg.FreshnessPolicy.cron(
            deadline_cron=self.fresh_by_cron,
            lower_bound_delta=dt.timedelta(hours=self.fresh_within_hours), timezone=tz)
        sync = dg.Definitions(assets=[asset]).map_asset_specs(func=lambda a: a.replace_attributes(
            freshness_policy=freshness, automation_condition=condition))
        return dg.Definitions.merge(sync, dg.Definitions(  # one source asset per object
            assets=sources, asset_checks=build_checks(spec, plan, parts, parents)))

    def night(self, context: dg.ComponentLoadContext, parents: list[SyncSpec]
              ) -> tuple[str, str]:
        """(timezone, cron) of this sync's night, checked: a bad value is named where it is
        set, and a child's night is its parents' (it waits for their loads of the night, so
        a later cron of its own would never see them)."""
        tz = os.environ.get("DC_TO_CORE_TIMEZONE", "UTC")
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise dg.DagsterInvalidDefinitionError(
                f"DC_TO_CORE_TIMEZONE={tz!r} is not a timezone; use an IANA name such as "
                "Europe/Paris or UTC") from None
        cron = nightly_cron(self)
        if not is_valid_cron_string(cron) and not self.nightly_cron:
            raise dg.DagsterInvalidDefinitionError(
                f"DC_TO_CORE_NIGHTLY_CRON={cron!r} is not a cron expression; use five fields "
                "such as '0 2 * * *' (02:00 every day)")
        if not is_valid_cron_string(cron):
            raise yaml_error(context, SyncConfigError(
                f"{self._file}: nightly_cron {cron!r} is not a cron expression; use five "
                "fields such as '0 2 * * *' (02:00 every day)", ("nightly_cron",),
                f"{cron!r} is not a cron expression"))
        for parent in parents:
            theirs = next(c for c in context.component_tree.get_all_components(SalesforceSync)
                          if c.name == parent.name)
            if nightly_cron(theirs) != cron:
                raise yaml_error(context, SyncConfigError(
                    f"{self._file}: nightly_cron {cron!r} differs from parent sync "
                    f"{parent.name}'s {nightly_cron(theirs)!r}; a child's night is its "
                    "parent's (it starts once the parent's partitions of the night are "
                    "loaded): remove it or make them equal", ("nightly_cron",),
                    "a child's nightly_cron must equal its parent's"))
        return tz, cron


def nightly_cron(sync: "SalesforceSync") -> str:
    return sync.nightly_cron or os.environ.get("DC_TO_CORE_NIGHTLY_CRON", "0 2 * * *")


def project_syncs(context: dg.ComponentLoadContext, this: SyncSpec | None = None) -> SyncSet:
    """Every valid sync declared in the project's defs folder (parents known, no cycle). A
    sync in error is left out here: its own component reports it, pointing into its YAML, and
    so does this one when the error is about ``this``."""
    specs, broken = [], set()
    for component in context.component_tree.get_all_components(SalesforceSync):
        try:
            specs.append(component.parsed())
        except SyncConfigError:
            broken.add(component.name)
    while True:
        try:
            return sync_set(specs, frozenset(broken))
        except SyncConfigError as exc:
            about = _about(exc, specs)
            if this is not None and this.name in {s.name for s in about}:
                rest = str(exc).split(": ", 1)[-1]  # said of this sync, in its own file
                raise yaml_error(context, SyncConfigError(f"{this.file}: {rest}", exc.path,
                                                          exc.reason)) from None
            if not about:
                raise
            specs = [s for s in specs if s not in about]
            broken |= {s.name for s in about}


def _about(exc: SyncConfigError, specs: list[SyncSpec]) -> list[SyncSpec]:
    """The syncs an error of the whole set concerns: every member of a parent cycle, else
    the one whose file it names."""
    if "form a cycle" in str(exc):
        on = set(sync_set_of(specs).cycle())
        return [s for s in specs if s.name in on]
    return [s for s in specs if str(exc).startswith(f"{s.file}: ")]


def sync_set_of(specs: list[SyncSpec]) -> SyncSet:
    """``specs`` and their hierarchy passes, unchecked."""
    return SyncSet({s.name: s for one in specs
                    for s in (one, one.hierarchy_pass()) if s is not None})


def yaml_error(context: dg.ComponentLoadContext, exc: SyncConfigError
               ) -> dg.DagsterInvalidDefinitionError:
    """``exc`` with the file, line and key it is about, and the YAML around it."""
    tree = context.component_decl.source_tree
    if tree is None:
        return dg.DagsterInvalidDefinitionError(str(exc))
    path = ["attributes", *exc.path]
    err = tree.source_position_tree.source_error(yaml_path=path, inline_error_message=exc.reason,
                                                 value_error=True)
    where = f"{err.file_name}:{err.start_line_no}"
    message = str(exc).replace(f"{err.file_name}: ", "", 1)
    return dg.DagsterInvalidDefinitionError(
        f"{where} - {'.'.join(path)}: {message}\n{err.snippet}")
