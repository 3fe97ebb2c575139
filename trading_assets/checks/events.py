"""Checks on the events layer: tickers in the universe, duplicates collapsed, no look-ahead in
the context, sane embeddings. Plain pandas over the warehouse rows of the check's range."""

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
)
from dagster_duckdb import DuckDBResource

from resources.market_data import MarketDataResource
from resources.warehouse import SCHEMA, table_exists
from trading_assets.assets.events import CONTEXT_COLUMNS, MARKET_EVENT_COLUMNS
from trading_assets.checks.ingest import (
    RUN_ID,
    load_rows,
    minute_check,
    missing_table,
    warehouse_check,
)
from trading_assets.events.context import split_tickers
from trading_assets.events.extract import EVENT_TYPES
from trading_assets.ingest.news import story_key
from trading_assets.partitions import session_bounds

EMBEDDING_DIM = 256
NORM_TOLERANCE = 1e-3


def _result(
    problems: list[str], severity: AssetCheckSeverity, ok: str, metadata: dict[str, object]
) -> AssetCheckResult:
    return AssetCheckResult(
        passed=not problems,
        severity=severity,
        description="; ".join(problems[:10]) or ok,
        metadata={
            **metadata,
            "problems": len(problems),
            "first_problems": MetadataValue.json(problems[:20]),
        },
    )


def event_problems(frame: pd.DataFrame, universe: set[str]) -> list[str]:
    """Every stored market event names only universe tickers, a known type, urgency 1..10."""
    problems: list[str] = []
    for row in frame.itertuples(index=False):
        outside = [t for t in split_tickers(row.tickers) if t not in universe]
        if outside:
            problems.append(f"{row.event_id}: tickers outside the universe {outside}")
        if row.event_type not in EVENT_TYPES:
            problems.append(f"{row.event_id}: unknown event type {row.event_type!r}")
        if not 1 <= int(row.urgency) <= 10:
            problems.append(f"{row.event_id}: urgency {row.urgency} outside 1..10")
        if pd.Timestamp(row.published_at) >= pd.Timestamp(row.minute) + pd.Timedelta(minutes=1):
            problems.append(f"{row.event_id}: published after its partition ended")
    dupes = frame["event_id"][frame["event_id"].duplicated()]
    if len(dupes):
        problems.append(f"{len(dupes)} event ids stored twice (e.g. {dupes.iloc[0]})")
    return problems


@minute_check(
    asset="market_events",
    name="market_events_valid",
    blocking=True,
    description="Every event's tickers are in the universe (a model's ticker outside it is "
    "never stored), its type is known, urgency 1..10, published before its partition ended, one "
    "row per event id, nothing written outside the range.",
)
def market_events_valid(
    context: AssetCheckExecutionContext,
    warehouse: DuckDBResource,
    market_data: MarketDataResource,
) -> AssetCheckResult:
    loaded = load_rows(context, warehouse, "market_events", {**MARKET_EVENT_COLUMNS, **RUN_ID})
    if loaded is None:
        return missing_table("market_events")
    frame = loaded.inside
    problems = event_problems(frame, set(market_data.universe())) if len(frame) else []
    if len(loaded.stray):
        problems.append(f"{len(loaded.stray)} rows written outside the partition range")
    return _result(
        problems,
        AssetCheckSeverity.ERROR,
        f"{len(frame)} events valid",
        {"events": len(frame)},
    )


def duplicate_problems(frame: pd.DataFrame, roots: pd.DataFrame) -> tuple[list[str], int]:
    """(problems, unresolved roots). Within the range no two first events share a story key;
    a duplicate points at a different, earlier-or-same-minute first event when that event is
    stored. A root not stored at all (its partition was never materialized: the story came from
    the news look-back) is counted, not failed."""
    problems: list[str] = []
    first = frame[frame["duplicate_of"].fillna("") == ""]
    keys = first["headline"].fillna("").astype(str).map(story_key)
    repeated = keys[keys.duplicated(keep=False) & (keys != "")]
    if len(repeated):
        problems.append(
            f"{repeated.nunique()} stories stored as several first events "
            f"(e.g. {repeated.iloc[0][:60]!r})"
        )
    dups = frame[frame["duplicate_of"].fillna("") != ""]
    by_id = roots.set_index("event_id") if len(roots) else pd.DataFrame()
    unresolved = 0
    for row in dups.itertuples(index=False):
        if row.duplicate_of == row.event_id:
            problems.append(f"{row.event_id}: duplicate of itself")
            continue
        if row.duplicate_of not in by_id.index:
            unresolved += 1
            continue
        root = by_id.loc[row.duplicate_of]
        if isinstance(root, pd.DataFrame):
            root = root.iloc[0]
        if str(root["duplicate_of"] or ""):
            problems.append(f"{row.event_id}: its root {row.duplicate_of} is itself a duplicate")
        if pd.Timestamp(root["minute"]) > pd.Timestamp(row.minute):
            problems.append(f"{row.event_id}: its root {row.duplicate_of} arrived later")
    return problems, unresolved


def _deduplicated(
    context, warehouse: DuckDBResource, frame: pd.DataFrame, loaded
) -> AssetCheckResult:
    roots = frame.iloc[:0]
    targets = sorted(set(frame["duplicate_of"].dropna()) - {""}) if len(frame) else []
    if targets:
        with warehouse.get_connection() as conn:
            if table_exists(conn, "market_events"):
                roots = conn.execute(
                    f"SELECT event_id, minute, duplicate_of FROM {SCHEMA}.market_events "
                    "WHERE list_contains(?, event_id)",
                    [targets],
                ).df()
    problems, unresolved = duplicate_problems(frame, roots) if len(frame) else ([], 0)
    return _result(
        problems,
        AssetCheckSeverity.WARN,
        f"{len(frame)} events, duplicates collapsed",
        {
            "events": len(frame),
            "duplicates": int((frame["duplicate_of"].fillna("") != "").sum()) if len(frame) else 0,
            "unresolved_roots": unresolved,
        },
    )


market_events_deduplicated = warehouse_check(
    "market_events",
    "market_events_deduplicated",
    MARKET_EVENT_COLUMNS,
    blocking=False,
    description="A story counts once: no two first events in the range share a story key, and "
    "every duplicate points at a stored, earlier, first event (roots outside the materialized "
    "partitions are counted in metadata).",
    body=_deduplicated,
)


def context_problems(frame: pd.DataFrame) -> list[str]:
    """Look-ahead: every neighbour arrived before the row's partition, and its impact window
    (recorded, and recomputed as its session's close) ended at or before the partition start."""
    problems: list[str] = []
    for row in frame.itertuples(index=False):
        start = pd.Timestamp(row.minute)
        tag = f"{row.event_id}/{row.ticker} #{row.rank}"
        if row.neighbour_event_id == row.event_id:
            problems.append(f"{tag}: cites itself")
        if pd.Timestamp(row.neighbour_minute) >= start:
            problems.append(f"{tag}: neighbour arrived at {row.neighbour_minute}, not before")
        if pd.isna(row.impact_end) or pd.Timestamp(row.impact_end) > start:
            problems.append(f"{tag}: neighbour impact window ends {row.impact_end}, after start")
        bounds = session_bounds(pd.Timestamp(row.neighbour_minute).date())
        if bounds is None or bounds[1] > start:
            problems.append(f"{tag}: neighbour's session closes after the partition start")
    keys = frame[["minute", "event_id", "ticker", "neighbour_event_id"]]
    if keys.duplicated().any():
        problems.append(f"{int(keys.duplicated().sum())} neighbours cited twice for one event")
    return problems


def _point_in_time(context, warehouse, frame: pd.DataFrame, loaded) -> AssetCheckResult:
    problems = context_problems(frame) if len(frame) else []
    if len(loaded.stray):
        problems.append(f"{len(loaded.stray)} rows written outside the partition range")
    return _result(
        problems,
        AssetCheckSeverity.ERROR,
        f"{len(frame)} context rows point in time",
        {"rows": len(frame), "events": int(frame["event_id"].nunique()) if len(frame) else 0},
    )


event_context_point_in_time = warehouse_check(
    "event_context",
    "event_context_point_in_time",
    CONTEXT_COLUMNS,
    blocking=True,
    description="No look-ahead: every context event arrived before the partition and its whole "
    "impact window (to its session's close) ended at or before the partition start; no event "
    "cites itself or a neighbour twice; nothing written outside the range.",
    body=_point_in_time,
)


def embedding_problems(frame: pd.DataFrame) -> list[str]:
    problems: list[str] = []
    dims = set(frame["embedding_dim"].astype(int))
    if dims != {EMBEDDING_DIM}:
        problems.append(f"embedding dimensions {sorted(dims)}, expected {EMBEDDING_DIM}")
    off = frame[(frame["embedding_norm"].astype(float) - 1.0).abs() > NORM_TOLERANCE]
    if len(off):
        problems.append(f"{len(off)} rows whose embedding is not unit-norm (e.g. {off.iloc[0]})")
    sims = frame["similarity"].astype(float)
    if (~np.isfinite(sims) | (sims.abs() > 1 + NORM_TOLERANCE)).any():
        problems.append("similarity outside [-1, 1]")
    ranks = frame.groupby(["minute", "event_id", "ticker"])["rank"]
    if (ranks.min() != 1).any() or (ranks.max() != ranks.count()).any():
        problems.append("ranks are not 1..n per event and ticker")
    return problems


def _embeddings(context, warehouse, frame: pd.DataFrame, loaded) -> AssetCheckResult:
    problems = embedding_problems(frame) if len(frame) else []
    return _result(
        problems,
        AssetCheckSeverity.WARN,
        f"{len(frame)} context rows, embeddings sane",
        {
            "rows": len(frame),
            "embedding_model": str(frame["embedding_model"].iloc[0]) if len(frame) else "",
        },
    )


event_context_embeddings = warehouse_check(
    "event_context",
    "event_context_embeddings",
    CONTEXT_COLUMNS,
    blocking=False,
    description=f"Embeddings are sane: dimension {EMBEDDING_DIM}, unit norm within "
    f"{NORM_TOLERANCE}, similarities in [-1, 1], ranks 1..n per event and ticker.",
    body=_embeddings,
)


EVENT_CHECKS = [
    market_events_valid,
    market_events_deduplicated,
    event_context_point_in_time,
    event_context_embeddings,
]
