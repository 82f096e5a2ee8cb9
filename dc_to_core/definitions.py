"""The Dagster code location: ``dagster dev`` / ``dagster-webserver -w workspace.yaml``."""

from .project import build_definitions

defs = build_definitions()
