"""dc_to_core: Salesforce Data Cloud → Core object loads as partitioned Dagster assets.

The component types (``type: dc_to_core.SalesforceSync`` and ``dc_to_core.SyncAutomation`` in
a ``defs.yaml``) load on first use, so the emulator and the clients do not import Dagster.
"""

from typing import Any

__version__ = "0.1.0"
_COMPONENTS = {"SalesforceSync": "dc_to_core.orchestration.component",
               "SyncAutomation": "dc_to_core.orchestration.automation"}


def __getattr__(name: str) -> Any:
    if name in _COMPONENTS:
        import importlib
        return getattr(importlib.import_module(_COMPONENTS[name]), name)
    raise AttributeError(f"module 'dc_to_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *_COMPONENTS]
