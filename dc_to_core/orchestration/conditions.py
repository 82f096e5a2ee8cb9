"""When a partition of a sync is requested: declarative automation conditions, evaluated by
the ``sync_automation`` sensor (``automation.py``).

A partition of a sync is requested when no run is loading it and either

- **nightly**: the sync's cron tick has passed since it was last requested or loaded, and
  every partition of every parent sync has been loaded since that tick or is being loaded by
  a run requested since it (Dagster's stock ``on_cron`` would start a child once *any*
  parent partition was loaded: under the ``AllPartitionMapping`` a child waits for all of
  them here). A child's run extracts, prepares and diffs while its parents load, and waits
  for their runs before its first Bulk job (``parents.py``); a parent's run is always
  created an evaluation before its children's, so the first-in-first-out run queue gives it
  a slot first. A parent of one partition whose key is the child's one partition
  (``together``) may also be requested in the same evaluation: Dagster puts assets of one
  partitions definition and key requested together into one run, where the child's steps
  wait for the parent's (small syncs such as Accounts and Contacts then cost one run). A
  child whose run stopped because a parent's run failed is due again once its parents are
  loaded (the parent's run retry); or
- **changed**: its Data Cloud range has a new data version since the partition was last
  requested or loaded, the partition was loaded before (a range never loaded waits for the
  night), and no parent partition is being loaded or failed its latest run (a child resolves
  its parents' external ids in Core). A sync without a last-modified column has no such part.

and, either way, what is due fits the org's limit budget (``budget_condition.py``): a refused
night or change is not requested, so nothing counts as handled, and it is requested once the
budget allows.

The checks have no condition of their own, so they ride along: they run in the run that loads
their partition (a condition on a check would make it a run, or a backfill, of its own).
"""

import dagster as dg

from .parents import StoppedForParent

AC = dg.AutomationCondition


def sync_condition(source: dg.AssetKey, cron: str, timezone: str, watched: bool = True,
                   budget: dg.AutomationCondition | None = None,
                   together: tuple[dg.AssetKey, ...] = ()) -> dg.AutomationCondition:
    """The condition of a sync's asset whose Data Cloud object is ``source`` (``watched``:
    the sync has a last-modified column, so its changes are followed; ``budget``: the
    night's limit budget, ``budget_condition.WithinLimitBudget``; ``together``: the parents
    a night loads in the child's run when they are requested with it)."""
    data_cloud = dg.AssetSelection.assets(source)
    tick = AC.cron_tick_passed(cron, timezone)
    loaded = AC.newly_updated().since(tick)
    loading = (AC.in_progress() & AC.newly_requested().since(tick)).with_label(
        "being loaded by a run requested since the tick")
    ready = loaded | loading
    parents_tonight = ~AC.any_deps_match(~ready).ignore(data_cloud)
    label = "every parent partition loaded or being loaded since the tick"
    if together:
        same_run = dg.AssetSelection.assets(*together)
        parents_tonight = (~AC.any_deps_match(~ready).ignore(data_cloud | same_run)
                           & ~AC.any_deps_match(~(ready | AC.will_be_requested())
                                                ).allow(same_run))
        label += " or requested with it in one run"
    parents_loaded = ~AC.any_deps_match(~loaded).ignore(data_cloud).with_label(
        "every parent partition loaded since the tick")
    again = (AC.execution_failed() & parents_loaded & StoppedForParent()).with_label(
        "stopped for a failed parent, whose retry has loaded")
    nightly = ((tick.since_last_handled() & parents_tonight.with_label(label)) | again
               ).with_label(f"nightly ({cron}, {timezone})")
    not_loading = ~AC.in_progress().with_label("not being loaded")
    due = nightly
    if watched:
        source_changed = AC.any_deps_updated().allow(data_cloud).since(
            AC.newly_requested() | AC.newly_updated()).with_label("Data Cloud range changed")
        parents_settled = ~AC.any_deps_match(AC.in_progress() | AC.execution_failed()).ignore(
            data_cloud).with_label("no parent partition loading or failed")
        due = nightly | (source_changed & ~AC.missing() & parents_settled).with_label(
            "changed in Data Cloud")
    condition = due & not_loading
    if budget is not None:  # last: evaluated only for the partitions otherwise due
        condition = condition & budget
    return condition.with_label("dc_to_core sync")
