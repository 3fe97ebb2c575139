"""The backtest's fills are the paper broker's: the same bracket orders on a real session, sent
to the embedded broker over HTTP through alpaca-py, fill at the same bars, prices, quantities
and commissions as `simulate_fills` gives for the same signals (entries, partial entries under
the volume cap, stops, take-profits and the close)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest, StopLossRequest, TakeProfitRequest

from resources.paper_broker import PaperBroker
from tests.real_bars import bundled_bars
from trading_assets.backtest.simulate import simulate_fills
from trading_assets.execution.fills import FillModel

SESSION = "2026-03-18"
# (decision minute, ticker, action, qty): one trade per ticker, so the broker's one flatten
# per symbol and the backtest's one close per trade are the same fill.
PLAN = [
    ("09:41", "AAPL", "BUY", 40),
    ("10:05", "MSFT", "SELL", 25),
    ("10:30", "NVDA", "BUY", 60),
    ("11:12", "TSLA", "SELL", 30),
    ("12:40", "META", "BUY", 15),
    ("13:15", "GOOG", "BUY", 45),
    ("14:02", "AMZN", "SELL", 50),
    ("15:20", "QQQ", "BUY", 20),
    ("15:49", "SPY", "SELL", 12),
]


def _signals(bars: pd.DataFrame) -> pd.DataFrame:
    rows = []
    closes = bars.set_index(["minute", "ticker"])["close"]
    for n, (hhmm, ticker, action, qty) in enumerate(PLAN):
        minute = pd.Timestamp(f"{SESSION} {hhmm}")
        close = float(closes[(minute, ticker)])
        sign = 1 if action == "BUY" else -1
        rows.append(
            {
                "minute": minute,
                "ticker": ticker,
                "signal_id": f"sig-parity-{n}",
                "action": action,
                "status": "approved",
                "qty": qty,
                "entry": close,
                "stop": round(close * (1 - sign * 0.003), 2),
                "take_profit": round(close * (1 + sign * 0.004), 2),
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def session_bars() -> pd.DataFrame:
    bars = bundled_bars()
    return bars[bars["minute"].dt.strftime("%Y-%m-%d") == SESSION].reset_index(drop=True)


def test_simulated_fills_equal_the_paper_brokers(tmp_path: Path, session_bars) -> None:
    signals = _signals(session_bars)
    # a volume cap small enough that some entries fill over several bars
    model = FillModel(max_volume_fraction=0.0002)
    open_utc = pd.Timestamp(f"{SESSION} 09:30", tz="America/New_York").tz_convert("UTC")
    with PaperBroker(tmp_path / "paper.sqlite", start_time=open_utc, fill_model=model) as broker:
        client = TradingClient("k", "s", url_override=broker.url)
        for row in signals.itertuples():
            sent_at = (row.minute + pd.Timedelta(minutes=1)).tz_localize("America/New_York")
            broker.set_clock(sent_at.tz_convert("UTC"))
            client.submit_order(
                MarketOrderRequest(
                    symbol=row.ticker,
                    qty=row.qty,
                    side=OrderSide.BUY if row.action == "BUY" else OrderSide.SELL,
                    time_in_force=TimeInForce.DAY,
                    order_class=OrderClass.BRACKET,
                    take_profit=TakeProfitRequest(limit_price=row.take_profit),
                    stop_loss=StopLossRequest(stop_price=row.stop),
                    client_order_id=row.signal_id,
                )
            )
        close = pd.Timestamp(f"{SESSION} 16:00", tz="America/New_York").tz_convert("UTC")
        broker.set_clock(close)
        books = broker.engine.state  # type: ignore[union-attr]
        orders = {o["id"]: o for o in books.orders()}
        trade_of_symbol = {r.ticker: r.signal_id for r in signals.itertuples()}
        broker_fills = pd.DataFrame(
            {
                "minute": pd.Timestamp(f["bar_start"])
                .tz_convert("America/New_York")
                .tz_localize(None),
                "trade_id": trade_of_symbol[f["symbol"]],
                "reason": f["reason"],
                "side": f["side"],
                "qty": float(f["qty"]),
                "price": float(f["price"]),
                "commission": float(f["commission"]),
            }
            for f in books.fills()
            if orders[f["order_id"]]["symbol"] in trade_of_symbol
        )

    simulated = simulate_fills(signals, session_bars, model)
    columns = ["minute", "trade_id", "reason", "side", "qty", "price", "commission"]
    key = ["trade_id", "minute", "reason"]
    expected = broker_fills.sort_values(key).reset_index(drop=True)[columns]
    got = simulated.sort_values(key).reset_index(drop=True)[columns]
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    # the comparison covers every kind of fill the backtest makes
    assert {"entry", "stop", "take_profit", "close"} <= set(got["reason"])
    partial = got[got["reason"] == "entry"].groupby("trade_id").size()
    assert (partial > 1).any(), "no entry was split by the volume cap"
