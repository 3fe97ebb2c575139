"""Dagster resources: data providers, warehouse, and (later) LLM and broker."""
