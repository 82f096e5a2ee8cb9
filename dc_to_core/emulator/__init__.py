"""A faithful local Salesforce org: OAuth, Data Cloud queries, Bulk API 2.0, REST query.

Start one with ``dc-to-core emulator`` or, in Python, :class:`EmulatorServer`. The names below
load on first use, so importing a light module of this package (``credentials``) does not
start up the whole org model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .org import Org
    from .profile import FaultProfile, OrgProfile, load_profile
    from .server import EmulatorConfig, EmulatorServer, SpawnedEmulator, spawn_emulator
    from .tokens import AppCredentials

_HOME = {"Org": "org", "FaultProfile": "profile", "OrgProfile": "profile",
         "load_profile": "profile", "EmulatorConfig": "server", "EmulatorServer": "server",
         "SpawnedEmulator": "server", "spawn_emulator": "server", "AppCredentials": "tokens"}

__all__ = ["AppCredentials", "EmulatorConfig", "EmulatorServer", "FaultProfile", "Org",
           "OrgProfile", "SpawnedEmulator", "load_profile", "spawn_emulator"]


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
