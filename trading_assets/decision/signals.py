"""From one minute's debate to its trade signals: the trader's proposals, reviewed in a batch.

The asset is wiring around `minute_signals`; this module joins the judge's verdicts with the
technical features the risk manager needs (close, ATR), calls the trader and the risk manager
and lays the result out as `SIGNAL_COLUMNS`. One row per proposal (a debated BUY/SELL verdict):
approved, resized or rejected with the reasons. A minute without proposals has no rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime

import pandas as pd

from trading_assets.decision.risk import (
    PortfolioState,
    RiskLimits,
    Signal,
    minutes_to_close,
    review_batch,
)
from trading_assets.decision.trader import Proposal, propose
from trading_assets.schemas import conform, empty_frame

SIGNAL_COLUMNS: dict[str, str] = {
    "minute": "datetime64[ns]",  # the decision's partition minute (naive New York)
    "ticker": "string",
    "signal_id": "string",  # stable: the broker's client order id
    "action": "string",  # BUY | SELL | HOLD (a rejected proposal holds)
    "proposed_action": "string",  # what the trader asked for
    "status": "string",  # approved | resized | rejected
    "qty": "int64",
    "entry": "float64",  # reference price (the minute's close); fills at the next bar's open
    "stop": "float64",
    "take_profit": "float64",
    "confidence": "float64",
    "sector": "string",
    "horizon_minutes": "int64",
    "reasons": "string",  # JSON list: why it was rejected or cut
    "model": "string",  # who produced the verdict (rules-N or the model)
    "rationale": "string",
    "portfolio_source": "string",  # broker | ledger | backtest: the risk manager's state
    "equity": "float64",  # the equity the sizes were computed from
    "open_positions": "int64",  # positions open before this minute's batch
}
ACTIONS = ("BUY", "SELL")


def technical_lookup(technical: pd.DataFrame) -> dict[tuple[str, pd.Timestamp], dict]:
    """(ticker, minute) -> the technical analyst's features (close, atr_14, ...)."""
    out: dict[tuple[str, pd.Timestamp], dict] = {}
    for row in technical.itertuples(index=False):
        try:
            features = json.loads(row.features) if isinstance(row.features, str) else {}
        except json.JSONDecodeError:
            features = {}
        out[(str(row.ticker), pd.Timestamp(row.minute))] = features
    return out


def proposals_by_minute(
    debate: pd.DataFrame, technical: pd.DataFrame
) -> dict[pd.Timestamp, list[Proposal]]:
    """The trader's proposals for every debated BUY/SELL verdict, grouped by minute."""
    if debate.empty:
        return {}
    features = technical_lookup(technical)
    out: dict[pd.Timestamp, list[Proposal]] = {}
    wanted = debate[debate["debated"].astype(bool) & debate["action"].isin(ACTIONS)]
    for row in wanted.to_dict("records"):
        minute = pd.Timestamp(row["minute"])
        found = features.get((str(row["ticker"]), minute), {})
        proposal = propose(row, {k: v for k, v in found.items() if k in ("close", "atr_14")})
        if proposal is not None:
            out.setdefault(minute, []).append(proposal)
    return dict(sorted(out.items()))


def minute_signals(
    proposals: Iterable[Proposal],
    state: PortfolioState,
    limits: RiskLimits,
    sector_of: Mapping[str, str],
    minute: datetime,
    session_close: datetime,
) -> list[Signal]:
    """The risk manager's batch review at the end of bar `minute` (session close naive NY)."""
    left = minutes_to_close(pd.Timestamp(minute).to_pydatetime(), session_close)
    return review_batch(proposals, state, limits, sector_of, minute, left)


def signal_frame(
    signals: Iterable[Signal], state: PortfolioState | None, source: str
) -> pd.DataFrame:
    """SIGNAL_COLUMNS rows for one minute's signals."""
    rows = [
        {
            **signal.model_dump(exclude={"reasons"}),
            "minute": pd.Timestamp(signal.minute),
            "reasons": json.dumps(signal.reasons),
            "portfolio_source": source,
            "equity": state.equity if state is not None else float("nan"),
            "open_positions": (
                sum(1 for p in state.positions if p.qty != 0) if state is not None else 0
            ),
        }
        for signal in signals
    ]
    return conform(pd.DataFrame(rows), SIGNAL_COLUMNS) if rows else empty_frame(SIGNAL_COLUMNS)


def actionable(frame: pd.DataFrame) -> pd.DataFrame:
    """Signals an order may come from: BUY/SELL with a positive quantity."""
    if frame.empty:
        return frame
    return frame[frame["action"].isin(ACTIONS) & (frame["qty"] > 0)]


def batch_id(frame: pd.DataFrame) -> str:
    """One id per set of actionable signals (ids and sizes): the sensor's run key, so the same
    batch never launches two executions, while a changed batch (a re-decided minute) would."""
    rows = actionable(frame)
    parts = sorted(f"{r.signal_id}:{r.action}:{int(r.qty)}" for r in rows.itertuples())
    return "batch-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
