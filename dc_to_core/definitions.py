"""The Dagster code location: ``dagster dev`` / ``dagster-webserver -w workspace.yaml``."""

from .orchestration.project import build_definitions

defs = build_definitions()
