"""The demo's P&L line when its window ends with positions open (it printed `+nan` before)."""

import math

import pandas as pd

from tests.real_bars import bundled_bars
from trading_assets.main import INITIAL_CASH, marked_pnl


def test_open_positions_count_at_the_windows_last_close() -> None:
    """A long and a short opened at 09:45 on real bars, the window ending at 10:30: the P&L is
    each position's move from its entry to 10:30's close, a number, not NaN."""
    bars = bundled_bars()
    day = bars[bars["minute"].dt.date == pd.Timestamp("2026-03-23").date()]
    at = day.set_index(["ticker", "minute"])["close"]
    entry, end = pd.Timestamp("2026-03-23 09:45"), pd.Timestamp("2026-03-23 10:30")
    long_in, short_in = at[("AAPL", entry)], at[("META", entry)]
    cash = INITIAL_CASH - 5 * long_in + 3 * short_in  # bought 5 AAPL, sold 3 META short
    positions = [
        {"symbol": "AAPL", "qty": 5.0, "avg_entry_price": long_in},
        {"symbol": "META", "qty": -3.0, "avg_entry_price": short_in},
    ]
    upto = day[day["minute"] <= end].sort_values("minute").groupby("ticker")["close"].last()
    pnl = marked_pnl(cash, positions, upto.to_dict())
    expected = 5 * (upto["AAPL"] - long_in) - 3 * (upto["META"] - short_in)
    assert math.isfinite(pnl) and math.isclose(pnl, expected, abs_tol=1e-6)


def test_a_flat_book_is_its_cash_and_a_position_without_bars_counts_at_entry() -> None:
    assert math.isclose(marked_pnl(INITIAL_CASH - 70.51, [], {}), -70.51)
    unpriced = [{"symbol": "XYZ", "qty": 2.0, "avg_entry_price": 50.0}]
    assert math.isclose(marked_pnl(INITIAL_CASH - 100.0, unpriced, {}), 0.0)
