"""Checks on the trade signals and the order ledger: nothing unsafe may reach the broker.

Plain pandas and the risk manager's own validator (no great-expectations suite): these two run
on the live path every minute, where a GX validation's ~0.3 s is latency before the order.
"""

import json

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
)
from dagster_duckdb import DuckDBResource
from pydantic import ValidationError

from resources.trading_controls import TradingControls
from trading_assets.checks.ingest import RUN_ID, load_rows, minute_check, missing_table
from trading_assets.decision.risk import Signal, validate
from trading_assets.decision.signals import SIGNAL_COLUMNS
from trading_assets.execution.ledger import LEDGER_COLUMNS, SENT_STATES

SIGNAL_FIELDS = tuple(Signal.model_fields)


def signal_problems(frame: pd.DataFrame, max_total_exposure_pct: float) -> list[str]:
    """Every rule a stored trade_signals frame breaks (empty: none)."""
    problems: list[str] = []
    dupes = frame["signal_id"][frame["signal_id"].duplicated()]
    if len(dupes):
        problems.append(f"{len(dupes)} duplicate signal ids (e.g. {dupes.iloc[0]})")
    for row in frame.to_dict("records"):
        sid = row["signal_id"]
        try:
            reasons = json.loads(row["reasons"])
        except (TypeError, ValueError):
            problems.append(f"{sid}: reasons is not a JSON list")
            continue
        fields = {k: row[k] for k in SIGNAL_FIELDS if k not in ("reasons", "minute")}
        try:
            signal = Signal(**fields, minute=str(row["minute"]), reasons=reasons)
        except ValidationError as exc:  # e.g. action "buy", a null status: report, don't crash
            bad = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            problems.append(f"{sid} {row['ticker']}: not a valid signal row ({bad})")
            continue
        problems += [f"{sid} {row['ticker']}: {p}" for p in validate(signal)]
        if row["status"] == "rejected" and (row["action"] != "HOLD" or row["qty"] != 0):
            problems.append(f"{sid}: rejected but action {row['action']} qty {row['qty']}")
        if row["status"] in ("rejected", "resized") and not reasons:
            problems.append(f"{sid}: {row['status']} without a reason")
        if row["action"] != "HOLD" and row["action"] != row["proposed_action"]:
            problems.append(f"{sid}: action {row['action']} differs from the proposal")
    live = frame[frame["action"] != "HOLD"]
    if len(live):
        value = (live["qty"] * live["entry"]).groupby(live["minute"]).sum()
        cap = (live["equity"] * max_total_exposure_pct).groupby(live["minute"]).max()
        over = value[value > cap * 1.0001]
        for minute, total in over.items():
            problems.append(f"{minute}: new exposure {total:,.2f} above the cap {cap[minute]:,.2f}")
    return problems


@minute_check(
    asset="trade_signals",
    name="trade_signals_valid",
    blocking=True,
    description="Every signal passes the risk manager's validator (ticker, quantity 1..10000, "
    "positive prices, stop < entry < take-profit mirrored for sells, confidence in [0, 1]); "
    "rejected ones hold with qty 0 and say why; one row per signal id; a minute's new exposure "
    "within the total cap; nothing written outside the range. Blocking: no order from bad data.",
)
def trade_signals_valid(
    context: AssetCheckExecutionContext, warehouse: DuckDBResource, controls: TradingControls
) -> AssetCheckResult:
    loaded = load_rows(context, warehouse, "trade_signals", {**SIGNAL_COLUMNS, **RUN_ID})
    if loaded is None:
        return missing_table("trade_signals")
    problems = signal_problems(loaded.inside, controls.max_total_exposure_pct)
    if len(loaded.stray):
        problems.append(f"{len(loaded.stray)} rows written outside the partition range")
    frame = loaded.inside
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(problems[:10]) or f"{len(frame)} signals valid",
        metadata={
            "signals": len(frame),
            "actionable": int((frame["action"] != "HOLD").sum()) if len(frame) else 0,
            "problems": len(problems),
            "first_problems": MetadataValue.json(problems[:20]),
        },
    )


def ledger_problems(signals: pd.DataFrame, ledger: pd.DataFrame) -> list[str]:
    """Rules between the signals and the ledger: every signal recorded once, no order for a
    signal the risk manager rejected, the size sent is the size signalled."""
    problems: list[str] = []
    dupes = ledger["signal_id"][ledger["signal_id"].duplicated()]
    if len(dupes):
        problems.append(f"{len(dupes)} signals recorded twice (e.g. {dupes.iloc[0]})")
    missing = set(signals["signal_id"]) - set(ledger["signal_id"])
    if missing:
        problems.append(f"{len(missing)} signals without a ledger row (e.g. {sorted(missing)[0]})")
    merged = ledger.merge(
        signals[["signal_id", "action", "qty"]], on="signal_id", suffixes=("", "_signal")
    )
    sent = merged[merged["state"].isin(SENT_STATES)]
    for row in sent[sent["action"] == "HOLD"].itertuples():
        problems.append(f"{row.signal_id}: an order was sent for a signal that holds")
    for row in sent[sent["qty"] != sent["qty_signal"]].itertuples():
        problems.append(
            f"{row.signal_id}: sent {row.qty} shares, the signal asked {row.qty_signal}"
        )
    return problems


@minute_check(
    asset="broker_orders",
    name="broker_orders_match_signals",
    blocking=False,
    description="Every trade signal has exactly one ledger row; no order was sent for a "
    "rejected signal; the quantity sent is the quantity signalled.",
)
def broker_orders_match_signals(
    context: AssetCheckExecutionContext, warehouse: DuckDBResource
) -> AssetCheckResult:
    ledger = load_rows(context, warehouse, "broker_orders", {**LEDGER_COLUMNS, **RUN_ID})
    signals = load_rows(context, warehouse, "trade_signals", {**SIGNAL_COLUMNS, **RUN_ID})
    if ledger is None:
        return missing_table("broker_orders")
    if signals is None:
        return missing_table("trade_signals")
    problems = ledger_problems(signals.inside, ledger.inside)
    states = ledger.inside["state"].value_counts().to_dict() if len(ledger.inside) else {}
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(problems[:10]) or f"{len(ledger.inside)} ledger rows match",
        metadata={"states": MetadataValue.json(states), "problems": len(problems)},
    )


DECISION_CHECKS = [trade_signals_valid, broker_orders_match_signals]
