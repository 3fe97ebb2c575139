"""The fill model shared by the backtest and the embedded paper broker.

One set of pure functions decides every simulated execution, so a backtest and a paper-trading
day over the same bars produce the same prices and costs:

* market orders fill at the **open of the next bar** (the first bar starting at or after the
  decision), moved against the trader by `slippage_bps`, and for at most
  `max_volume_fraction` of that bar's volume (whole shares, rounded down). The rest is *not*
  filled by `entry_fill`; a caller that keeps the order working (the paper broker does, until
  the session closes) calls it again on the following bar. A bar with zero volume fills nothing.
* bracket exits are checked on bars *after* the entry bar: the stop when the bar's low (long)
  or high (short) reaches it, the take-profit when the high (long) or low (short) reaches it.
  If both are reached inside one bar the order of the two touches is unknowable from OHLC, so
  the stop is assumed (the pessimistic reading). A stop is a stop-market order: it fills at the
  stop, or at the open if the bar gapped through it, with slippage. A take-profit is a limit
  order: it fills at the limit, or at the better open on a gap, without slippage (a limit never
  fills worse than its limit). Exits are not volume-capped: a protective stop must get out.
* positions still open at the session's last bar are closed at that bar's close, with slippage.
* commission is `commission_per_share` a share with a `min_commission` floor, per fill.

Bars may be pandas rows, mappings or named tuples with open/high/low/close/volume and a
`timestamp` (bar start).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

Side = Literal["buy", "sell"]
FillReason = Literal["entry", "stop", "take_profit", "close"]


def _field(bar: Any, name: str) -> Any:
    """Read a bar field from a mapping, a pandas row or a named tuple alike."""
    if isinstance(bar, pd.Series | dict):
        return bar[name]
    return getattr(bar, name)


def _timestamp(bar: Any) -> pd.Timestamp | None:
    try:
        value = _field(bar, "timestamp")
    except (KeyError, AttributeError):
        return None
    return pd.Timestamp(value)


def opposite(side: Side) -> Side:
    return "sell" if side == "buy" else "buy"


class Fill(BaseModel):
    """One simulated execution. `price` includes slippage; `reference_price` is the bar price
    the fill was based on (open, stop, limit or close), kept so costs can be audited."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    side: Side
    qty: float
    price: float
    reference_price: float
    commission: float
    reason: FillReason
    timestamp: pd.Timestamp | None = None  # start of the bar the fill happened in
    bar_index: int = 0  # position in the bars passed in (bracket_exit), else 0

    @property
    def notional(self) -> float:
        return self.qty * self.price

    @property
    def cash_delta(self) -> float:
        """Cash change for the account: buys pay price and commission, sells receive price less
        commission."""
        signed = -self.notional if self.side == "buy" else self.notional
        return signed - self.commission


class FillModel(BaseModel):
    """Execution costs and limits; the defaults are the product's documented assumptions."""

    model_config = ConfigDict(frozen=True)

    commission_per_share: float = Field(0.0049, ge=0)
    min_commission: float = Field(0.99, ge=0)
    slippage_bps: float = Field(5.0, ge=0)
    max_volume_fraction: float = Field(0.025, gt=0, le=1)

    def commission(self, qty: float) -> float:
        """Per-share commission with a per-fill minimum; nothing for an empty fill."""
        if qty <= 0:
            return 0.0
        return max(self.min_commission, self.commission_per_share * qty)

    def slipped(self, side: Side, price: float) -> float:
        """`price` moved against the trader: buyers pay more, sellers receive less."""
        factor = self.slippage_bps / 10_000.0
        return price * (1.0 + factor) if side == "buy" else price * (1.0 - factor)

    def volume_cap(self, bar: Any) -> float:
        """Whole shares fillable in `bar`: `max_volume_fraction` of its volume, rounded down."""
        volume = float(_field(bar, "volume"))
        if not math.isfinite(volume) or volume <= 0:
            return 0.0
        return float(math.floor(volume * self.max_volume_fraction + 1e-9))

    def entry_fill(self, order_side: Side, qty: float, next_bar: Any) -> Fill | None:
        """A market order for `qty` executed at `next_bar`'s open.

        Partial: at most `volume_cap(next_bar)` shares; None when nothing can fill (zero volume,
        missing open, qty <= 0). The caller decides what happens to the remainder.
        """
        open_ = float(_field(next_bar, "open"))
        if qty <= 0 or not math.isfinite(open_) or open_ <= 0:
            return None
        filled = min(float(qty), self.volume_cap(next_bar))
        if filled <= 0:
            return None
        return Fill(
            side=order_side,
            qty=filled,
            price=self.slipped(order_side, open_),
            reference_price=open_,
            commission=self.commission(filled),
            reason="entry",
            timestamp=_timestamp(next_bar),
        )

    def bracket_exit(
        self,
        side: Side,
        stop: float | None,
        take_profit: float | None,
        later_bars: Iterable[Any],
        *,
        qty: float,
    ) -> Fill | None:
        """The first exit of a position opened with `side` (buy = long) over `later_bars`
        (bars strictly after the entry bar, in time order), or None if neither level is reached.

        Stop first when one bar reaches both. The returned fill's side closes the position.
        """
        exit_side = opposite(side)
        long = side == "buy"
        for index, bar in enumerate(later_bars):
            open_ = float(_field(bar, "open"))
            high = float(_field(bar, "high"))
            low = float(_field(bar, "low"))
            stop_hit = stop is not None and (low <= stop if long else high >= stop)
            take_hit = take_profit is not None and (
                high >= take_profit if long else low <= take_profit
            )
            if stop_hit:
                assert stop is not None
                gapped = open_ <= stop if long else open_ >= stop
                reference = open_ if gapped else stop
                price = self.slipped(exit_side, reference)
                reason: FillReason = "stop"
            elif take_hit:
                assert take_profit is not None
                gapped = open_ >= take_profit if long else open_ <= take_profit
                reference = open_ if gapped else take_profit
                price = reference
                reason = "take_profit"
            else:
                continue
            return Fill(
                side=exit_side,
                qty=float(qty),
                price=price,
                reference_price=reference,
                commission=self.commission(qty),
                reason=reason,
                timestamp=_timestamp(bar),
                bar_index=index,
            )
        return None

    def close_fill(self, position_side: Side, qty: float, last_bar: Any) -> Fill:
        """Flat at the close: a position opened with `position_side` closed at `last_bar`'s
        close (the session's last bar), with slippage; not volume-capped."""
        exit_side = opposite(position_side)
        close = float(_field(last_bar, "close"))
        return Fill(
            side=exit_side,
            qty=float(qty),
            price=self.slipped(exit_side, close),
            reference_price=close,
            commission=self.commission(qty),
            reason="close",
            timestamp=_timestamp(last_bar),
        )
