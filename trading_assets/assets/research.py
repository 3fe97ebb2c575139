"""The research layer: the bull and bear openings, then the debate rounds and the judge.

Only ticker-minutes the gate selected are debated; every other ticker-minute gets a HOLD row that
says why, so `debate` has one row per ticker and minute like the analysts.
"""

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    Config,
    MetadataValue,
    Output,
    TableColumn,
    TableMetadataValue,
    TableRecord,
    TableSchema,
    asset,
    multi_asset,
)
from pydantic import Field

from resources.llm import LLMResource
from resources.market_data import MarketDataResource
from trading_assets.analysts.sentiment import headline_targets
from trading_assets.analysts.team import ANALYSTS
from trading_assets.assets.analysts import (
    EVENT_INS,
    MINUTE_ASSET,
    NEWS_HISTORY,
    briefs_for,
    model_failures,
    model_metadata,
)
from trading_assets.assets.ingest import PARTITION_EXPR, stamped
from trading_assets.assets.metadata import add_run_summary
from trading_assets.research.bundle import Key, build_bundles
from trading_assets.research.debate import DEFAULT_ROUNDS, AnalystBundle, Side
from trading_assets.research.protocol import (
    argue,
    argument_frame,
    arguments_from_frame,
    debate_frame,
    judge,
    run_rounds,
)
from trading_assets.research.transcript import (
    VERDICT_COLUMNS,
    notable,
    transcript_markdown,
    verdict_rows,
)

ANALYSIS_INS = {f"{name}_analysis": AssetIn() for name in ANALYSTS}


def _bundles(
    market_data: MarketDataResource,
    analyses: tuple[pd.DataFrame, ...],
    triggers: pd.DataFrame,
    news: pd.DataFrame,
    market_events: pd.DataFrame,
    event_context: pd.DataFrame,
) -> dict[Key, AnalystBundle]:
    """The analyst reports (in ANALYSTS order), triggers, headlines and the event brief per
    debated minute."""
    headlines = headline_targets(news, market_data.stock_tickers())
    debated = triggers[triggers["debated"].astype(bool)]
    briefs = briefs_for(debated, market_events, event_context)
    return build_bundles(dict(zip(ANALYSTS, analyses, strict=True)), triggers, headlines, briefs)


@multi_asset(
    outs={
        f"{side}_case": AssetOut(
            metadata={"partition_expr": PARTITION_EXPR},
            group_name="research",
            kinds={"pandas", "duckdb"},
            description=f"The {side} researcher's opening argument (round 1) for every debated "
            "ticker-minute, built from the four analyst reports.",
            is_required=False,
        )
        for side in ("bull", "bear")
    },
    ins={
        **ANALYSIS_INS,
        "debate_triggers": AssetIn(),
        "news": NEWS_HISTORY,
        **EVENT_INS,
    },
    can_subset=True,
    **MINUTE_ASSET,
)
def researchers(
    context: AssetExecutionContext,
    market_data: MarketDataResource,
    llm: LLMResource,
    technical_analysis: pd.DataFrame,
    fundamental_analysis: pd.DataFrame,
    sentiment_analysis: pd.DataFrame,
    macro_analysis: pd.DataFrame,
    debate_triggers: pd.DataFrame,
    news: pd.DataFrame,
    market_events: pd.DataFrame,
    event_context: pd.DataFrame,
):
    """Bull and bear openings, in parallel threads; each sees the ticker's event brief."""
    bundles = _bundles(
        market_data,
        (technical_analysis, fundamental_analysis, sentiment_analysis, macro_analysis),
        debate_triggers,
        news,
        market_events,
        event_context,
    )
    sides = [
        s for s in (Side.BULL, Side.BEAR) if f"{s.value}_case" in context.selected_output_names
    ]
    with model_failures(), ExitStack() as stack:
        clients = {s: None if llm.is_rules else stack.enter_context(llm.client()) for s in sides}
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {s: pool.submit(argue, s, 1, bundles, None, clients[s]) for s in sides}
            said = {s: f.result() for s, f in futures.items()}
    for side in sides:
        frame = argument_frame(said[side])
        add_run_summary(
            context,
            {
                "arguments": len(frame),
                "mean_strength": round(float(frame["strength"].mean()), 3) if len(frame) else 0.0,
                "fallbacks": int(frame["fallback"].sum()),
                **model_metadata(llm, clients[side]),
            },
            asset_key=f"{side.value}_case",
        )
        yield Output(stamped(frame, context), output_name=f"{side.value}_case")


VERDICTS_SHOWN = 50
TRANSCRIPT_HINT = (
    "\n*Any minute's transcript: `make transcript MINUTE='2026-03-23 10:15'` "
    "(or `python -m trading_assets.transcript`).*\n"
)


def verdict_table(debated: pd.DataFrame) -> TableMetadataValue:
    """The run's latest verdicts as a table the asset page shows inline."""
    rows = verdict_rows(debated, VERDICTS_SHOWN)
    columns = [TableColumn(name) for name in VERDICT_COLUMNS]
    return MetadataValue.table(
        records=[TableRecord(r) for r in rows], schema=TableSchema(columns=columns)
    )


class DebateConfig(Config):
    rounds: int = Field(DEFAULT_ROUNDS, ge=1, le=6, description="rounds incl. the openings")


@asset(
    ins={
        **ANALYSIS_INS,
        "bull_case": AssetIn(),
        "bear_case": AssetIn(),
        "debate_triggers": AssetIn(),
        "news": NEWS_HISTORY,
        **EVENT_INS,
    },
    metadata={"partition_expr": PARTITION_EXPR},
    group_name="research",
    kinds={"pandas", "duckdb"},
    **MINUTE_ASSET,
)
def debate(
    context: AssetExecutionContext,
    config: DebateConfig,
    market_data: MarketDataResource,
    llm: LLMResource,
    technical_analysis: pd.DataFrame,
    fundamental_analysis: pd.DataFrame,
    sentiment_analysis: pd.DataFrame,
    macro_analysis: pd.DataFrame,
    bull_case: pd.DataFrame,
    bear_case: pd.DataFrame,
    debate_triggers: pd.DataFrame,
    news: pd.DataFrame,
    market_events: pd.DataFrame,
    event_context: pd.DataFrame,
) -> pd.DataFrame:
    """Rounds 2..N (each side answers the other's last argument), then the judge's action,
    confidence, horizon, rationale and consensus, with the transcript. One row per ticker and
    minute: HOLD with the reason where the gate did not select a debate."""
    bundles = _bundles(
        market_data,
        (technical_analysis, fundamental_analysis, sentiment_analysis, macro_analysis),
        debate_triggers,
        news,
        market_events,
        event_context,
    )
    bull_open, bear_open = arguments_from_frame(bull_case), arguments_from_frame(bear_case)
    missing = [k for k in bundles if k not in bull_open or k not in bear_open]
    if missing:
        raise ValueError(
            f"{len(missing)} debated ticker-minutes have no opening argument (e.g. {missing[0]}): "
            "materialize bull_case and bear_case for the same partitions first"
        )
    with model_failures(), ExitStack() as stack:
        client = None if llm.is_rules else stack.enter_context(llm.client())
        transcripts, rounds_said = run_rounds(
            bundles,
            {k: s.value for k, s in bull_open.items()},  # type: ignore[misc]
            {k: s.value for k, s in bear_open.items()},  # type: ignore[misc]
            config.rounds,
            client,
        )
        verdicts = judge(bundles, transcripts, client)
        stats = model_metadata(llm, client)
    opening = {k: [bull_open[k], bear_open[k]] for k in bundles}
    frame = debate_frame(
        debate_triggers, transcripts, opening, rounds_said, verdicts, config.rounds
    )
    debated = frame[frame["debated"]]
    add_run_summary(
        context,
        {
            "ticker_minutes": len(frame),
            "debates": len(debated),
            "verdicts": verdict_table(debated),
            "transcripts": MetadataValue.md(
                "\n".join(transcript_markdown(row) for row in notable(debated).to_dict("records"))
                + TRANSCRIPT_HINT
                if len(debated)
                else "no debate in this run"
            ),
            "actions": MetadataValue.json(debated["action"].value_counts().to_dict()),
            "consensus": MetadataValue.json(debated["consensus"].value_counts().to_dict()),
            "fallbacks": int(frame["fallback"].sum()),
            "debates_citing_events": int((debated["cited_events"] != "[]").sum()),
            "rounds": config.rounds,
            **stats,
        },
    )
    return stamped(frame, context)
