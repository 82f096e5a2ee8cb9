"""dc_to_core: Salesforce Data Cloud → Core object loads as partitioned Dagster assets."""

__version__ = "0.1.0"
