"""great-expectations 1.x run directly on a DataFrame (dagster-ge needs GX < 1, see DESIGN).

Importing great_expectations costs ~13 s of CPU here, so it happens on the first validation,
not when the code location loads; the ephemeral context is then reused for the process.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

_LOCK = threading.Lock()


@dataclass(frozen=True)
class Expectation:
    """A GX expectation by class name and kwargs, so suites are defined without importing GX."""

    kind: str  # e.g. "ExpectColumnValuesToBeBetween"
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # what a user reads in the UI, e.g. "high >= open"


@dataclass(frozen=True)
class ExpectationOutcome:
    label: str
    success: bool
    unexpected_count: int
    examples: list[Any]


@dataclass(frozen=True)
class SuiteOutcome:
    success: bool
    row_count: int
    outcomes: list[ExpectationOutcome]

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> str:
        if self.success:
            return f"all {len(self.outcomes)} expectations met on {self.row_count} rows"
        return "; ".join(
            f"{f.label}: {f.unexpected_count} rows (e.g. {f.examples[:3]})" for f in self.failures
        )


@functools.lru_cache(maxsize=1)
def _context() -> Any:
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    try:  # GX prints progress bars to stderr unless told not to
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except ImportError:  # pragma: no cover - only on a GX layout change
        pass
    return context


def validate(frame: pd.DataFrame, suite_name: str, expectations: list[Expectation]) -> SuiteOutcome:
    """Validate `frame` against the expectations with an ephemeral GX context."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    with _LOCK:  # the ephemeral context is not thread-safe
        context = _context()
        try:
            source = context.data_sources.get("dataframes")
        except (KeyError, ValueError):
            source = context.data_sources.add_pandas("dataframes")
        name = f"{suite_name}-{len(source.assets)}"
        batch_def = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe(
            "whole"
        )
        suite = gx.ExpectationSuite(
            name=name,
            expectations=[getattr(gxe, e.kind)(**e.kwargs) for e in expectations],
        )

        result = batch_def.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
        source.delete_asset(name)

    outcomes = []
    for res in result.results:
        details = res.result or {}
        outcomes.append(
            ExpectationOutcome(
                label=_label_for(res.expectation_config, expectations),
                success=bool(res.success),
                unexpected_count=int(details.get("unexpected_count") or 0),
                examples=_jsonable(details.get("partial_unexpected_list") or [])[:5],
            )
        )
    return SuiteOutcome(success=bool(result.success), row_count=len(frame), outcomes=outcomes)


def _label_for(config: Any, expectations: list[Expectation]) -> str:
    """GX returns results in its own order and without our labels: match type and kwargs."""
    for e in expectations:
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in e.kind).lstrip("_")
        if snake == config.type and all(config.kwargs.get(k) == v for k, v in e.kwargs.items()):
            return e.label or e.kind
    return str(config.type)


def _jsonable(values: list[Any]) -> list[Any]:
    out = []
    for v in values:
        if isinstance(v, dict):
            out.append({k: str(x) for k, x in v.items()})
        elif isinstance(v, int | float | str | bool) or v is None:
            out.append(v)
        else:
            out.append(str(v))
    return out
