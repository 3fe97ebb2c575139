"""The trading agent: turns one ticker-minute's judge verdict into a trade proposal.

Deterministic and transparent (no model): the judge already weighed the analysts and the
debate, so the trader only maps its action to an order side and attaches the numbers the risk
manager needs. Choices a reader should know:

* BUY -> side "buy" (a long entry). SELL -> side "sell", which here means a SHORT entry, not
  "close my long": exits are the bracket order's stop / take-profit. The risk manager rejects a
  sell proposal on a ticker held long (and a buy on one held short) rather than flipping it.
* HOLD, a ticker the gate did not debate, or a verdict whose action contradicts its stance
  (`consistent` False) proposes nothing (None); the `debate` row already records why.
* entry is the minute's close, a reference price only: orders fill no earlier than the open of
  the next bar (DESIGN point-in-time rule), which is the backtest's / broker's job.
* A missing close gives entry NaN rather than no proposal, so the risk manager's rejection says
  "no price" in the signal row instead of the trade silently vanishing.
* The trader does not size (it does not know the portfolio): qty None asks the risk manager for
  its standard size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trading_assets.numbers import finite

NY = ZoneInfo("America/New_York")
MAX_RATIONALE_CHARS = 800
SIDE_OF_ACTION: dict[str, Literal["buy", "sell"]] = {"BUY": "buy", "SELL": "sell"}


def naive_ny(stamp: datetime) -> datetime:
    """`stamp` as naive New York wall clock (a naive stamp is taken to be New York already)."""
    return stamp.astimezone(NY).replace(tzinfo=None) if stamp.tzinfo is not None else stamp


def iso_minute(value: object) -> str:
    """One spelling per minute ("YYYY-MM-DDTHH:MM", naive New York), as the debate uses: the
    signal id hashes it, so two spellings of one minute must not give two ids."""
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return naive_ny(stamp).isoformat(timespec="minutes")


class Proposal(BaseModel):
    """What the trader wants to do. Deliberately lenient on values (no range constraints): the
    risk manager validates them, so a bad proposal becomes a rejected signal with its reasons,
    not an exception that loses the batch."""

    model_config = ConfigDict(extra="forbid")

    ticker: str
    minute: str = Field(description='partition minute, naive New York, "YYYY-MM-DDTHH:MM"')
    side: Literal["buy", "sell"]
    entry: float = Field(description="the minute's close (reference; fills at the next open)")
    confidence: float
    horizon_minutes: int
    rationale: str = ""
    atr: float | None = Field(default=None, description="1-minute ATR(14) in price units")
    qty: int | None = Field(default=None, description="requested size; None = standard size")
    stance: str = ""
    consensus: str = ""
    model: str = Field(default="", description="who produced the verdict (rules-N or a model)")

    @field_validator("minute", mode="before")
    @classmethod
    def _iso(cls, value: object) -> str:
        return iso_minute(value)

    @property
    def action(self) -> Literal["BUY", "SELL"]:
        return "BUY" if self.side == "buy" else "SELL"


def propose(
    debate_row: Mapping[str, Any], technical_features: Mapping[str, Any] | None
) -> Proposal | None:
    """The proposal for one `debate` row (DEBATE_COLUMNS) and the same ticker-minute's technical
    features (TECHNICAL_COLUMNS; `close`, `atr_14`), or None when there is nothing to trade."""
    if not bool(debate_row.get("debated", True)):
        return None
    action = str(debate_row["action"]).upper()
    if action == "HOLD":
        return None
    if action not in SIDE_OF_ACTION:
        raise ValueError(f"unknown debate action {debate_row['action']!r}")
    if not bool(debate_row.get("consistent", True)):
        return None

    ticker = str(debate_row["ticker"])
    minute = iso_minute(debate_row["minute"])
    features: Mapping[str, Any] = {} if technical_features is None else technical_features
    if "ticker" in features and str(features["ticker"]) != ticker:
        raise ValueError(f"features are for {features['ticker']}, the debate row for {ticker}")
    if "minute" in features and iso_minute(features["minute"]) != minute:
        raise ValueError(f"features are at {iso_minute(features['minute'])}, debate at {minute}")

    close = finite(features.get("close"))
    atr = finite(features.get("atr_14"))
    atr = atr if atr is not None and atr > 0 else None
    confidence = float(debate_row["confidence"])
    horizon = int(debate_row["horizon_minutes"])
    stance = str(debate_row.get("stance", ""))
    consensus = str(debate_row.get("consensus", ""))
    side = SIDE_OF_ACTION[action]
    price = f"close {close:.4f}" if close is not None else "no close this minute"
    vol = f"ATR14 {atr:.4f}" if atr is not None else "no ATR"
    head = (
        f"{action} {ticker} at {minute} ({'long' if side == 'buy' else 'short'} entry): judge "
        f"{stance} at confidence {confidence:.2f} ({consensus} consensus), horizon {horizon} min; "
        f"{price} (fills at the next bar's open), {vol}. Judge: "
    )
    judge = str(debate_row.get("rationale", "") or "")
    return Proposal(
        ticker=ticker,
        minute=minute,
        side=side,
        entry=close if close is not None else math.nan,
        confidence=confidence,
        horizon_minutes=horizon,
        rationale=(head + judge)[:MAX_RATIONALE_CHARS],
        atr=atr,
        stance=stance,
        consensus=consensus,
        model=str(debate_row.get("model", "") or ""),
    )
