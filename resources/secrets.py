"""Secrets for resource wiring: only ever as `dagster.EnvVar`, so no value reaches run config."""

import os

from dagster import EnvVar


def env_secret(name: str) -> EnvVar | str:
    """An EnvVar when the variable is set (Dagster shows its name, never its value); otherwise
    empty, and a resource that needs it fails with the variable's name when selected."""
    return EnvVar(name) if os.environ.get(name) else ""
