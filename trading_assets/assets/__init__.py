"""Dagster wiring of the asset graph, one module per layer."""
