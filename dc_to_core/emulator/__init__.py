"""A faithful local Salesforce org: OAuth, Data Cloud queries, Bulk API 2.0, REST query.

Start one with ``dc-to-core emulator`` or, in Python, :class:`EmulatorServer`.
"""

from .org import Org
from .profile import FaultProfile, OrgProfile, load_profile
from .server import EmulatorConfig, EmulatorServer, SpawnedEmulator, spawn_emulator
from .tokens import AppCredentials

__all__ = ["AppCredentials", "EmulatorConfig", "EmulatorServer", "FaultProfile", "Org",
           "OrgProfile", "SpawnedEmulator", "load_profile", "spawn_emulator"]
