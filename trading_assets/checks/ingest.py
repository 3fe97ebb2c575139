"""Data-quality checks on the ingest layer: great-expectations suites inside asset checks.

Each check runs once per run, over the minutes its run materialized: it reads them straight
from the warehouse (one query) plus the rows that run wrote *outside* them: a provider that
leaks a bar or a headline from the future puts it there, and the IO manager's own range filter
would hide it. Blocking checks stop every downstream asset (and so every order) when they fail.

Why a check is not partitioned like its asset: Dagster's UI rebuilds every partitioned check's
state from one record per partition on every page that shows it, with set unions that grow with
the partitions (0.6 s for 4,680 minutes per check, ~100 s for a year; BENCHMARKS, "The UI").
A check per run keeps the same guarantee (a run's minutes are checked before anything
downstream of them runs, and a failure blocks them) and names the minutes it checked.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    MetadataValue,
    asset_check,
)
from dagster_duckdb import DuckDBResource

from resources.market_data import MarketDataResource
from resources.warehouse import SCHEMA, table_exists
from trading_assets.assets.ingest import bars, fundamentals, news
from trading_assets.assets.minutes import run_span
from trading_assets.checks.expectations import (
    Expectation,
    ExpectationOutcome,
    SuiteOutcome,
    validate,
)
from trading_assets.partitions import minute_key
from trading_assets.schemas import BAR_COLUMNS, FUNDAMENTAL_COLUMNS, NEWS_COLUMNS, empty_frame

MINUTE = pd.Timedelta(minutes=1)
RUN_ID = {"run_id": "string"}  # every stored row names the run that wrote it
STORED_COLUMNS = {
    table: {**columns, "run_id": "string"}
    for table, columns in (
        ("bars", BAR_COLUMNS),
        ("news", NEWS_COLUMNS),
        ("fundamentals", FUNDAMENTAL_COLUMNS),
    )
}


@dataclass(frozen=True)
class Loaded:
    inside: pd.DataFrame  # rows stored for the check's partition range
    stray: pd.DataFrame  # rows the last materializing run wrote outside that range
    start: pd.Timestamp
    end: pd.Timestamp


def load_rows(
    context: AssetCheckExecutionContext,
    warehouse: DuckDBResource,
    table: str,
    columns: dict[str, str] | None = None,
) -> Loaded | None:
    """The check's rows (its run's minutes), or None when the table has never been written."""
    span = run_span(context)
    start, end = span.first, span.end
    last = context.instance.get_latest_materialization_event(AssetKey(table))
    # The run that wrote this range, not the asset's latest run: runs of overlapping minutes
    # (a live schedule that falls behind) would otherwise flag each other's rows as strays.
    wrote = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(table), asset_partitions=[minute_key(span.last)]),
        limit=1,
    ).records
    last_run = wrote[0].run_id if wrote else ""
    with warehouse.get_connection() as conn:
        if not table_exists(conn, table):
            # The IO manager skips writing an empty frame: a materialized asset with no table
            # simply had no rows (a quiet minute has no news), a never-materialized one is missing.
            if last is None:
                return None
            empty = empty_frame(columns or STORED_COLUMNS[table])
            return Loaded(empty, empty, start, end)
        inside = conn.execute(
            f"SELECT * FROM {SCHEMA}.{table} WHERE minute >= ? AND minute < ?", [start, end]
        ).df()
        stray = conn.execute(
            f"SELECT * FROM {SCHEMA}.{table} WHERE run_id = ? AND (minute < ? OR minute >= ?)",
            [last_run, start, end],
        ).df()
    return Loaded(inside, stray, start, end)


def minute_check(
    **kwargs: Any,
) -> Callable[[Callable[..., AssetCheckResult]], AssetChecksDefinition]:
    """`@asset_check` for the project's checks: the result also names the minutes it checked
    (the run's, `run_span`), since a check runs once per run rather than once per partition."""

    def decorate(fn: Callable[..., AssetCheckResult]) -> AssetChecksDefinition:
        @functools.wraps(fn)
        def checked(context: AssetCheckExecutionContext, *args: Any, **kw: Any) -> AssetCheckResult:
            result = fn(context, *args, **kw)
            span = run_span(context)
            minutes = MetadataValue.text(
                f"{span.first:%Y-%m-%d %H:%M} .. {span.last:%Y-%m-%d %H:%M}"
            )
            return result._replace(metadata={**result.metadata, "minutes_checked": minutes})

        return asset_check(**kwargs)(checked)

    return decorate


def suite_result(
    outcome: SuiteOutcome, stray: pd.DataFrame, end: pd.Timestamp, severity: AssetCheckSeverity
) -> AssetCheckResult:
    stray_after = stray[stray["minute"] >= end] if not stray.empty else stray
    passed = outcome.success and stray.empty
    description = outcome.summary()
    if not stray.empty:
        description = (
            f"{len(stray)} rows written outside the partition range "
            f"({len(stray_after)} stamped at or after its end {end}); " + description
        )
    metadata: dict[str, Any] = {
        "rows": outcome.row_count,
        "rows_outside_range": len(stray),
        "summary": MetadataValue.text(description),
    }
    for o in outcome.outcomes:
        metadata[f"failed: {o.label}" if not o.success else f"ok: {o.label}"] = o.unexpected_count
    return AssetCheckResult(
        passed=passed, severity=severity, metadata=metadata, description=description
    )


def missing_table(table: str) -> AssetCheckResult:
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.ERROR,
        description=f"table {SCHEMA}.{table} does not exist: materialize `{table}` first",
    )


def warehouse_check(
    asset_name: str,
    name: str,
    columns: dict[str, str],
    blocking: bool,
    description: str,
    body: Callable[
        [AssetCheckExecutionContext, DuckDBResource, pd.DataFrame, object], AssetCheckResult
    ],
) -> AssetChecksDefinition:
    """A check that loads the rows its run wrote and hands them to `body`."""

    @minute_check(
        asset=asset_name,
        name=name,
        blocking=blocking,
        description=description,
    )
    def _check(context: AssetCheckExecutionContext, warehouse: DuckDBResource) -> AssetCheckResult:
        loaded = load_rows(context, warehouse, asset_name, {**columns, **RUN_ID})
        if loaded is None:
            return missing_table(asset_name)
        return body(context, warehouse, loaded.inside, loaded)

    return _check


PRICE_COLUMNS = ("open", "high", "low", "close")
# Plausibility bounds, far beyond any real US equity bar and far below float overflow: the
# dearest share ever traded (BRK.A) stayed under USD 1,000,000, and a whole day's consolidated
# US volume is ~1e10 shares. Infinity fails them too (it satisfies every OHLC inequality).
MAX_PRICE = 10_000_000.0
MAX_MINUTE_VOLUME = 10_000_000_000.0
BOUNDS = {**dict.fromkeys(PRICE_COLUMNS, MAX_PRICE), "volume": MAX_MINUTE_VOLUME}

STAMP_OFFSET = "seconds_past_minute"  # a column derived for the check, never stored

BAR_EXPECTATIONS = [
    Expectation(
        "ExpectColumnValuesToBeBetween",
        {"column": STAMP_OFFSET, "min_value": 0, "max_value": 0},
        "stamped on the minute (no seconds)",
    ),
    *[
        Expectation(
            "ExpectColumnValuesToBeBetween",
            {"column": c, "min_value": 0, "strict_min": True},
            f"{c} > 0",
        )
        for c in PRICE_COLUMNS
    ],
    *[
        Expectation("ExpectColumnValuesToNotBeNull", {"column": c}, f"{c} present")
        for c in (*PRICE_COLUMNS, "volume", "ticker", "minute")
    ],
    Expectation(
        "ExpectColumnValuesToBeBetween", {"column": "volume", "min_value": 0}, "volume >= 0"
    ),
    # An infinite or absurd high (1e30) satisfies every OHLC inequality below; only a bound
    # catches it.
    *[
        Expectation(
            "ExpectColumnValuesToBeBetween",
            {"column": c, "max_value": bound},
            f"{c} <= {bound:.0e} (finite, plausible)",
        )
        for c, bound in BOUNDS.items()
    ],
    *[
        Expectation(
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": "high", "column_B": c, "or_equal": True},
            f"high >= {c}",
        )
        for c in ("open", "close", "low")
    ],
    *[
        Expectation(
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": c, "column_B": "low", "or_equal": True},
            f"low <= {c}",
        )
        for c in ("open", "close")
    ],
    Expectation(
        "ExpectCompoundColumnsToBeUnique",
        {"column_list": ["ticker", "minute"]},
        "one bar per ticker and minute",
    ),
]


def with_stamp_offset(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the seconds past the minute of each bar's stamp: a vendor's last row stamped
    15:59:59.999 must fail the check, not be stored as a minute of its own."""
    minute = pd.to_datetime(frame["minute"])
    return frame.assign(**{STAMP_OFFSET: (minute - minute.dt.floor("min")).dt.total_seconds()})


def end_labelled_opens(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """Sessions whose opening minute (09:30) the run covers, with bars at 09:31 and none at
    09:30: what bars labelled by their end (09:31 .. 16:00) look like. The project labels a
    bar by its start; end-labelled data would shift every bar by a minute and lose 15:59's."""
    if frame.empty:
        return []
    minute = pd.to_datetime(frame["minute"])
    found = []
    for day in sorted(set(minute.dt.normalize())):
        opening = day + pd.Timedelta(hours=9, minutes=30)
        second = opening + pd.Timedelta(minutes=1)
        covered = start <= opening and second < end
        if covered and (minute == second).any() and not (minute == opening).any():
            found.append(f"{day:%Y-%m-%d}")
    return found


@minute_check(asset=bars, blocking=True)
def bars_valid(context: AssetCheckExecutionContext, warehouse: DuckDBResource) -> AssetCheckResult:
    """OHLC consistency, positive prices and non-negative volume below plausibility bounds
    (`BOUNDS`: infinity and 1e30 fail), one bar per ticker-minute, and no bar stamped outside
    the partition range; bars stamped off the minute or labelled by their end fail too.
    Blocking: bad bars never reach an analyst."""
    loaded = load_rows(context, warehouse, "bars")
    if loaded is None:
        return missing_table("bars")
    return judge_bars(loaded.inside, loaded.stray, loaded.start, loaded.end)


def judge_bars(
    inside: pd.DataFrame, stray: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> AssetCheckResult:
    """`bars_valid`'s verdict on a run's rows (`inside`) and the rows it wrote elsewhere."""
    outcome = validate(with_stamp_offset(inside), "bars", BAR_EXPECTATIONS)
    shifted = end_labelled_opens(inside, start, end)
    if shifted:
        outcome = SuiteOutcome(
            success=False,
            row_count=outcome.row_count,
            outcomes=[
                *outcome.outcomes,
                ExpectationOutcome(
                    "a bar at the open (09:30), not only after it: bars look labelled by their "
                    "end; label each by its start",
                    False,
                    len(shifted),
                    shifted,
                ),
            ],
        )
    return suite_result(outcome, stray, end, AssetCheckSeverity.ERROR)


@minute_check(asset=bars, blocking=False)
def bars_expected_tickers(
    context: AssetCheckExecutionContext, warehouse: DuckDBResource, market_data: MarketDataResource
) -> AssetCheckResult:
    """Every ticker of the universe has bars in the range. A warning, not a block: a real feed
    misses the odd minute, and a missing bar cannot produce a wrong order downstream."""
    loaded = load_rows(context, warehouse, "bars")
    if loaded is None:
        return missing_table("bars")
    inside = loaded.inside
    expected = market_data.universe()
    outcome = validate(
        inside if not inside.empty else pd.DataFrame({"ticker": pd.Series(dtype="string")}),
        "bars_tickers",
        [
            Expectation(
                "ExpectColumnDistinctValuesToContainSet",
                {"column": "ticker", "value_set": expected},
                "expected tickers present",
            )
        ],
    )
    present = set(inside["ticker"]) if not inside.empty else set()
    missing = sorted(set(expected) - present)
    coverage = (
        inside.groupby("ticker").size().reindex(expected, fill_value=0)
        if not inside.empty
        else pd.Series(0, index=expected)
    )
    return AssetCheckResult(
        passed=outcome.success,
        severity=AssetCheckSeverity.WARN,
        description=f"missing tickers: {missing}" if missing else "every expected ticker present",
        metadata={
            "expected": MetadataValue.text(",".join(expected)),
            "missing": MetadataValue.text(",".join(missing)),
            "bars_per_ticker": MetadataValue.json({k: int(v) for k, v in coverage.items()}),
            "range": MetadataValue.text(f"{loaded.start} .. {loaded.end}"),
        },
    )


NEWS_EXPECTATIONS = [
    Expectation("ExpectColumnValuesToNotBeNull", {"column": "headline"}, "headline present"),
    Expectation(
        "ExpectColumnValueLengthsToBeBetween",
        {"column": "headline", "min_value": 1},
        "headline not empty",
    ),
    Expectation(
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {"column_A": "partition_end", "column_B": "published_at"},
        "published before the partition end",
    ),
    Expectation("ExpectColumnValuesToBeUnique", {"column": "news_id"}, "no duplicate story"),
    Expectation("ExpectColumnValuesToBeUnique", {"column": "story_key"}, "no duplicate headline"),
]


@minute_check(asset=news, blocking=True)
def news_valid(context: AssetCheckExecutionContext, warehouse: DuckDBResource) -> AssetCheckResult:
    """Non-empty headlines, each published before the end of the partition it is stored in
    (no look-ahead), and no story twice. Blocking: analysts never read a future headline."""
    from trading_assets.ingest.news import story_key

    loaded = load_rows(context, warehouse, "news")
    if loaded is None:
        return missing_table("news")
    frame = loaded.inside.assign(
        partition_end=loaded.inside["minute"] + MINUTE,
        story_key=loaded.inside["headline"].fillna("").map(story_key).astype("string"),
    )
    outcome = validate(frame, "news", NEWS_EXPECTATIONS)
    return suite_result(outcome, loaded.stray, loaded.end, AssetCheckSeverity.ERROR)


FUNDAMENTAL_EXPECTATIONS = [
    Expectation(
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {"column_A": "as_of", "column_B": "filed_at"},
        "every value filed before the partition end",
    ),
    Expectation(
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {"column_A": "partition_end", "column_B": "as_of", "or_equal": True},
        "as_of not after the partition end",
    ),
    Expectation(
        "ExpectCompoundColumnsToBeUnique",
        {"column_list": ["ticker", "minute"]},
        "one snapshot per ticker and minute",
    ),
]


@minute_check(asset=fundamentals, blocking=True)
def fundamentals_point_in_time(
    context: AssetCheckExecutionContext, warehouse: DuckDBResource
) -> AssetCheckResult:
    """Every value in a snapshot was filed before the partition ended. Blocking: a fundamental
    from the future would make every backtest look better than it can be."""
    loaded = load_rows(context, warehouse, "fundamentals")
    if loaded is None:
        return missing_table("fundamentals")
    frame = loaded.inside.assign(partition_end=loaded.inside["minute"] + MINUTE)
    outcome = validate(frame, "fundamentals", FUNDAMENTAL_EXPECTATIONS)
    return suite_result(outcome, loaded.stray, loaded.end, AssetCheckSeverity.ERROR)


INGEST_CHECKS = [bars_valid, bars_expected_tickers, news_valid, fundamentals_point_in_time]
