"""Benchmarks (run as scripts, never as tests): ``python -m dc_to_core.bench.connectors``."""
