"""The four analysts as one team: inputs -> feature rows -> reports, with no Dagster in sight.

Every analyst reports on the same grid: the (ticker, minute) pairs that have a bar at or before
the minute in its session (`technical_features` rows). The asset layer only loads inputs, calls
`analyse`, and stores the frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from trading_assets.agents.prompts import agent_messages
from trading_assets.agents.runner import AnalystSpec, as_of_text, run_analyst
from trading_assets.analysts.fundamental import (
    FUNDAMENTAL_INSTRUCTIONS,
    fundamental_facts,
    fundamental_report,
)
from trading_assets.analysts.headline_sentiment import MODEL_NAME as HEADLINE_MODEL
from trading_assets.analysts.headline_sentiment import HeadlineSentimentModel
from trading_assets.analysts.macro import MACRO_INSTRUCTIONS, macro_facts, macro_report
from trading_assets.analysts.report import AnalystReport
from trading_assets.analysts.sentiment import (
    DEFAULT_HALF_LIFE_MINUTES,
    HEADLINE_INSTRUCTIONS,
    SENTIMENT_INSTRUCTIONS,
    HeadlineScore,
    sentiment_facts,
    sentiment_features,
    sentiment_report,
    sentiment_texts,
)
from trading_assets.analysts.technical import (
    TECHNICAL_INSTRUCTIONS,
    technical_facts,
    technical_records,
    technical_report,
)
from trading_assets.events.brief import EventBrief

if TYPE_CHECKING:
    from resources.llm import LLMClient

ANALYSTS = ("technical", "fundamental", "sentiment", "macro")

SPECS: dict[str, AnalystSpec] = {
    "technical": AnalystSpec(
        "technical", "the technical analyst", TECHNICAL_INSTRUCTIONS, technical_report,
        technical_facts,
    ),
    "fundamental": AnalystSpec(
        "fundamental", "the fundamental analyst", FUNDAMENTAL_INSTRUCTIONS, fundamental_report,
        fundamental_facts,
    ),
    "sentiment": AnalystSpec(
        "sentiment", "the sentiment analyst", SENTIMENT_INSTRUCTIONS, sentiment_report,
        sentiment_facts, sentiment_texts,
    ),
    "macro": AnalystSpec(
        "macro", "the macro analyst", MACRO_INSTRUCTIONS, macro_report, macro_facts,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class TeamInputs:
    grid: pd.DataFrame  # technical_features rows of the covered tickers in the run's minutes
    minutes: pd.DatetimeIndex
    fundamentals: pd.DataFrame
    headlines: pd.DataFrame  # headline_targets over the news history window
    macro: pd.DataFrame  # macro_features per minute
    in_scope: pd.Series  # bool per grid row: may the model analyse it (debated ticker-minutes)
    company_names: Mapping[str, str]
    half_life_minutes: float = DEFAULT_HALF_LIFE_MINUTES  # sentiment recency decay
    # (ticker, minute) -> its event brief (`event_briefs`); the sentiment and fundamental
    # analysts get it in their prompts and cite its past events. Missing key = no new event.
    briefs: Mapping[tuple[str, pd.Timestamp], EventBrief] = field(default_factory=dict)


def score_headlines(
    headlines: pd.DataFrame, names: Mapping[str, str], llm: LLMClient | None = None
) -> pd.DataFrame:
    """`headlines` + label, score, confidence, scorer: each (story, ticker) scored once.

    Quarantined (flagged) headlines are not scored at all: nothing about them can move a view.
    """
    out = headlines.copy()
    out["label"], out["score"], out["confidence"] = "neutral", 0.0, 0.0
    out["scorer"] = "quarantined"
    todo = out.index[~out["flagged"].astype(bool)] if not out.empty else out.index
    if len(todo) == 0:
        return out
    rows = out.loc[todo]
    if llm is None:
        scores = HeadlineSentimentModel.load().score(
            rows["headline"].tolist(), [names.get(t, t) for t in rows["ticker"]]
        )
        out.loc[todo, ["label", "score", "confidence"]] = scores[
            ["label", "score", "confidence"]
        ].to_numpy()
        out.loc[todo, "scorer"] = HEADLINE_MODEL
        return out
    from resources.llm import LLMRequest

    requests = [
        LLMRequest(
            messages=agent_messages(
                role="the headline sentiment scorer",
                instructions=HEADLINE_INSTRUCTIONS,
                schema=HeadlineScore.model_json_schema(),
                as_of=as_of_text(r.minute),
                facts={"ticker": r.ticker, "company": names.get(r.ticker, r.ticker)},
                untrusted=[r.headline],
                task=f"Score this headline's likely effect on {r.ticker}'s share price.",
            ),
            schema=HeadlineScore,
            fallback=HeadlineScore(label="neutral", score=0.0, confidence=0.0),
            purpose=f"headline {r.ticker} {r.news_id}",
        )
        for r in rows.itertuples()
    ]
    answers = llm.complete_many(requests)
    out.loc[todo, "label"] = [a.value.label for a in answers]  # type: ignore[attr-defined]
    out.loc[todo, "score"] = [a.value.score for a in answers]  # type: ignore[attr-defined]
    out.loc[todo, "confidence"] = [a.value.confidence for a in answers]  # type: ignore[attr-defined]
    out.loc[todo, "scorer"] = [f"{a.model} (fallback)" if a.fallback else a.model for a in answers]
    return out.astype({"score": float, "confidence": float})


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")


def with_briefs(
    records: list[dict[str, Any]], briefs: Mapping[tuple[str, pd.Timestamp], EventBrief]
) -> list[dict[str, Any]]:
    """Each row plus its brief: `event_brief` (prompt block), `event_summary` (rules key point)
    and `cited_events` (JSON list of the cited past event ids, "[]" without a new event)."""
    for row in records:
        brief = briefs.get((row["ticker"], pd.Timestamp(row["minute"])))
        row["event_brief"] = brief.text if brief else ""
        row["event_summary"] = brief.summary if brief else ""
        row["cited_events"] = brief.cited_json if brief else "[]"
    return records


def _once_per_minute(spec: AnalystSpec) -> AnalystSpec:
    """`spec` with its rules report made once per minute and shared by the minute's tickers.

    For the macro analyst only: `macro_report` reads nothing but the minute's regime columns
    (one `macro_features` row broadcast to every ticker), so every ticker's report is equal."""
    reports: dict[object, AnalystReport] = {}

    def report(row: Mapping[str, Any]) -> AnalystReport:
        minute = row["minute"]
        if minute not in reports:
            reports[minute] = spec.report(row)
        return reports[minute]

    return replace(spec, report=report)


def analyst_rows(
    name: str,
    inputs: TeamInputs,
    llm: LLMClient | None = None,
) -> pd.DataFrame:
    """One analyst's ANALYSIS_COLUMNS frame over the grid."""
    grid = inputs.grid[["minute", "ticker"]]
    scope = inputs.in_scope.tolist()
    if name == "technical":
        return run_analyst(SPECS[name], technical_records(inputs.grid), llm, scope)
    if name == "fundamental":
        f = inputs.fundamentals.drop(columns=["run_id"], errors="ignore")
        rows = grid.merge(f, on=["minute", "ticker"], how="left")
        rows["data_as_of"] = rows.get("filed_at", pd.Series(pd.NaT, index=rows.index))
        return run_analyst(SPECS[name], with_briefs(_records(rows), inputs.briefs), llm, scope)
    if name == "sentiment":
        scored = score_headlines(inputs.headlines, inputs.company_names, llm)
        tickers = sorted(grid["ticker"].unique())
        features = sentiment_features(scored, inputs.minutes, tickers, inputs.half_life_minutes)
        rows = grid.merge(features, on=["minute", "ticker"], how="left")
        return run_analyst(SPECS[name], with_briefs(_records(rows), inputs.briefs), llm, scope)
    if name == "macro":
        rows = grid.merge(inputs.macro, on="minute", how="left", suffixes=("", "_macro"))
        return run_analyst(_once_per_minute(SPECS[name]), _records(rows), llm, scope)
    raise ValueError(f"unknown analyst {name!r}; one of {ANALYSTS}")


def covered(frame: pd.DataFrame, tickers: Sequence[str], minutes: pd.DatetimeIndex) -> pd.DataFrame:
    """Rows of the covered tickers inside the run's minutes (history rows are inputs only)."""
    keep = frame["ticker"].isin(list(tickers)) & frame["minute"].isin(minutes)
    return frame[keep].reset_index(drop=True)
