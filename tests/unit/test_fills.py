"""The shared fill model on real bundled 1-minute bars (AAPL, 2026-03-12)."""

from __future__ import annotations

import pandas as pd
import pytest

from resources.providers.replay import ReplayProvider
from trading_assets.execution.fills import FillModel

MODEL = FillModel()


@pytest.fixture(scope="module")
def aapl() -> pd.DataFrame:
    bars = ReplayProvider().fetch_bars(
        ["AAPL"], pd.Timestamp("2026-03-12", tz="UTC"), pd.Timestamp("2026-03-13", tz="UTC")
    )
    assert len(bars) >= 388
    return bars.set_index("timestamp", drop=False)


def bar_at(bars: pd.DataFrame, hhmm_utc: str) -> pd.Series:
    return bars.loc[pd.Timestamp(f"2026-03-12 {hhmm_utc}", tz="UTC")]


def test_entry_at_next_bar_open_with_slippage_and_commission(aapl: pd.DataFrame) -> None:
    nxt = bar_at(aapl, "14:01")
    buy = MODEL.entry_fill("buy", 100, nxt)
    sell = MODEL.entry_fill("sell", 100, nxt)
    assert buy is not None and sell is not None
    assert buy.reference_price == nxt["open"]
    assert buy.price == pytest.approx(nxt["open"] * 1.0005, rel=1e-12)
    assert sell.price == pytest.approx(nxt["open"] * 0.9995, rel=1e-12)
    assert buy.qty == 100
    assert buy.commission == 0.99  # 100 * 0.0049 = 0.49 < the $0.99 minimum
    assert buy.timestamp == nxt["timestamp"]
    assert buy.cash_delta == pytest.approx(-(100 * buy.price) - 0.99)
    assert sell.cash_delta == pytest.approx(100 * sell.price - 0.99)


def test_commission_minimum_and_per_share() -> None:
    assert MODEL.commission(0) == 0.0
    assert MODEL.commission(1) == 0.99
    assert MODEL.commission(202) == pytest.approx(0.99)  # 0.9898 -> floor applies
    assert MODEL.commission(1000) == pytest.approx(4.90)
    custom = FillModel(commission_per_share=0.01, min_commission=0.0, slippage_bps=0.0)
    assert custom.commission(10) == pytest.approx(0.10)


def test_volume_cap_makes_a_partial_fill(aapl: pd.DataFrame) -> None:
    nxt = bar_at(aapl, "14:01")
    cap = int(nxt["volume"] * 0.025)
    fill = MODEL.entry_fill("buy", cap * 10, nxt)
    assert fill is not None
    assert fill.qty == cap  # the rest is left for the caller (the broker keeps it working)
    assert fill.commission == pytest.approx(max(0.99, cap * 0.0049))
    small = FillModel(max_volume_fraction=0.001).entry_fill("buy", cap * 10, nxt)
    assert small is not None and small.qty == int(nxt["volume"] * 0.001)


def test_zero_volume_bar_fills_nothing(aapl: pd.DataFrame) -> None:
    dry = bar_at(aapl, "14:01").copy()
    dry["volume"] = 0.0
    assert MODEL.entry_fill("buy", 10, dry) is None
    assert MODEL.entry_fill("buy", 0, bar_at(aapl, "14:01")) is None


def test_take_profit_crossed_by_a_later_bar(aapl: pd.DataFrame) -> None:
    later = aapl[aapl["timestamp"] > pd.Timestamp("2026-03-12 14:01", tz="UTC")].iloc[:60]
    take_profit = float(later["high"].max()) - 0.001
    first = later[later["high"] >= take_profit].iloc[0]
    stop = float(later["low"].min()) - 5.0  # never reached
    fill = MODEL.bracket_exit("buy", stop, take_profit, later.itertuples(index=False), qty=10)
    assert fill is not None
    assert fill.reason == "take_profit" and fill.side == "sell"
    assert fill.timestamp == first["timestamp"]
    assert fill.price == max(first["open"], take_profit)  # a limit: no slippage past it
    assert fill.commission == 0.99


def test_stop_crossed_and_gap_through(aapl: pd.DataFrame) -> None:
    later = aapl[aapl["timestamp"] > pd.Timestamp("2026-03-12 14:01", tz="UTC")].iloc[:60]
    stop = float(later["low"].min()) + 0.001
    first = later[later["low"] <= stop].iloc[0]
    fill = MODEL.bracket_exit("buy", stop, 10_000.0, later.itertuples(index=False), qty=10)
    assert fill is not None and fill.reason == "stop"
    assert fill.timestamp == first["timestamp"]
    reference = min(first["open"], stop)
    assert fill.reference_price == reference
    assert fill.price == pytest.approx(reference * 0.9995)  # stop-market: slippage against us
    # gap: a stop above the bar's open fills at the open
    bar = bar_at(aapl, "14:30")
    gapped = MODEL.bracket_exit("buy", bar["open"] + 1.0, None, [bar], qty=1)
    assert gapped is not None and gapped.reference_price == bar["open"]


def test_both_levels_in_one_bar_assume_the_stop(aapl: pd.DataFrame) -> None:
    bar = bar_at(aapl, "14:30")
    assert bar["high"] > bar["low"]
    long_exit = MODEL.bracket_exit("buy", bar["low"], bar["high"], [bar], qty=5)
    short_exit = MODEL.bracket_exit("sell", bar["high"], bar["low"], [bar], qty=5)
    assert long_exit is not None and long_exit.reason == "stop" and long_exit.side == "sell"
    assert short_exit is not None and short_exit.reason == "stop" and short_exit.side == "buy"
    assert short_exit.price == pytest.approx(max(bar["open"], bar["high"]) * 1.0005)


def test_no_exit_when_nothing_crosses(aapl: pd.DataFrame) -> None:
    later = aapl.iloc[40:50]
    fill = MODEL.bracket_exit(
        "buy",
        float(later["low"].min()) - 1,
        float(later["high"].max()) + 1,
        later.itertuples(),
        qty=1,
    )
    assert fill is None


def test_flat_at_the_close(aapl: pd.DataFrame) -> None:
    last = aapl.iloc[-1]
    assert last["timestamp"].tz_convert("America/New_York").strftime("%H:%M") == "15:59"
    long_close = MODEL.close_fill("buy", 30, last)
    short_close = MODEL.close_fill("sell", 30, last)
    assert long_close.side == "sell" and long_close.reason == "close"
    assert long_close.price == pytest.approx(last["close"] * 0.9995)
    assert short_close.side == "buy"
    assert short_close.price == pytest.approx(last["close"] * 1.0005)
    assert long_close.timestamp == last["timestamp"]
