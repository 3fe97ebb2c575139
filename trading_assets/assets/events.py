"""The events layer: headlines -> `market_events` -> `event_context` (issue 8).

`market_events` turns each story of the run's minutes into one typed, scored event about
universe tickers (rules by default, a model when `llm` is configured; same columns either way).
`event_context` gives each new event the most similar past events and what they did to the
price, strictly point in time: a past event counts only once its whole impact window (to its
session's close) ended before the partition starts. The pure logic lives in
`trading_assets.events`; these assets only wire inputs, the warehouse and the model.
"""

import json
from typing import Any

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, AssetIn, Config, MetadataValue, asset
from dagster_duckdb import DuckDBResource
from pydantic import Field

from resources.llm import LLMAnswer, LLMClient, LLMRequest, LLMResource
from resources.market_data import MarketDataResource
from resources.warehouse import SCHEMA, table_exists
from trading_assets.agents.prompts import agent_messages
from trading_assets.agents.runner import as_of_text
from trading_assets.analysts.headline_sentiment import EMBEDDING_MODEL, embed_texts
from trading_assets.analysts.report import RULES_MODEL
from trading_assets.assets.analysts import (
    MINUTE_ASSET,
    NEWS_HISTORY,
    model_failures,
    model_metadata,
)
from trading_assets.assets.ingest import PARTITION_EXPR, stamped
from trading_assets.assets.metadata import add_run_summary
from trading_assets.assets.minutes import run_minutes
from trading_assets.events.context import (
    DEFAULT_K,
    DEFAULT_MIN_SIMILARITY,
    EVENT_CONTEXT_COLUMNS,
    build_history,
    eligible,
    event_text,
)
from trading_assets.events.context import (
    event_context as context_rows,
)
from trading_assets.events.extract import (
    DEDUP_WINDOW,
    DEFAULT_EXCLUDE,
    EVENT_COLUMNS,
    EVENT_TYPES,
    MarketEvent,
    extract_events,
)
from trading_assets.schemas import conform, empty_frame

# What `market_events` stores: the extractor's columns plus who answered and whether a model's
# answer was replaced by the rules row (never silent).
MARKET_EVENT_COLUMNS: dict[str, str] = {
    **EVENT_COLUMNS,
    "fallback": "bool",  # the model was asked but gave no valid answer: this is the rules row
    "fallback_reason": "string",
    "dropped_tickers": "string",  # comma-joined tickers a model named outside the universe
}
# What `event_context` stores: the pure module's columns plus the new event's embedding shape.
CONTEXT_COLUMNS: dict[str, str] = {
    **EVENT_CONTEXT_COLUMNS,
    "embedding_dim": "int64",
    "embedding_norm": "float64",
}
EVENTS_TABLE = f"{SCHEMA}.market_events"
BARS_TABLE = f"{SCHEMA}.bars"
# Bars before the oldest past event: the impact's volume normal uses 5 earlier sessions.
VOLUME_NORMAL_DAYS = 10

EVENT_INSTRUCTIONS = (
    "You turn one news headline into a market event for an intraday trading desk: its type, "
    "its urgency from 1 (noise) to 10 (trading-halt news), whether it is relevant to trading, "
    "and the tickers it is about. Name only tickers listed in FACTS.universe; a market-wide "
    "(macro) story may have no ticker. Copy minute, published_at, event_id, news_ids, sources "
    "and the headline from FACTS and the quoted item unchanged."
)


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class MarketEventsConfig(Config):
    include_keywords: str = Field(
        "", description="comma list: with any, an event is relevant only if one appears"
    )
    exclude_keywords: str = Field(
        ",".join(DEFAULT_EXCLUDE), description="comma list: an event naming one is not relevant"
    )
    provider_tickers: bool = Field(
        True, description="trust the news provider's ticker tags (still limited to the universe)"
    )


def _rules_event(row: dict[str, Any]) -> MarketEvent:
    """A stored rules row as the model's schema: the request's (recorded) fallback."""
    return MarketEvent(
        minute=pd.Timestamp(row["minute"]).to_pydatetime(),
        event_id=str(row["event_id"]),
        tickers=_split(str(row["tickers"])),
        event_type=row["event_type"],
        urgency=int(row["urgency"]),
        relevant=bool(row["relevant"]),
        relevance_reason=str(row["relevance_reason"]),
        headline=str(row["headline"]),
        news_ids=json.loads(str(row["news_ids"])),
        sources=_split(str(row["sources"])),
        duplicate_of=str(row["duplicate_of"]),
        published_at=pd.Timestamp(row["published_at"]).to_pydatetime(),
        model=RULES_MODEL,
        flagged=bool(row["flagged"]),
    )


def event_messages(row: dict[str, Any], symbols: list[str]) -> list[dict[str, str]]:
    """One classification prompt: facts as JSON, the headline only as quoted, capped data."""
    minute = pd.Timestamp(row["minute"])
    facts = {
        "minute": minute.isoformat(),
        "published_at": pd.Timestamp(row["published_at"]).isoformat(),
        "event_id": str(row["event_id"]),
        "news_ids": json.loads(str(row["news_ids"])),
        "sources": _split(str(row["sources"])),
        "universe": symbols,
        "event_types": list(EVENT_TYPES),
        "rules_view": {
            "event_type": row["event_type"],
            "urgency": int(row["urgency"]),
            "tickers": _split(str(row["tickers"])),
        },
    }
    return agent_messages(
        role="the market-events analyst",
        instructions=EVENT_INSTRUCTIONS,
        schema=MarketEvent.model_json_schema(),
        as_of=as_of_text(minute),
        facts=facts,
        untrusted=[str(row["headline"])],
        task="Return the MarketEvent for the quoted headline.",
    )


def merge_answer(row: dict[str, Any], answer: LLMAnswer, symbols: frozenset[str]) -> dict:
    """The stored row for a model's answer. The model decides type, urgency, tickers (inside
    the universe only) and may mark an event irrelevant; identity, text, timing, duplicate
    lineage and the injection flag stay the rules' (the model cannot move an event in time)."""
    if answer.fallback:
        return row | {"fallback": True, "fallback_reason": answer.fallback_reason}
    event = answer.value
    assert isinstance(event, MarketEvent)
    named = {t.strip().upper() for t in event.tickers if t.strip()}
    kept = sorted(named & symbols)
    dropped = sorted(named - symbols)
    tickers = kept or _split(str(row["tickers"]))
    relevant, reason = bool(row["relevant"]), str(row["relevance_reason"])
    if relevant and not event.relevant:
        relevant = False
        reason = f"model: {event.relevance_reason}".strip()[:200]
    return row | {
        "tickers": ",".join(tickers),
        "event_type": event.event_type,
        "urgency": int(event.urgency),
        "relevant": relevant,
        "relevance_reason": reason,
        "model": answer.model,
        "dropped_tickers": ",".join(dropped),
    }


def model_events(
    frame: pd.DataFrame, client: LLMClient, symbols: list[str]
) -> tuple[pd.DataFrame, int]:
    """Ask the model about each new, unflagged event; (rows, questions asked). Duplicates and
    flagged headlines keep the rules row: a repeat adds nothing and an instruction-like text is
    not relevant whatever a model makes of it."""
    rows = frame.to_dict("records")
    asked = [i for i, r in enumerate(rows) if not r["duplicate_of"] and not bool(r["flagged"])]
    requests = [
        LLMRequest(
            messages=event_messages(rows[i], symbols),
            schema=MarketEvent,
            fallback=_rules_event(rows[i]),
            purpose=f"market_event {rows[i]['event_id']} {pd.Timestamp(rows[i]['minute'])}",
        )
        for i in asked
    ]
    universe = frozenset(symbols)
    for i, answer in zip(asked, client.complete_many(requests), strict=True):
        rows[i] = merge_answer(rows[i], answer, universe)
    return conform(pd.DataFrame(rows), MARKET_EVENT_COLUMNS), len(asked)


def stored_prior_events(
    warehouse: DuckDBResource, since: pd.Timestamp, before: pd.Timestamp
) -> pd.DataFrame:
    """Stored first events with minutes in [since, before): what a new story may repeat."""
    with warehouse.get_connection() as conn:
        if not table_exists(conn, "market_events"):
            return empty_frame(EVENT_COLUMNS)
        frame = conn.execute(
            f"SELECT * FROM {EVENTS_TABLE} WHERE minute >= ? AND minute < ? "
            "AND coalesce(duplicate_of, '') = ''",
            [since.to_pydatetime(), before.to_pydatetime()],
        ).df()
    return conform(frame, EVENT_COLUMNS) if len(frame) else empty_frame(EVENT_COLUMNS)


@asset(
    ins={"news": NEWS_HISTORY},
    metadata={"partition_expr": PARTITION_EXPR},
    group_name="events",
    kinds={"pandas", "duckdb"},
    **MINUTE_ASSET,
)
def market_events(
    context: AssetExecutionContext,
    config: MarketEventsConfig,
    market_data: MarketDataResource,
    llm: LLMResource,
    warehouse: DuckDBResource,
    news: pd.DataFrame,
) -> pd.DataFrame:
    """One row per story of the run's minutes: type, urgency, relevance and universe tickers.
    A story repeating an earlier one (another source, a later rewrite, within 3 days, point in
    time: the session's earlier news and the stored events) is kept with `duplicate_of`."""
    minutes = run_minutes(context)
    start = minutes.min()
    universe = market_data.universe_table()
    symbols = sorted(universe["ticker"])
    prior = stored_prior_events(warehouse, start - DEDUP_WINDOW, start)
    extracted = extract_events(
        news[news["minute"] <= minutes.max()],  # the look-back and the run, nothing later
        universe,
        include=_split(config.include_keywords),
        exclude=_split(config.exclude_keywords),
        prior=prior,
        provider_tickers=config.provider_tickers,
    )
    frame = extracted[extracted["minute"].isin(minutes)].reset_index(drop=True)
    frame["fallback"] = False
    frame["fallback_reason"] = ""
    frame["dropped_tickers"] = ""
    frame = conform(frame, MARKET_EVENT_COLUMNS)
    client = None
    asked = 0
    if not llm.is_rules and len(frame):
        with model_failures(), llm.client() as client:
            frame, asked = model_events(frame, client, symbols)
    first = frame[frame["duplicate_of"] == ""]
    add_run_summary(
        context,
        {
            "events": len(frame),
            "new_events": len(first),
            "duplicates": int((frame["duplicate_of"] != "").sum()),
            "relevant": int(frame["relevant"].sum()),
            "flagged": int(frame["flagged"].sum()),
            "by_type": MetadataValue.json(first["event_type"].value_counts().to_dict()),
            "models": MetadataValue.json(frame["model"].value_counts().to_dict()),
            "model_questions": asked,
            "fallbacks": int(frame["fallback"].sum()),
            "dropped_model_tickers": int((frame["dropped_tickers"] != "").sum()),
            "universe": ",".join(symbols),
            **model_metadata(llm, client),
        },
    )
    return stamped(frame, context)


class EventContextConfig(Config):
    k: int = Field(DEFAULT_K, description="past events per new event and ticker")
    min_similarity: float = Field(
        DEFAULT_MIN_SIMILARITY, description="cosine similarity a neighbour needs"
    )
    lookback_days: float = Field(120.0, description="how far back past events are searched")


def _usable(events: pd.DataFrame) -> pd.DataFrame:
    """First (non-duplicate), relevant, unflagged events about at least one ticker."""
    if events.empty:
        return events
    keep = (
        (events["duplicate_of"].fillna("") == "")
        & events["relevant"].fillna(False).astype(bool)
        & ~events["flagged"].fillna(False).astype(bool)
        & (events["tickers"].fillna("") != "")
    )
    return events[keep].reset_index(drop=True)


def stored_history(
    warehouse: DuckDBResource, since: pd.Timestamp, before: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(usable stored events with minutes in [since, before), stored bars before `before` of
    their tickers from VOLUME_NORMAL_DAYS before the oldest): the warehouse's past."""
    with warehouse.get_connection() as conn:
        if not table_exists(conn, "market_events") or not table_exists(conn, "bars"):
            return empty_frame(EVENT_COLUMNS), pd.DataFrame(columns=["minute", "ticker"])
        events = conn.execute(
            f"SELECT * FROM {EVENTS_TABLE} WHERE minute >= ? AND minute < ? "
            "AND coalesce(duplicate_of, '') = '' AND relevant AND NOT flagged "
            "AND coalesce(tickers, '') <> ''",
            [since.to_pydatetime(), before.to_pydatetime()],
        ).df()
        if events.empty:
            return empty_frame(EVENT_COLUMNS), pd.DataFrame(columns=["minute", "ticker"])
        tickers = sorted({t for v in events["tickers"] for t in _split(str(v))})
        oldest = pd.Timestamp(events["minute"].min()).normalize()
        bars = conn.execute(
            f"SELECT minute, ticker, close, volume FROM {BARS_TABLE} "
            "WHERE minute >= ? AND minute < ? AND list_contains(?, ticker)",
            [
                (oldest - pd.Timedelta(days=VOLUME_NORMAL_DAYS)).to_pydatetime(),
                before.to_pydatetime(),
                tickers,
            ],
        ).df()
    return conform(events, EVENT_COLUMNS), bars


@asset(
    ins={"market_events": AssetIn(), "bars": AssetIn()},
    metadata={"partition_expr": PARTITION_EXPR},
    group_name="events",
    kinds={"pandas", "duckdb"},
    **MINUTE_ASSET,
)
def event_context(
    context: AssetExecutionContext,
    config: EventContextConfig,
    warehouse: DuckDBResource,
    market_events: pd.DataFrame,
    bars: pd.DataFrame,
) -> pd.DataFrame:
    """For each new relevant event of the run's minutes, per ticker: the `k` most similar past
    events (WordLlama embeddings) with what they did to the price (15/60-minute and to-close
    returns, volume vs normal). A past event is eligible only when its whole impact window,
    which runs to its session's close, ended at or before the partition's start."""
    minutes = run_minutes(context)
    start = minutes.min()
    stored, stored_bars = stored_history(
        warehouse, start - pd.Timedelta(days=config.lookback_days), start
    )
    new = _usable(market_events[market_events["minute"].isin(minutes)])
    # Past = stored events before the run + the run's own earlier events (a multi-session
    # backfill: yesterday's events are context today). Eligibility is per event minute below.
    past = pd.concat([_usable(stored), new], ignore_index=True)
    frame = empty_frame(CONTEXT_COLUMNS)
    history_rows = eligible_rows = 0
    if len(new) and len(past):
        run_bars = bars[["minute", "ticker", "close", "volume"]]
        all_bars = pd.concat(
            [stored_bars[stored_bars["minute"] < start], run_bars], ignore_index=True
        )
        all_bars = all_bars.drop_duplicates(["ticker", "minute"], keep="last")
        history = build_history(past, all_bars.sort_values(["ticker", "minute"]))
        history_rows = len(history)
        history = eligible(history, minutes.max())  # per event: impact_end <= its minute
        eligible_rows = len(history)
        rows = context_rows(new, history, k=config.k, min_similarity=config.min_similarity)
        if len(rows):
            texts = {
                str(e.event_id): event_text(e.event_type, e.headline)
                for e in new.itertuples(index=False)
            }
            ids = list(dict.fromkeys(rows["event_id"].astype(str)))
            vectors = embed_texts([texts[i] for i in ids])
            norms = dict(zip(ids, np.linalg.norm(vectors, axis=1), strict=True))
            rows["embedding_dim"] = int(vectors.shape[1])
            rows["embedding_norm"] = rows["event_id"].astype(str).map(norms).astype(float)
            frame = conform(rows, CONTEXT_COLUMNS)
    add_run_summary(
        context,
        {
            "new_events": len(new),
            "events_with_context": int(frame["event_id"].nunique()),
            "rows": len(frame),
            "past_events": len(past) - len(new),
            "history_event_tickers": history_rows,
            "eligible_event_tickers": eligible_rows,
            "mean_similarity": round(float(frame["similarity"].mean()), 4) if len(frame) else 0.0,
            "embedding_model": EMBEDDING_MODEL,
            "preview": MetadataValue.md(_preview(frame)),
        },
    )
    return stamped(frame, context)


def _preview(frame: pd.DataFrame, rows: int = 10) -> str:
    if frame.empty:
        return "(no event had eligible similar past events)"
    cols = ["minute", "ticker", "rank", "neighbour_minute", "similarity", "ret_60m", "ret_close"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for values in frame[cols].head(rows).itertuples(index=False):
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in values]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
