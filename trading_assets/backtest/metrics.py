"""Performance of a backtest from its fills (the `backtest_fills` contract) and the bars.

Plain functions over DataFrames, so the agents and every baseline are measured by the same code
and a reader can check a metric by hand. Choices a reader should know:

* The equity curve has one row per bar minute (all tickers' minutes) and marks positions at the
  bar's close, carrying a ticker's last known close over minutes it has no bar. A fill counts in
  the minute of its bar (`cash_delta`, so commissions and slippage are in the cash); a fill
  stamped between bar minutes counts in the last bar minute before it (before the first: the
  first).
* The starting equity is stored in `curve.attrs["starting_equity"]`: the first row already
  includes any first-minute fill, so it is not the start. `performance` reads it from there
  unless `starting_equity=` is passed.
* Sharpe and Sortino use daily returns (each session's last equity against the previous
  session's; the first session against the starting equity), annualised by
  sqrt(periods_per_year). They are 0.0 when undefined: fewer than 2 sessions, a zero standard
  deviation, or (Sortino) no losing day. No metric is ever NaN.
* Metrics are plain floats; `profit_factor` is `inf` only when there are winning trades and no
  losing ones, and 0.0 without closed trades.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

CURVE_COLUMNS = ["minute", "cash", "position_value", "equity", "gross_exposure", "drawdown"]
TRIP_COLUMNS = [
    "strategy",
    "trade_id",
    "ticker",
    "position_side",
    "qty",
    "entry_minute",
    "exit_minute",
    "entry_price",
    "exit_price",
    "commission",
    "pnl",
    "return",
    "closed",
]
PER_TICKER_COLUMNS = ["ticker", "pnl", "trades", "win_rate", "return", "commissions"]
_QTY_TOLERANCE = 1e-9


def _signed_qty(fills: pd.DataFrame) -> pd.Series:
    return fills["qty"].astype("float64").where(fills["side"] == "buy", -fills["qty"])


def _bar_minute_of(fill_minutes: pd.Series, minutes: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The bar minute each fill counts in: its own, else the last one before it."""
    positions = minutes.searchsorted(pd.DatetimeIndex(fill_minutes), side="right") - 1
    return minutes[np.clip(positions, 0, len(minutes) - 1)]


def equity_curve(fills: pd.DataFrame, bars: pd.DataFrame, starting_equity: float) -> pd.DataFrame:
    """Cash, marked positions, equity, gross exposure and drawdown at every bar minute.

    `drawdown` is equity over its running maximum minus 1 (<= 0). The running maximum starts at
    `starting_equity`, so a loss on the first minute already shows as a drawdown.
    """
    minutes = pd.DatetimeIndex(sorted(pd.unique(bars["minute"])), name="minute")
    if len(minutes) == 0:
        curve = pd.DataFrame({column: pd.Series(dtype="float64") for column in CURVE_COLUMNS})
        curve["minute"] = pd.Series(dtype="datetime64[ns]")
        curve.attrs["starting_equity"] = float(starting_equity)
        return curve
    marks = (
        bars.pivot_table(index="minute", columns="ticker", values="close", aggfunc="last")
        .reindex(minutes)
        .ffill()
    )
    cash = pd.Series(float(starting_equity), index=minutes)
    position_value = pd.Series(0.0, index=minutes)
    gross = pd.Series(0.0, index=minutes)
    if not fills.empty:
        at = _bar_minute_of(fills["minute"], minutes)
        frame = pd.DataFrame(
            {
                "minute": at,
                "ticker": fills["ticker"].astype(str).to_numpy(),
                "qty": _signed_qty(fills).to_numpy(),
                "cash": fills["cash_delta"].astype("float64").to_numpy(),
                "price": fills["price"].astype("float64").to_numpy(),
            }
        )
        cash += frame.groupby("minute")["cash"].sum().reindex(minutes, fill_value=0.0).cumsum()
        held = (
            frame.pivot_table(index="minute", columns="ticker", values="qty", aggfunc="sum")
            .reindex(minutes, fill_value=0.0)
            .fillna(0.0)
            .cumsum()
        )
        # A ticker traded without a bar so far is marked at its last fill price.
        fill_marks = (
            frame.pivot_table(index="minute", columns="ticker", values="price", aggfunc="last")
            .reindex(minutes)
            .ffill()
        )
        mark = marks.reindex(columns=held.columns).fillna(fill_marks).fillna(0.0)
        value = held * mark
        position_value = value.sum(axis=1)
        gross = value.abs().sum(axis=1)
    equity = cash + position_value
    peak = equity.cummax().clip(lower=float(starting_equity))
    curve = pd.DataFrame(
        {
            "minute": minutes,
            "cash": cash.to_numpy(),
            "position_value": position_value.to_numpy(),
            "equity": equity.to_numpy(),
            "gross_exposure": gross.to_numpy(),
            "drawdown": (equity / peak - 1.0).clip(upper=0.0).to_numpy(),
        }
    )
    curve.attrs["starting_equity"] = float(starting_equity)
    return curve


def round_trips(fills: pd.DataFrame) -> pd.DataFrame:
    """One row per (strategy, trade_id): what was entered, at what average prices, and its net
    P&L (the sum of its fills' `cash_delta`, so commissions and slippage are paid).

    Entry fills open the position (buys of a long, sells of a short); every other fill is an
    exit. `closed` is True once the exits add up to the entered quantity; an open trade's `pnl`
    and `return` are only its cash so far, so metrics use closed trades only.
    """
    if fills.empty:
        trips = pd.DataFrame({column: pd.Series(dtype="float64") for column in TRIP_COLUMNS})
        for column in ("strategy", "trade_id", "ticker", "position_side"):
            trips[column] = pd.Series(dtype="string")
        for column in ("entry_minute", "exit_minute"):
            trips[column] = pd.Series(dtype="datetime64[ns]")
        trips["closed"] = pd.Series(dtype="bool")
        return trips
    opening_side = np.where(fills["position_side"] == "short", "sell", "buy")
    entering = fills["side"].to_numpy() == opening_side
    qty = fills["qty"].astype("float64")
    notional = qty * fills["price"].astype("float64")
    frame = pd.DataFrame(
        {
            "strategy": fills["strategy"],
            "trade_id": fills["trade_id"],
            "ticker": fills["ticker"],
            "position_side": fills["position_side"],
            "minute": fills["minute"],
            "commission": fills["commission"].astype("float64"),
            "cash_delta": fills["cash_delta"].astype("float64"),
            "entry_qty": qty.where(entering, 0.0),
            "entry_notional": notional.where(entering, 0.0),
            "entry_minute": fills["minute"].where(entering),
            "exit_qty": qty.where(~entering, 0.0),
            "exit_notional": notional.where(~entering, 0.0),
            "exit_minute": fills["minute"].where(~entering),
        }
    )
    grouped = frame.groupby(["strategy", "trade_id"], sort=False, observed=True)
    agg = grouped.agg(
        ticker=("ticker", "first"),
        position_side=("position_side", "first"),
        qty=("entry_qty", "sum"),
        entry_notional=("entry_notional", "sum"),
        exit_qty=("exit_qty", "sum"),
        exit_notional=("exit_notional", "sum"),
        entry_minute=("entry_minute", "min"),
        exit_minute=("exit_minute", "max"),
        commission=("commission", "sum"),
        pnl=("cash_delta", "sum"),
    ).reset_index()
    entered = agg["qty"].where(agg["qty"] > 0)
    exited = agg["exit_qty"].where(agg["exit_qty"] > 0)
    agg["entry_price"] = agg["entry_notional"] / entered
    agg["exit_price"] = agg["exit_notional"] / exited
    agg["return"] = (agg["pnl"] / agg["entry_notional"].where(agg["entry_notional"] != 0)).fillna(
        0.0
    )
    agg["closed"] = (agg["qty"] > 0) & ((agg["exit_qty"] - agg["qty"]).abs() <= _QTY_TOLERANCE)
    trips = agg.loc[:, TRIP_COLUMNS]
    trips["closed"] = trips["closed"].astype(bool)
    return trips.sort_values(["entry_minute", "trade_id"], kind="stable").reset_index(drop=True)


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0


def daily_returns(curve: pd.DataFrame, starting_equity: float) -> pd.Series:
    """Return of each session: its last equity against the previous session's last equity
    (the first session against `starting_equity`), indexed by date."""
    if curve.empty:
        return pd.Series(dtype="float64")
    closing = curve.groupby(curve["minute"].dt.date)["equity"].last()
    previous = closing.shift(1).fillna(float(starting_equity))
    return closing / previous - 1.0


def performance(
    curve: pd.DataFrame,
    trips: pd.DataFrame,
    fills: pd.DataFrame,
    *,
    llm_cost_usd: float = 0.0,
    periods_per_year: int = 252,
    starting_equity: float | None = None,
) -> dict[str, float]:
    """The headline metrics of one run (see the module docstring for the conventions).

    `starting_equity` defaults to `curve.attrs["starting_equity"]` (set by `equity_curve`).
    `turnover` is traded notional over average equity; `exposure` is the mean of gross exposure
    over equity; `trades`, `win_rate` and `profit_factor` count closed round trips only.
    """
    start = starting_equity if starting_equity is not None else curve.attrs.get("starting_equity")
    if start is None or not start > 0:
        raise ValueError("performance needs a positive starting equity (curve.attrs or kwarg)")
    start = float(start)
    last = float(curve["equity"].iloc[-1]) if not curve.empty else start
    cumulative = last / start - 1.0
    sessions = int(curve["minute"].dt.date.nunique()) if not curve.empty else 0
    if sessions == 0:
        annualised = 0.0
    elif 1.0 + cumulative <= 0:
        annualised = -1.0
    else:
        annualised = (1.0 + cumulative) ** (periods_per_year / sessions) - 1.0

    daily = daily_returns(curve, start)
    scale = math.sqrt(periods_per_year)
    sharpe = sortino = 0.0
    if len(daily) >= 2:
        std = float(daily.std(ddof=1))
        if std > 0:
            sharpe = float(daily.mean()) / std * scale
        downside = math.sqrt(float((daily.clip(upper=0.0) ** 2).mean()))
        if downside > 0:
            sortino = float(daily.mean()) / downside * scale

    closed = trips[trips["closed"]] if not trips.empty else trips
    wins = closed["pnl"][closed["pnl"] > 0] if not closed.empty else pd.Series(dtype="float64")
    losses = closed["pnl"][closed["pnl"] < 0] if not closed.empty else pd.Series(dtype="float64")
    gross_profit, gross_loss = float(wins.sum()), float(-losses.sum())
    if gross_loss > 0:
        profit_factor = gross_profit / gross_loss
    elif gross_profit > 0:
        profit_factor = math.inf
    else:
        profit_factor = 0.0

    mean_equity = float(curve["equity"].mean()) if not curve.empty else start
    traded = float((fills["qty"] * fills["price"]).sum()) if not fills.empty else 0.0
    exposure = float((curve["gross_exposure"] / curve["equity"]).mean()) if not curve.empty else 0.0
    return {
        "cumulative_return": _finite(cumulative),
        "annualised_return": _finite(annualised),
        "sharpe": _finite(sharpe),
        "sortino": _finite(sortino),
        "max_drawdown": _finite(float(curve["drawdown"].min())) if not curve.empty else 0.0,
        "win_rate": len(wins) / len(closed) if len(closed) else 0.0,
        "profit_factor": profit_factor,
        "turnover": _finite(traded / mean_equity) if mean_equity else 0.0,
        "exposure": _finite(exposure),
        "trades": float(len(closed)),
        "commissions": float(fills["commission"].sum()) if not fills.empty else 0.0,
        "llm_cost_usd": float(llm_cost_usd),
        "net_return_after_llm": _finite((last - float(llm_cost_usd) - start) / start),
    }


def per_ticker(fills: pd.DataFrame, bars: pd.DataFrame, starting_equity: float) -> pd.DataFrame:
    """One row per traded ticker: P&L (cash of its fills plus any open shares at the ticker's
    last close), closed trades, win rate, P&L over the whole `starting_equity`, commissions."""
    if fills.empty:
        return pd.DataFrame({column: pd.Series(dtype="float64") for column in PER_TICKER_COLUMNS})
    last_close = bars.sort_values("minute").groupby(bars["ticker"].astype(str))["close"].last()
    held = _signed_qty(fills).groupby(fills["ticker"].astype(str)).sum()
    cash = fills.groupby(fills["ticker"].astype(str))["cash_delta"].sum()
    trips = round_trips(fills)
    closed = trips[trips["closed"]]
    rows = []
    for ticker in sorted(cash.index):
        mine = closed[closed["ticker"].astype(str) == ticker]
        open_value = float(held[ticker]) * float(last_close.get(ticker, 0.0))
        pnl = float(cash[ticker]) + open_value
        rows.append(
            {
                "ticker": ticker,
                "pnl": pnl,
                "trades": len(mine),
                "win_rate": float((mine["pnl"] > 0).mean()) if len(mine) else 0.0,
                "return": pnl / float(starting_equity),
                "commissions": float(fills.loc[fills["ticker"] == ticker, "commission"].sum()),
            }
        )
    return pd.DataFrame(rows, columns=PER_TICKER_COLUMNS)


def performance_table(
    runs: dict[str, pd.DataFrame],
    bars: pd.DataFrame,
    starting_equity: float,
    llm_cost_usd: dict[str, float] | None = None,
) -> pd.DataFrame:
    """One row per strategy (column `strategy`, in `runs` order) with every `performance`
    metric: the comparison the terminal and the UI print. `llm_cost_usd` maps a strategy to
    what its LLM calls cost (baselines have none)."""
    costs = llm_cost_usd or {}
    rows = []
    for name, fills in runs.items():
        curve = equity_curve(fills, bars, starting_equity)
        metrics = performance(
            curve, round_trips(fills), fills, llm_cost_usd=float(costs.get(name, 0.0))
        )
        rows.append({"strategy": name, **metrics})
    return pd.DataFrame(rows)
