"""The code location: the components of the project's ``defs/`` folder (one
``SalesforceSync`` per sync, one ``SyncAutomation``) with the resources and the executor."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType

import dagster as dg

from .. import defs as defs_package
from ..sync.plan import plans_from
from . import dagster_fixes, runtime
from .resources import resources_from_env

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # run config
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def build_definitions(plans_dir: Path | None = None, resources: dict[str, object] | None = None,
                      defs_module: ModuleType | None = None) -> dg.Definitions:
    """The definitions of every component in ``defs_module`` (the project's ``dc_to_core.defs``
    unless given), plans read from ``plans_dir`` (default: ``DC_TO_CORE_PLANS`` or the shipped
    ones), resources from the environment unless given."""
    with plans_from(plans_dir), warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # components' code references
        warnings.simplefilter("ignore", dg.PreviewWarning)  # and the defs module's loader
        components = dg.ComponentTree.from_module(defs_module=defs_module or defs_package,
                                                  project_root=PROJECT_ROOT).build_defs()
    defs = dg.Definitions.merge(components, dg.Definitions(
        resources=resources if resources is not None else resources_from_env(),
        executor=dagster_fixes.in_process_executor))
    runtime.freeze_loaded_heap()  # the code location is loaded: keep the collector off it
    return defs
