"""Provider errors split by what a user must do about them.

A transient error is worth retrying (Dagster's RetryPolicy re-runs the step); a configuration
error never fixes itself, so it is raised as a `dagster.Failure(allow_retries=False)` by the
asset layer and its message says exactly what to change.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base class for data-provider failures."""


class TransientProviderError(ProviderError):
    """Rate limits after backoff, 5xx responses, timeouts, dropped connections."""


class ProviderConfigError(ProviderError):
    """A missing or rejected key, an unsupported dataset, a bad request: retrying cannot help."""
