"""Checks on every agent asset: the gate, the four analysts, the two researchers and the debate.

Blocking checks guard what a trade could be built from: schema and ranges, one row per ticker
and minute, no input stamped at or after the partition end, every selected ticker-minute
debated, and a judge whose action agrees with its own stance. The fallback rate is a warning:
a model that keeps failing validation degrades the team to HOLD, which is safe but worth knowing.
"""

import json
import os

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    MetadataValue,
)
from dagster_duckdb import DuckDBResource

from resources.warehouse import SCHEMA, table_exists
from trading_assets.analysts.report import ANALYSIS_COLUMNS
from trading_assets.analysts.team import ANALYSTS
from trading_assets.checks.expectations import Expectation, validate
from trading_assets.checks.ingest import MINUTE, suite_result, warehouse_check
from trading_assets.research.gating import TRIGGER_COLUMNS
from trading_assets.research.protocol import ARGUMENT_COLUMNS, DEBATE_COLUMNS

FALLBACK_WARN_RATE = float(os.environ.get("TRADING_LLM_FALLBACK_WARN", "0.05"))


def _in_set(column: str, values: list[object], label: str) -> Expectation:
    return Expectation(
        "ExpectColumnValuesToBeInSet", {"column": column, "value_set": values}, label
    )


def _between(column: str, low: float, high: float) -> Expectation:
    return Expectation(
        "ExpectColumnValuesToBeBetween",
        {"column": column, "min_value": low, "max_value": high},
        f"{low} <= {column} <= {high}",
    )


def _not_null(*columns: str) -> list[Expectation]:
    return [
        Expectation("ExpectColumnValuesToNotBeNull", {"column": c}, f"{c} present") for c in columns
    ]


UNIQUE_TICKER_MINUTE = Expectation(
    "ExpectCompoundColumnsToBeUnique",
    {"column_list": ["ticker", "minute"]},
    "one row per ticker and minute",
)
NO_LOOK_AHEAD = _in_set("as_of_ok", [True], "no input stamped at or after the partition end")


def _as_of_ok(frame: pd.DataFrame) -> pd.Series:
    as_of = frame["data_as_of"]
    return (as_of.isna() | (as_of < frame["minute"] + MINUTE)).astype(bool)


def _json_list(values: pd.Series) -> pd.Series:
    def ok(text: object) -> bool:
        try:
            return isinstance(json.loads(str(text)), list)
        except ValueError:
            return False

    return values.map(ok).astype(bool)


ANALYSIS_EXPECTATIONS = [
    *_not_null("ticker", "minute", "stance", "score", "confidence", "model", "prompt_hash"),
    _in_set("stance", ["bullish", "bearish", "neutral"], "stance is bullish/bearish/neutral"),
    _between("score", -1.0, 1.0),
    _between("confidence", 0.0, 1.0),
    _in_set("key_points_ok", [True], "key_points is a JSON list"),
    UNIQUE_TICKER_MINUTE,
    NO_LOOK_AHEAD,
]


def _analysis_valid(asset_name: str) -> AssetChecksDefinition:
    def body(context, warehouse, frame, loaded) -> AssetCheckResult:
        checked = frame.assign(
            as_of_ok=_as_of_ok(frame), key_points_ok=_json_list(frame["key_points"])
        )
        outcome = validate(checked, asset_name, ANALYSIS_EXPECTATIONS)
        return suite_result(outcome, loaded.stray, loaded.end, AssetCheckSeverity.ERROR)

    return warehouse_check(
        asset_name,
        f"{asset_name}_valid",
        ANALYSIS_COLUMNS,
        True,
        "Stance/score/confidence in range, one row per ticker and minute, no input stamped after "
        "the partition end, written inside the range. Blocking.",
        body,
    )


def _fallback_rate(asset_name: str, columns: dict[str, str]) -> AssetChecksDefinition:
    def body(context, warehouse, frame, loaded) -> AssetCheckResult:
        rate = float(frame["fallback"].mean()) if len(frame) else 0.0
        reasons = frame.loc[frame["fallback"].astype(bool), "fallback_reason"].value_counts()
        return AssetCheckResult(
            passed=rate <= FALLBACK_WARN_RATE,
            severity=AssetCheckSeverity.WARN,
            description=f"fallback rate {rate:.1%} (warn above {FALLBACK_WARN_RATE:.0%})",
            metadata={
                "fallback_rate": rate,
                "fallbacks": int(frame["fallback"].sum()),
                "rows": len(frame),
                "reasons": MetadataValue.json({str(k): int(v) for k, v in reasons.head(5).items()}),
            },
        )

    return warehouse_check(
        asset_name,
        f"{asset_name}_fallback_rate",
        columns,
        False,
        "Share of rows where the model's answer failed validation twice (or the call failed) "
        "and the safe fallback was used. A warning above TRADING_LLM_FALLBACK_WARN (5%).",
        body,
    )


def _read(warehouse: DuckDBResource, table: str, loaded) -> pd.DataFrame | None:
    with warehouse.get_connection() as conn:
        if not table_exists(conn, table):
            return None
        return conn.execute(
            f"SELECT * FROM {SCHEMA}.{table} WHERE minute >= ? AND minute < ?",
            [loaded.start, loaded.end],
        ).df()


def _debated_keys(warehouse: DuckDBResource, loaded) -> set[tuple[str, pd.Timestamp]]:
    triggers = _read(warehouse, "debate_triggers", loaded)
    if triggers is None:
        return set()
    chosen = triggers[triggers["debated"].astype(bool)]
    return set(zip(chosen["ticker"], chosen["minute"], strict=True))


TRIGGER_EXPECTATIONS = [
    *_not_null("ticker", "minute", "triggered", "debated"),
    _in_set("debate_implies_trigger", [True], "only triggered ticker-minutes are debated"),
    _in_set("hold_has_reason", [True], "every ticker-minute not debated says why"),
    UNIQUE_TICKER_MINUTE,
    NO_LOOK_AHEAD,
]


def _triggers_body(context, warehouse, frame, loaded) -> AssetCheckResult:
    checked = frame.assign(
        as_of_ok=_as_of_ok(frame),
        debate_implies_trigger=(~frame["debated"] | frame["triggered"]).astype(bool),
        hold_has_reason=(frame["debated"] | (frame["hold_reason"].fillna("") != "")).astype(bool),
    )
    outcome = validate(checked, "debate_triggers", TRIGGER_EXPECTATIONS)
    return suite_result(outcome, loaded.stray, loaded.end, AssetCheckSeverity.ERROR)


ARGUMENT_EXPECTATIONS = [
    *_not_null("ticker", "minute", "thesis", "model"),
    _between("strength", 0.0, 1.0),
    _in_set("round", [1], "openings are round 1"),
    _in_set("argues_for_debate", [True], "arguments only for debated ticker-minutes"),
    UNIQUE_TICKER_MINUTE,
]


def _arguments_body(side: str):
    def body(context, warehouse, frame, loaded) -> AssetCheckResult:
        debated = _debated_keys(warehouse, loaded)
        keys = list(zip(frame["ticker"], frame["minute"], strict=True))
        checked = frame.assign(argues_for_debate=[k in debated for k in keys])
        outcome = validate(
            checked,
            f"{side}_case",
            [*ARGUMENT_EXPECTATIONS, _in_set("side", [side], f"every argument is the {side}'s")],
        )
        result = suite_result(outcome, loaded.stray, loaded.end, AssetCheckSeverity.ERROR)
        missing = sorted(debated - set(keys))
        if not missing:
            return result
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            description=f"{len(missing)} debated ticker-minutes have no {side} opening "
            f"(e.g. {missing[0][0]} {missing[0][1]}); " + (result.description or ""),
            metadata=dict(result.metadata or {}),
        )

    return body


DEBATE_EXPECTATIONS = [
    *_not_null("ticker", "minute", "action", "stance", "confidence", "model"),
    _in_set("action", ["BUY", "SELL", "HOLD"], "action is BUY/SELL/HOLD"),
    _in_set("stance", ["bullish", "bearish", "neutral"], "stance is bullish/bearish/neutral"),
    _between("confidence", 0.0, 1.0),
    _between("horizon_minutes", 1, 390),
    _in_set("consistent", [True], "the judge's action agrees with its stated stance"),
    _in_set("selected_debated", [True], "every ticker-minute the gate selected was debated"),
    _in_set("hold_when_not_debated", [True], "ticker-minutes not debated HOLD with a reason"),
    _in_set("transcript_ok", [True], "debated rows carry their transcript"),
    UNIQUE_TICKER_MINUTE,
    NO_LOOK_AHEAD,
]


def _debate_body(context, warehouse, frame, loaded) -> AssetCheckResult:
    selected = _debated_keys(warehouse, loaded)
    keys = list(zip(frame["ticker"], frame["minute"], strict=True))
    debated = frame["debated"].astype(bool)
    transcripts = frame["transcript"].fillna("[]").map(json.loads)
    checked = frame.assign(
        as_of_ok=_as_of_ok(frame),
        selected_debated=[
            (k not in selected) or bool(d) for k, d in zip(keys, debated, strict=True)
        ],
        hold_when_not_debated=(
            debated | ((frame["action"] == "HOLD") & (frame["hold_reason"].fillna("") != ""))
        ).astype(bool),
        transcript_ok=(~debated | transcripts.map(lambda t: len(t) >= 2)).astype(bool),
    )
    outcome = validate(checked, "debate", DEBATE_EXPECTATIONS)
    result = suite_result(outcome, loaded.stray, loaded.end, AssetCheckSeverity.ERROR)
    missing = sorted(selected - set(keys))
    if not missing:
        return result
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(missing)} selected ticker-minutes have no debate row; "
        + (result.description or ""),
        metadata=dict(result.metadata or {}),
    )


AGENT_CHECKS: list[AssetChecksDefinition] = [
    warehouse_check(
        "debate_triggers",
        "debate_triggers_valid",
        TRIGGER_COLUMNS,
        True,
        "Only triggered ticker-minutes debated, every other one says why, no look-ahead. Blocking.",
        _triggers_body,
    ),
    *[_analysis_valid(f"{name}_analysis") for name in ANALYSTS],
    *[_fallback_rate(f"{name}_analysis", ANALYSIS_COLUMNS) for name in ANALYSTS],
    *[
        warehouse_check(
            f"{side}_case",
            f"{side}_case_valid",
            ARGUMENT_COLUMNS,
            True,
            f"Every debated ticker-minute has a round-1 {side} argument with strength in [0, 1]. "
            "Blocking.",
            _arguments_body(side),
        )
        for side in ("bull", "bear")
    ],
    warehouse_check(
        "debate",
        "debate_valid",
        DEBATE_COLUMNS,
        True,
        "Action/stance/confidence/horizon in range, judge consistent with its stance, every "
        "selected ticker-minute debated with a transcript, the rest HOLD with a reason, no "
        "look-ahead. Blocking: no trade comes from an inconsistent verdict.",
        _debate_body,
    ),
    _fallback_rate("debate", DEBATE_COLUMNS),
]
