"""The analyst layer: the event gate and the four analysts, minute-partitioned, tickers as rows.

`debate_triggers` decides which ticker-minutes are worth a model's time; `analyst_team` is one
step that runs the four analysts in parallel threads (they share no inputs with each other) and
stores four assets. Bars and news are read with history through partition mappings, so a range
run loads its window plus the warm-up once.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    BackfillPolicy,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)
from pydantic import Field

from resources.errors import ProviderConfigError
from resources.llm import LLMCacheMiss, LLMClient, LLMResource
from resources.market_data import MarketDataResource
from trading_assets.analysts.macro import macro_features
from trading_assets.analysts.sentiment import headline_targets
from trading_assets.analysts.team import ANALYSTS, TeamInputs, analyst_rows, covered
from trading_assets.analysts.technical import technical_features
from trading_assets.assets.ingest import MINUTES, PARTITION_EXPR, stamped
from trading_assets.assets.metadata import add_run_summary
from trading_assets.assets.minutes import history, run_minutes
from trading_assets.events.brief import LOOKBACK, EventBrief, event_briefs
from trading_assets.partitions import previous_session_minute
from trading_assets.research.debate import DEFAULT_ROUNDS
from trading_assets.research.gating import GateSettings, calls_per_ticker_day, gate, trigger_kinds

# Warm-up for indicators: MACD 26+9 on 5-minute bars needs ~175 one-minute bars.
BAR_HISTORY_MINUTES = 200
# Headlines count for sentiment with a half-life of hours: one session back is plenty.
NEWS_HISTORY_MINUTES = 390
BAR_HISTORY = history(BAR_HISTORY_MINUTES)
NEWS_HISTORY = history(NEWS_HISTORY_MINUTES)
# New market events stay in the briefs for LOOKBACK (30 minutes).
EVENT_HISTORY = history(int(LOOKBACK / pd.Timedelta(minutes=1)))
EVENT_INS = {"market_events": EVENT_HISTORY, "event_context": EVENT_HISTORY}
MINUTE_ASSET = {
    "partitions_def": MINUTES,
    "backfill_policy": BackfillPolicy.single_run(),
}


@contextmanager
def model_failures() -> Iterator[None]:
    """A replay-only cache miss or a model configuration error fails the step loudly and is
    not retried: a retry would ask the same question of the same cache or key."""
    try:
        yield
    except LLMCacheMiss as exc:
        raise Failure(
            description=f"LLM cache miss in replay_only mode: {exc}", allow_retries=False
        ) from exc
    except ProviderConfigError as exc:
        raise Failure(description=f"LLM configuration: {exc}", allow_retries=False) from exc


def model_metadata(llm: LLMResource, client: LLMClient | None) -> dict[str, object]:
    """Which model answered (with the client's call stats) for a step's output metadata."""
    stats = client.stats.as_metadata() if client else {"llm_model": "rules (no model)"}
    return {**stats, **llm.describe()}


def briefs_for(
    keys: pd.DataFrame, market_events: pd.DataFrame, event_context: pd.DataFrame
) -> dict[tuple[str, pd.Timestamp], EventBrief]:
    """Event briefs for the (ticker, minute) rows of `keys` that have a new market event."""
    pairs = zip(keys["ticker"], keys["minute"], strict=True)
    return event_briefs(market_events, event_context, pairs)


_GATE = GateSettings()  # the defaults live in the pure module; the launchpad shows them here


class GateConfig(Config):
    enabled: bool = Field(
        True, description="off: every ticker-minute is debated, uncapped (costs ~23x the calls)"
    )
    max_per_minute: int = Field(_GATE.max_per_minute, description="debates a minute at most")
    signal_threshold: float = Field(
        _GATE.signal_threshold, description="|technical score| crossing that triggers"
    )
    return_z: float = Field(_GATE.return_z, description="|1-minute return z| for a price shock")
    volume_ratio: float = Field(
        _GATE.volume_ratio, description="volume / its average for a volume shock"
    )


@asset(
    ins={
        "bars": BAR_HISTORY,
        "news": NEWS_HISTORY,
    },
    metadata={"partition_expr": PARTITION_EXPR},
    group_name="events",
    kinds={"pandas", "duckdb"},
    **MINUTE_ASSET,
)
def debate_triggers(
    context: AssetExecutionContext,
    config: GateConfig,
    market_data: MarketDataResource,
    bars: pd.DataFrame,
    news: pd.DataFrame,
) -> pd.DataFrame:
    """Which ticker-minutes are debated: a new headline, a technical signal crossing its
    threshold, or a price/volume shock; at most `max_per_minute` a minute. The rest hold.

    A crossing compares a minute with the one before, so the gate also sees the session minute
    before the run (then drops it): a live run of one minute triggers exactly as the same
    minute inside a backfill does."""
    minutes = run_minutes(context)
    before = previous_session_minute(minutes[0])
    grid = minutes if before is None else minutes.insert(0, before)
    stocks = market_data.stock_tickers()
    technical = covered(technical_features(bars, grid), stocks, grid)
    headlines = headline_targets(news, stocks)
    gated = gate(technical, headlines, GateSettings(**config.model_dump()))
    frame = gated[gated["minute"].isin(minutes)].reset_index(drop=True)
    new = headlines[headlines["minute"].isin(minutes) & ~headlines["flagged"].astype(bool)]
    add_run_summary(
        context,
        {
            "ticker_minutes": len(frame),
            "triggered": int(frame["triggered"].sum()),
            "debated": int(frame["debated"].sum()),
            "capped": int((frame["triggered"] & ~frame["debated"]).sum()),
            "trigger_kinds": MetadataValue.json(trigger_kinds(frame)),
            "quarantined_headlines": int(headlines["flagged"].astype(bool).sum()),
            **calls_per_ticker_day(frame, rounds=DEFAULT_ROUNDS, headlines=len(new)),
        },
    )
    return stamped(frame, context)


class AnalystTeamConfig(Config):
    llm_scope: str = Field(
        "debated",
        description="with a model: 'debated' ticker-minutes only (the rest keep the rules view, "
        "labelled) or 'all'",
    )
    sentiment_half_life_minutes: float = Field(120.0, description="headline weight half-life")


ANALYST_DESCRIPTIONS = {
    "technical": "Indicators on 1- and 5-minute bars (SMA, EMA, RSI, MACD, stochastic, "
    "Bollinger, ATR, OBV, session VWAP, volume) turned into a view per ticker and minute.",
    "fundamental": "Valuation, year-over-year growth and balance-sheet quality from the "
    "point-in-time fundamentals.",
    "sentiment": "Each headline scored once, aggregated per ticker with recency decay; "
    "instruction-like headlines quarantined.",
    "macro": "Market regime from SPY and QQQ trend, realised volatility and breadth across the "
    "universe, applied to every ticker.",
}


@multi_asset(
    outs={
        f"{name}_analysis": AssetOut(
            metadata={"partition_expr": PARTITION_EXPR},
            group_name="analysts",
            kinds={"pandas", "duckdb"},
            description=ANALYST_DESCRIPTIONS[name],
            is_required=False,
        )
        for name in ANALYSTS
    },
    ins={
        "bars": BAR_HISTORY,
        "news": NEWS_HISTORY,
        "fundamentals": AssetIn(),
        "debate_triggers": AssetIn(),
        **EVENT_INS,
    },
    can_subset=True,
    **MINUTE_ASSET,
)
def analyst_team(
    context: AssetExecutionContext,
    config: AnalystTeamConfig,
    market_data: MarketDataResource,
    llm: LLMResource,
    bars: pd.DataFrame,
    news: pd.DataFrame,
    fundamentals: pd.DataFrame,
    debate_triggers: pd.DataFrame,
    market_events: pd.DataFrame,
    event_context: pd.DataFrame,
):
    """The technical, fundamental, sentiment and macro analysts, in parallel threads. The
    sentiment and fundamental analysts also get each ticker's new market event with similar
    past events and their measured impact (the event brief) and record what they cited."""
    minutes = run_minutes(context)
    stocks = market_data.stock_tickers()
    grid = covered(technical_features(bars, minutes), stocks, minutes)
    scope = (
        grid[["minute", "ticker"]]
        .merge(
            debate_triggers[["minute", "ticker", "debated"]], on=["minute", "ticker"], how="left"
        )["debated"]
        .fillna(False)
    )
    if config.llm_scope not in ("debated", "all"):
        raise Failure(f"llm_scope must be 'debated' or 'all', not {config.llm_scope!r}")
    if config.llm_scope == "all":
        scope[:] = True
    inputs = TeamInputs(
        grid=grid,
        minutes=minutes,
        fundamentals=fundamentals,
        headlines=headline_targets(news, stocks),
        macro=macro_features(bars, minutes, stocks, market_data.index_tickers()),
        in_scope=scope.astype(bool),
        company_names=market_data.company_names(),
        half_life_minutes=config.sentiment_half_life_minutes,
        briefs=briefs_for(grid, market_events, event_context),
    )
    selected = [n for n in ANALYSTS if f"{n}_analysis" in context.selected_output_names]
    with model_failures(), ExitStack() as stack:
        clients = {n: None if llm.is_rules else stack.enter_context(llm.client()) for n in selected}
        with ThreadPoolExecutor(max_workers=len(selected) or 1) as pool:
            futures = {n: pool.submit(analyst_rows, n, inputs, clients[n]) for n in selected}
            frames = {n: f.result() for n, f in futures.items()}
    for name in selected:
        frame = frames[name]
        add_run_summary(
            context,
            {
                "rows": len(frame),
                "stances": MetadataValue.json(frame["stance"].value_counts().to_dict()),
                "mean_confidence": round(float(frame["confidence"].mean()), 3)
                if len(frame)
                else 0.0,
                "models": MetadataValue.json(frame["model"].value_counts().to_dict()),
                "fallbacks": int(frame["fallback"].sum()),
                "rows_citing_events": int((frame["cited_events"] != "[]").sum()),
                **model_metadata(llm, clients[name]),
            },
            asset_key=f"{name}_analysis",
        )
        yield Output(stamped(frame, context), output_name=f"{name}_analysis")
