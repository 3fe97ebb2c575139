"""The backtest's execution simulation on real bars: point in time, and the book it hands the
risk manager."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.real_bars import bundled_bars, scrambled_after
from trading_assets.backtest.simulate import simulate_fills
from trading_assets.decision.sources import state_from_backtest
from trading_assets.execution.fills import FillModel

SESSION = "2026-03-17"
MODEL = FillModel()


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    frame = bundled_bars()
    return frame[frame["minute"].dt.strftime("%Y-%m-%d") == SESSION].reset_index(drop=True)


def _signal(bars: pd.DataFrame, hhmm: str, ticker: str, action: str, qty: int, n: int) -> dict:
    minute = pd.Timestamp(f"{SESSION} {hhmm}")
    close = float(bars[(bars["minute"] == minute) & (bars["ticker"] == ticker)]["close"].iloc[0])
    sign = 1 if action == "BUY" else -1
    return {
        "minute": minute,
        "ticker": ticker,
        "signal_id": f"sig-{n}",
        "action": action,
        "status": "approved",
        "qty": qty,
        "entry": close,
        "stop": close * (1 - sign * 0.002),
        "take_profit": close * (1 + sign * 0.004),
    }


@pytest.fixture(scope="module")
def signals(bars: pd.DataFrame) -> pd.DataFrame:
    plan = [
        ("09:45", "AAPL", "BUY", 30),
        ("10:10", "NVDA", "SELL", 50),
        ("11:00", "MSFT", "BUY", 20),
        ("13:30", "TSLA", "BUY", 25),
        ("15:30", "SPY", "SELL", 10),
    ]
    rows = [_signal(bars, *step, n) for n, step in enumerate(plan)]
    rows.append({**_signal(bars, "12:00", "META", "BUY", 10, 99), "action": "HOLD", "qty": 0})
    return pd.DataFrame(rows)


def test_a_signal_fills_at_the_next_bars_open_with_slippage(bars, signals) -> None:
    fills = simulate_fills(signals, bars, MODEL)
    first = fills[(fills["trade_id"] == "sig-0") & (fills["reason"] == "entry")].iloc[0]
    bar = bars[(bars["minute"] == pd.Timestamp(f"{SESSION} 09:46")) & (bars["ticker"] == "AAPL")]
    assert first["minute"] == pd.Timestamp(f"{SESSION} 09:46")
    assert first["reference_price"] == bar["open"].iloc[0]
    assert first["price"] == pytest.approx(bar["open"].iloc[0] * 1.0005)
    assert first["commission"] == 0.99  # 30 x 0.0049 is under the minimum
    assert "sig-99" not in set(fills["trade_id"])  # a HOLD never trades
    # every trade is flat by the close: what it bought it sold
    signed = fills["qty"].where(fills["side"] == "buy", -fills["qty"])
    assert signed.groupby(fills["trade_id"]).sum().abs().max() == pytest.approx(0)


def test_a_shorter_horizon_gives_exactly_the_earlier_fills(bars, signals) -> None:
    full = simulate_fills(signals, bars, MODEL)
    for hhmm in ("09:46", "10:30", "12:00", "15:31", "15:58"):
        horizon = pd.Timestamp(f"{SESSION} {hhmm}")
        cut = simulate_fills(signals, bars, MODEL, horizon=horizon)
        probe = simulate_fills(signals, scrambled_after(bars, horizon, 3), MODEL, horizon=horizon)
        expected = full[full["minute"] <= horizon].reset_index(drop=True)
        pd.testing.assert_frame_equal(cut, expected)
        pd.testing.assert_frame_equal(probe, expected)  # later bars are never read
    assert (full["reason"] == "close").any()  # the close only once the session is complete


def test_the_book_at_a_minute_holds_what_filled_before_its_close(bars, signals) -> None:
    minute = pd.Timestamp(f"{SESSION} 10:12")
    earlier = signals[signals["minute"] < minute]
    state = state_from_backtest(earlier, bars, minute, 100_000.0, kill_switch=False)
    fills = simulate_fills(earlier, bars, MODEL, horizon=minute)
    held = fills.assign(signed=fills["qty"].where(fills["side"] == "buy", -fills["qty"]))
    expected = held.groupby("ticker")["signed"].sum()
    expected = expected[expected.abs() > 0]
    assert state.positions  # the window holds an open position
    assert {p.ticker: p.qty for p in state.positions} == expected.astype(int).to_dict()
    marks = bars[bars["minute"] == minute].set_index("ticker")["close"]
    for position in state.positions:
        assert position.mark == marks[position.ticker]
    cash = 100_000.0 + fills["cash_delta"].sum()
    value = sum(p.qty * marks[p.ticker] for p in state.positions)
    assert state.cash == pytest.approx(cash)
    assert state.equity == pytest.approx(cash + value)
    assert state.trades_today == 2 and state.day_start_equity == 100_000.0
