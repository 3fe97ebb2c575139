"""Run one analyst over many ticker-minutes with the rules or a model, into ANALYSIS_COLUMNS rows.

Every analyst is the same three things: a rules function over a feature row, the facts a model
is shown, and (for news) the untrusted texts. The model path sends all in-scope rows at once
(the client runs them concurrently under its limit); out-of-scope rows keep the rules view and
say so, so a row's `model` column always names who produced it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from trading_assets.agents.prompts import agent_messages
from trading_assets.analysts.report import (
    ANALYSIS_COLUMNS,
    RULES_MODEL,
    AnalystReport,
    neutral_report,
    prompt_hash,
)
from trading_assets.schemas import conform, empty_frame

if TYPE_CHECKING:
    from resources.llm import LLMAnswer, LLMClient

MINUTE = pd.Timedelta(minutes=1)


@dataclass(frozen=True)
class AnalystSpec:
    name: str  # technical | fundamental | sentiment | macro
    role: str  # "the technical analyst"
    instructions: str
    report: Callable[[Mapping[str, Any]], AnalystReport]
    facts: Callable[[Mapping[str, Any]], dict[str, Any]]
    texts: Callable[[Mapping[str, Any]], list[str]] | None = None


def _json_safe(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else round(float(value), 6)
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    return value


def as_of_text(minute: pd.Timestamp) -> str:
    """The instant a partition's information is complete: its end, New York wall clock."""
    return (pd.Timestamp(minute) + MINUTE).strftime("%Y-%m-%d %H:%M America/New_York")


def analyst_messages(spec: AnalystSpec, row: Mapping[str, Any]) -> list[dict[str, str]]:
    as_of = as_of_text(row["minute"])
    return agent_messages(
        role=spec.role,
        instructions=spec.instructions,
        schema=AnalystReport.model_json_schema(),
        as_of=as_of,
        facts=spec.facts(row),
        untrusted=spec.texts(row) if spec.texts else (),
        task=f"Give your view of {row['ticker']} for the minutes after {as_of}.",
        events=_brief(row),
    )


def _brief(row: Mapping[str, Any]) -> str:
    """The row's event brief (`event_brief` column, set for the news-aware analysts), or ""."""
    value = row.get("event_brief")
    return value if isinstance(value, str) else ""


def _cited(row: Mapping[str, Any]) -> str:
    value = row.get("cited_events")
    return value if isinstance(value, str) and value else "[]"


def _row(
    spec: AnalystSpec,
    source: Mapping[str, Any],
    facts: dict[str, Any],
    report: AnalystReport,
    *,
    model: str,
    hash_: str,
    answer: LLMAnswer | None = None,
) -> dict[str, Any]:
    return {
        "minute": source["minute"],
        "ticker": source["ticker"],
        "analyst": spec.name,
        "stance": report.stance.value,
        "score": report.score,
        "confidence": report.confidence,
        "key_points": json.dumps(report.key_points),
        "narrative": report.narrative,
        "features": json.dumps(
            {k: _json_safe(v) for k, v in facts.items()}, sort_keys=True, default=str
        ),
        "model": model,
        "prompt_hash": hash_,
        "input_tokens": answer.input_tokens if answer else 0,
        "output_tokens": answer.output_tokens if answer else 0,
        "cached": bool(answer.cached) if answer else False,
        "fallback": bool(answer.fallback) if answer else False,
        "fallback_reason": answer.fallback_reason if answer else "",
        "data_as_of": source.get("data_as_of", pd.NaT),
        "cited_events": _cited(source),
    }


def run_analyst(
    spec: AnalystSpec,
    rows: Sequence[Mapping[str, Any]],
    llm: LLMClient | None = None,
    in_scope: Sequence[bool] | None = None,
) -> pd.DataFrame:
    """ANALYSIS_COLUMNS rows for `rows`: rules for all, or the model for the in-scope ones."""
    if not rows:
        return empty_frame(ANALYSIS_COLUMNS)
    scope = list(in_scope) if in_scope is not None else [True] * len(rows)
    out: list[dict[str, Any] | None] = [None] * len(rows)
    model_rows = [i for i, wanted in enumerate(scope) if llm is not None and wanted]
    if model_rows:
        from resources.llm import LLMRequest

        assert llm is not None
        requests = [
            LLMRequest(
                messages=analyst_messages(spec, rows[i]),
                schema=AnalystReport,
                fallback=neutral_report(f"{spec.name} analyst fallback: no valid model answer"),
                purpose=f"{spec.name} {rows[i]['ticker']} {pd.Timestamp(rows[i]['minute'])}",
            )
            for i in model_rows
        ]
        for i, answer in zip(model_rows, llm.complete_many(requests), strict=True):
            report = answer.value
            assert isinstance(report, AnalystReport)
            out[i] = _row(
                spec,
                rows[i],
                spec.facts(rows[i]),
                report,
                model=answer.model,
                hash_=answer.prompt_hash,
                answer=answer,
            )
    for i, source in enumerate(rows):
        if out[i] is None:
            facts = spec.facts(source)
            shown = {"analyst": spec.name, "model": RULES_MODEL, **facts}
            if _brief(source):  # rows without a new event keep their hash
                shown["events"] = _brief(source)
            hash_ = prompt_hash(shown)
            out[i] = _row(spec, source, facts, spec.report(source), model=RULES_MODEL, hash_=hash_)
    return conform(pd.DataFrame(out), ANALYSIS_COLUMNS)
