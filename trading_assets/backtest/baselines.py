"""The rule-based baselines of the TradingAgents paper, run through the team's own fill model.

A baseline is only a fair yardstick if it pays the same costs as the agents, so every fill here
comes from `FillModel` (next-bar open with slippage, volume cap, per-share commission, flat at
the close) and lands in the `backtest_fills` contract.

A strategy is a pure function of one ticker's minute bars (sorted by `minute`) returning a target
position in {-1, 0, +1} per bar, decided on that bar's close. `simulate_targets` turns targets
into fills. Choices a reader should know:

* Indicators run over the ticker's bar sequence across sessions (yesterday's last bars warm up
  today's averages, as in the technical analyst) and are causal: trailing windows and recursive
  averages only, never centred windows or back-fills. A bar where an indicator is undefined
  gives target 0. Prices are rounded to 1e-6 first so float noise cannot flip a comparison.
* `sma_crossover` and `macd` are regime rules (long while the condition holds). `kdj_rsi` and
  `zero_mean_reversion` are event rules with a latch, and the latch resets every session:
  yesterday's entry was closed at yesterday's close, so re-entering needs a fresh signal.
* `kdj_rsi`: enter long on a bar where J < 20 **and** RSI(14) < 30 (both oversold); hold until a
  bar where J > 80 **or** RSI(14) > 70, then flat. KDJ(9, 3, 3): RSV over the last 9 bars'
  high/low (50 when that range is 0), K and D the usual 1/3-smoothed recursions seeded at 50,
  J = 3K - 2D.
* `zero_mean_reversion`: z = (close - 30-bar mean) / 30-bar std. Short when z > 2, long when
  z < -2 (these win on the bar they happen, so a jump from one band to the other reverses), and
  back to flat on the first bar where z reaches 0 from the position's side.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from ta.momentum import RSIIndicator
from ta.trend import MACD

from trading_assets.backtest.schema import BACKTEST_FILL_COLUMNS, fill_row
from trading_assets.execution.fills import Fill, FillModel, Side
from trading_assets.schemas import conform, empty_frame

Strategy = Callable[[pd.DataFrame], pd.Series]

SMA_FAST, SMA_SLOW = 20, 50
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
KDJ_WINDOW, KDJ_SMOOTH = 9, 3
RSI_WINDOW = 14
J_OVERSOLD, J_OVERBOUGHT = 20.0, 80.0
RSI_OVERSOLD, RSI_OVERBOUGHT = 30.0, 70.0
Z_WINDOW, Z_ENTRY = 30, 2.0


def _closes(bars: pd.DataFrame) -> pd.Series:
    return bars["close"].astype("float64").round(6).reset_index(drop=True)


def _target(values: np.ndarray | pd.Series, bars: pd.DataFrame) -> pd.Series:
    """Targets indexed by the bar's minute, so they align with the bars whatever their index."""
    return pd.Series(
        np.asarray(values, dtype="int64"),
        index=pd.DatetimeIndex(bars["minute"], name="minute"),
        name="target",
    )


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _session_starts(bars: pd.DataFrame) -> np.ndarray:
    dates = bars["minute"].dt.date.to_numpy()
    starts = np.ones(len(dates), dtype=bool)
    starts[1:] = dates[1:] != dates[:-1]
    return starts


def buy_and_hold(bars: pd.DataFrame) -> pd.Series:
    """Long throughout. It needs no data, so `run_baselines` also holds it before the first bar
    (`open_target=1`): it buys at the range's first open and sells at its last close."""
    return _target(np.ones(len(bars)), bars)


def sma_crossover(bars: pd.DataFrame, fast: int = SMA_FAST, slow: int = SMA_SLOW) -> pd.Series:
    """Long while the fast simple moving average of closes is above the slow one, else flat."""
    close = _closes(bars)
    fast_ma = close.rolling(fast, min_periods=fast).mean()
    slow_ma = close.rolling(slow, min_periods=slow).mean()
    return _target((fast_ma > slow_ma).to_numpy(), bars)


def macd(
    bars: pd.DataFrame,
    fast: int = MACD_FAST,
    slow: int = MACD_SLOW,
    signal: int = MACD_SIGNAL,
) -> pd.Series:
    """Long while the MACD line (EMA fast - EMA slow of closes) is above its signal EMA."""
    indicator = MACD(
        _closes(bars), window_slow=slow, window_fast=fast, window_sign=signal, fillna=False
    )
    return _target((indicator.macd() > indicator.macd_signal()).to_numpy(), bars)


def kdj(bars: pd.DataFrame, window: int = KDJ_WINDOW, smooth: int = KDJ_SMOOTH) -> pd.DataFrame:
    """K, D, J per bar (NaN until `window` bars exist); recursions seeded at 50, as is usual."""
    close = _closes(bars)
    high = bars["high"].astype("float64").round(6).reset_index(drop=True)
    low = bars["low"].astype("float64").round(6).reset_index(drop=True)
    lowest = low.rolling(window, min_periods=window).min()
    highest = high.rolling(window, min_periods=window).max()
    span = highest - lowest
    rsv = ((close - lowest) / span.where(span > 0) * 100.0).where(span.isna() | (span > 0), 50.0)
    k = np.full(len(close), np.nan)
    d = np.full(len(close), np.nan)
    k_prev = d_prev = 50.0
    alpha = 1.0 / smooth
    for i, value in enumerate(rsv.to_numpy()):
        if math.isnan(value):
            continue
        k_prev = (1 - alpha) * k_prev + alpha * value
        d_prev = (1 - alpha) * d_prev + alpha * k_prev
        k[i], d[i] = k_prev, d_prev
    return pd.DataFrame({"k": k, "d": d, "j": 3 * k - 2 * d})


def kdj_rsi(bars: pd.DataFrame) -> pd.Series:
    """Long on J < 20 and RSI < 30, flat on J > 80 or RSI > 70 (latch resets each session)."""
    j = kdj(bars)["j"].to_numpy()
    rsi = RSIIndicator(_closes(bars), window=RSI_WINDOW, fillna=False).rsi().to_numpy()
    starts = _session_starts(bars)
    out = np.zeros(len(bars), dtype="int64")
    state = 0
    for i in range(len(bars)):
        if starts[i]:
            state = 0
        if state == 0 and j[i] < J_OVERSOLD and rsi[i] < RSI_OVERSOLD:
            state = 1
        elif state == 1 and (j[i] > J_OVERBOUGHT or rsi[i] > RSI_OVERBOUGHT):
            state = 0
        out[i] = state  # NaN comparisons are False: no signal before the indicators exist
    return _target(out, bars)


def zero_mean_reversion(
    bars: pd.DataFrame, window: int = Z_WINDOW, entry: float = Z_ENTRY
) -> pd.Series:
    """Fade a `entry`-sigma move away from the rolling mean; flat once price is back at it."""
    close = _closes(bars)
    mean = close.rolling(window, min_periods=window).mean()
    std = close.rolling(window, min_periods=window).std()
    z = ((close - mean) / std.where(std > 0)).to_numpy()
    starts = _session_starts(bars)
    out = np.zeros(len(bars), dtype="int64")
    state = 0
    for i, value in enumerate(z):
        if starts[i]:
            state = 0
        if value > entry:
            state = -1
        elif value < -entry:
            state = 1
        elif (state == -1 and value <= 0) or (state == 1 and value >= 0):
            state = 0
        out[i] = state
    return _target(out, bars)


BASELINES: dict[str, Strategy] = {
    "buy_and_hold": buy_and_hold,
    "sma_crossover": sma_crossover,
    "macd": macd,
    "kdj_rsi": kdj_rsi,
    "zero_mean_reversion": zero_mean_reversion,
}


def simulate_targets(
    targets: pd.Series,
    bars_one_ticker: pd.DataFrame,
    model: FillModel,
    capital: float,
    *,
    strategy: str,
    flat_at_close: bool = True,
    open_target: int = 0,
) -> pd.DataFrame:
    """Fills (the `backtest_fills` contract) of following `targets` on one ticker's bars.

    `targets` is indexed by minute (as the strategies return it); a minute without a target
    means 0. The target decided on bar t's close executes at bar t+1's open as a market order
    (`entry_fill`): an entry buys (or sells short) floor(capital / slipped open) whole shares;
    an exit closes the whole position. What the volume cap leaves unfilled keeps working on the
    next bars, exits first, sharing each bar's cap as the paper broker does; a position is never
    trimmed to a smaller size. A new target replaces the working goal.

    `flat_at_close`: every session starts flat, a target decided on a session's last bar does
    nothing, and a position left at a session's last bar is closed at its close (`close_fill`,
    reason "close"). Otherwise positions and working orders run overnight and only the range's
    last bar closes. `open_target` is the target held before the first bar (buy-and-hold needs no
    data to decide, so it enters at the first open).

    Every round trip gets its own `trade_id` f"{strategy}-{ticker}-{n}"; all its fills carry the
    minute its entry was decided as `signal_minute`. Entry and exit fills have reason "entry"
    and "exit".
    """
    if bars_one_ticker.empty:
        return empty_frame(BACKTEST_FILL_COLUMNS)
    bars = bars_one_ticker.sort_values("minute").reset_index(drop=True)
    tickers = bars["ticker"].astype(str).unique()
    if len(tickers) != 1:
        raise ValueError(f"simulate_targets takes one ticker's bars, got {list(tickers)}")
    ticker = str(tickers[0])
    minutes = pd.DatetimeIndex(bars["minute"])
    wanted = np.sign(targets.reindex(minutes).fillna(0).astype("int64").to_numpy()).tolist()
    stamps = minutes.tolist()  # boxed once: indexing a DatetimeIndex in the loop is slow
    opens = bars["open"].to_numpy(dtype="float64")
    closes = bars["close"].to_numpy(dtype="float64")
    volumes = bars["volume"].to_numpy(dtype="float64")
    session_starts = _session_starts(bars)
    lasts = (
        np.append(session_starts[1:], True)
        if flat_at_close
        else np.arange(len(bars)) == len(bars) - 1
    )
    starts = session_starts.tolist()
    lasts = lasts.tolist()

    rows: list[dict[str, object]] = []
    position = 0.0  # signed shares held
    goal = 0.0  # signed shares the working orders aim at
    goal_dir = 0
    trade_id: str | None = None
    trade_side = "long"
    trade_signal: pd.Timestamp | None = None
    decided_at: pd.Timestamp | None = None
    count = 0

    def record(fill: Fill, reason: str) -> None:
        assert trade_id is not None and trade_signal is not None
        rows.append(
            fill_row(
                fill,
                strategy=strategy,
                trade_id=trade_id,
                signal_minute=trade_signal,
                ticker=ticker,
                position_side=trade_side,
                reason=reason,
            )
        )

    for i in range(len(bars)):
        minute = stamps[i]
        if flat_at_close and starts[i]:
            goal, goal_dir = 0.0, 0
        if i == 0:
            decision: int | None = _sign(open_target)
            decision_minute = minute
        elif flat_at_close and starts[i]:
            decision = None  # the previous session's last-bar decision does nothing
            decision_minute = minute
        else:
            decision = wanted[i - 1]
            decision_minute = stamps[i - 1]
        if decision is not None and decision != goal_dir:
            goal_dir = decision
            decided_at = decision_minute
            if decision == 0:
                goal = 0.0
            else:
                side: Side = "buy" if decision > 0 else "sell"
                shares = math.floor(capital / model.slipped(side, opens[i]))
                goal = float(decision * max(shares, 0))
        bar = {"open": opens[i], "close": closes[i], "volume": volumes[i], "timestamp": minute}
        used = 0.0
        if position != 0 and _sign(goal) != _sign(position):
            exit_side: Side = "sell" if position > 0 else "buy"
            fill = model.entry_fill(exit_side, abs(position), bar)
            if fill is not None:
                used += fill.qty
                record(fill, "exit")
                position += fill.qty if exit_side == "buy" else -fill.qty
                if position == 0:
                    trade_id = None
        if goal != 0 and (position == 0 or _sign(position) == _sign(goal)):
            missing = abs(goal) - abs(position)
            if missing > 0:
                left = volumes[i] - used / model.max_volume_fraction
                entry_side: Side = "buy" if goal > 0 else "sell"
                fill = model.entry_fill(entry_side, missing, {**bar, "volume": max(left, 0.0)})
                if fill is not None:
                    if trade_id is None:
                        count += 1
                        trade_id = f"{strategy}-{ticker}-{count}"
                        trade_side = "long" if goal > 0 else "short"
                        trade_signal = decided_at
                    record(fill, "entry")
                    position += fill.qty if entry_side == "buy" else -fill.qty
        if lasts[i] and position != 0:
            held: Side = "buy" if position > 0 else "sell"
            record(model.close_fill(held, abs(position), bar), "close")
            position, goal, goal_dir, trade_id = 0.0, 0.0, 0, None
    if not rows:
        return empty_frame(BACKTEST_FILL_COLUMNS)
    return conform(pd.DataFrame(rows), BACKTEST_FILL_COLUMNS)


def run_baselines(
    bars: pd.DataFrame,
    model: FillModel,
    starting_equity: float,
    tickers: list[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """Every baseline over every ticker (`tickers`, default: all in `bars`), with the capital
    split equally between tickers; fills per strategy name, sorted by minute and ticker."""
    names = sorted(bars["ticker"].astype(str).unique()) if tickers is None else list(tickers)
    capital = starting_equity / len(names) if names else 0.0
    per_ticker = {
        name: bars[bars["ticker"].astype(str) == name].sort_values("minute").reset_index(drop=True)
        for name in names
    }
    runs: dict[str, pd.DataFrame] = {}
    for strategy, rule in BASELINES.items():
        hold = strategy == "buy_and_hold"
        frames = [
            simulate_targets(
                rule(one),
                one,
                model,
                capital,
                strategy=strategy,
                flat_at_close=not hold,
                open_target=1 if hold else 0,
            )
            for one in per_ticker.values()
            if not one.empty
        ]
        frames = [frame for frame in frames if not frame.empty]
        if not frames:
            runs[strategy] = empty_frame(BACKTEST_FILL_COLUMNS)
            continue
        fills = pd.concat(frames, ignore_index=True)
        runs[strategy] = fills.sort_values(["minute", "ticker"], kind="stable").reset_index(
            drop=True
        )
    return runs
