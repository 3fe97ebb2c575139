"""The incremental backtest book against the re-simulation it replaces, on real bars.

`state_from_backtest` (the whole session so far re-simulated for each minute) is the reference:
the book must hand the risk manager exactly its state at every minute of a session, and a
backfill's decisions made on the book must be exactly those made on the re-simulation. The
signals are laid out to reach every rule: partial entries over several bars (sizes above a
bar's volume cap), two orders sharing one bar's cap, stops, take-profits, a bracket without a
stop, an entry on the session's last bar and a signal too late to fill.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.real_bars import bundled_bars, scrambled_after
from trading_assets.backtest.simulate import session_signals, simulate_fills
from trading_assets.decision.backtest_book import BacktestBook, backtest_signals
from trading_assets.decision.risk import RiskLimits
from trading_assets.decision.signals import minute_signals, signal_frame
from trading_assets.decision.sources import state_from_backtest
from trading_assets.decision.trader import Proposal
from trading_assets.execution.fills import FillModel
from trading_assets.partitions import session_bounds

SESSION = pd.Timestamp("2026-03-17")
MODEL = FillModel()
EQUITY = 100_000.0
LIMITS = RiskLimits()
SECTORS = {"AAPL": "Information Technology", "MSFT": "Information Technology"}
STOCKS = ["AAPL", "AMZN", "GOOG", "META", "MSFT", "NVDA", "TSLA", "SPY", "QQQ"]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    frame = bundled_bars()
    return frame[frame["minute"].dt.normalize() == SESSION].reset_index(drop=True)


def _signal(bars: pd.DataFrame, minute: pd.Timestamp, ticker: str, n: int, **changes) -> dict:
    """An approved bracket decided at `minute`'s close; stop 0.15 % and target 0.3 % away."""
    bar = bars[(bars["minute"] == minute) & (bars["ticker"] == ticker)].iloc[0]
    action = changes.pop("action", "BUY" if n % 2 == 0 else "SELL")
    sign = 1 if action == "BUY" else -1
    close = float(bar["close"])
    return {
        "minute": minute,
        "ticker": ticker,
        "signal_id": f"sig-{n:03d}",
        "action": action,
        "status": "approved",
        "qty": 20,
        "entry": close,
        "stop": close * (1 - sign * 0.0015),
        "take_profit": close * (1 + sign * 0.003),
        **changes,
    }


@pytest.fixture(scope="module")
def signals(bars: pd.DataFrame) -> pd.DataFrame:
    minutes = pd.date_range(
        SESSION + pd.Timedelta("9h35min"), SESSION + pd.Timedelta("15h50min"), freq="7min"
    )
    rows = []
    for n, minute in enumerate(minutes):
        ticker = STOCKS[n % len(STOCKS)]
        rows.append(_signal(bars, minute, ticker, n))
        if n % 5 == 0:  # well above one bar's volume cap: fills over several bars
            volume = bars[(bars["minute"] == minute) & (bars["ticker"] == ticker)]["volume"]
            rows[-1]["qty"] = int(volume.iloc[0] * MODEL.max_volume_fraction * 4) + 7
        if n % 6 == 0:  # a second order on the ticker in the same minute shares the cap
            rows.append(_signal(bars, minute, ticker, 500 + n, qty=int(1e4)))
        if n % 11 == 0:
            rows[-1]["stop"] = float("nan")  # a take-profit only bracket
        if n % 4 == 0:  # a rejected proposal never trades
            rows.append(_signal(bars, minute, STOCKS[(n + 1) % 9], 700 + n, action="HOLD", qty=0))
    last = SESSION + pd.Timedelta("15h58min")
    rows.append(_signal(bars, last, "NVDA", 900, qty=5000))  # fills on the last bar, then closed
    rows.append(_signal(bars, last + pd.Timedelta(minutes=1), "AAPL", 901))  # never fills
    return pd.DataFrame(rows)


def test_the_book_equals_the_re_simulation_at_every_minute(bars, signals) -> None:
    book = BacktestBook(bars, SESSION, EQUITY, MODEL)
    for minute in sorted(bars["minute"].unique()):
        minute = pd.Timestamp(minute)
        earlier = signals[signals["minute"] < minute]
        expected = state_from_backtest(earlier, bars, minute, EQUITY, False, LIMITS, MODEL)
        assert book.state_at(minute, False, LIMITS) == expected, minute
        if minute.minute % 15 == 0 or (minute.hour == 15 and minute.minute >= 55):
            fills = simulate_fills(earlier, bars, MODEL, horizon=minute)
            pd.testing.assert_frame_equal(book.fills(), fills)
        book.add_signals(signals[signals["minute"] == minute])
    # the layout reached every rule
    fills = book.fills()
    entries = fills[fills["reason"] == "entry"]
    assert entries["trade_id"].value_counts().max() > 2  # partial entries over several bars
    assert set(fills["reason"]) == {"entry", "stop", "take_profit", "close"}
    assert (entries["minute"] == SESSION + pd.Timedelta("15h59min")).any()  # the last bar
    assert "sig-901" not in set(fills["trade_id"])
    before_last = signals[signals["minute"] < SESSION + pd.Timedelta("15h59min")]
    assert expected.positions == []  # flat at the close
    assert expected.trades_today == (before_last["qty"] > 0).sum()
    assert expected.consecutive_losses > 0 or expected.realised_pnl_today != 0


def test_the_book_never_reads_a_bar_after_its_minute(bars, signals) -> None:
    cut = SESSION + pd.Timedelta("12h31min")
    states = []
    for frame in (bars, scrambled_after(bars, cut, seed=5)):
        book = BacktestBook(frame, SESSION, EQUITY, MODEL)
        book.add_signals(signals[signals["minute"] < cut])
        states.append(book.state_at(cut, False, LIMITS))
    assert states[0] == states[1]
    assert states[0].positions  # the window holds an open position


def test_the_book_refuses_to_go_back_or_take_a_signal_it_could_have_filled(bars, signals) -> None:
    book = BacktestBook(bars, SESSION, EQUITY, MODEL)
    book.state_at(SESSION + pd.Timedelta("11h"), False)
    with pytest.raises(ValueError, match="cannot go back"):
        book.advance(SESSION + pd.Timedelta("10h"))
    with pytest.raises(ValueError, match="earlier than the book's horizon"):
        book.add_signals(signals[signals["minute"] < SESSION + pd.Timedelta("11h")])
    with pytest.raises(ValueError, match="not of the 2026-03-17 book"):
        book.add_signals(signals.assign(minute=signals["minute"] + pd.Timedelta(days=1)))


@pytest.fixture(scope="module")
def proposals(bars: pd.DataFrame) -> dict[pd.Timestamp, list[Proposal]]:
    """The trader's proposals on up to four stocks every 5 minutes, priced from the real bars;
    some ask for more than the limits allow."""
    out: dict[pd.Timestamp, list[Proposal]] = {}
    minutes = pd.date_range(
        SESSION + pd.Timedelta("9h40min"), SESSION + pd.Timedelta("15h59min"), freq="5min"
    )
    for n, minute in enumerate(minutes):
        batch = []
        for k, ticker in enumerate(["AAPL", "MSFT", "NVDA", "TSLA"][: 1 + n % 4]):
            window = bars[(bars["ticker"] == ticker) & (bars["minute"] <= minute)].tail(14)
            batch.append(
                Proposal(
                    ticker=ticker,
                    minute=minute,
                    side="buy" if (n + k) % 3 else "sell",
                    entry=float(window["close"].iloc[-1]),
                    confidence=0.6 + 0.01 * k,
                    horizon_minutes=30,
                    atr=float((window["high"] - window["low"]).mean()),
                    qty=400 if n % 7 == 3 else None,
                )
            )
        out[minute] = batch
    return out


def _re_simulated(proposals, stored: pd.DataFrame, bars: pd.DataFrame) -> list[pd.DataFrame]:
    """The backfill loop the book replaced: the session re-simulated for every minute."""
    frames: list[pd.DataFrame] = []
    for minute, batch in proposals.items():
        earlier = session_signals([stored, *frames], minute)
        state = state_from_backtest(earlier, bars, minute, EQUITY, False, LIMITS)
        close = session_bounds(minute.date())[1]
        frames.append(
            signal_frame(
                minute_signals(batch, state, LIMITS, SECTORS, minute, close), state, "backtest"
            )
        )
    return frames


def test_a_backfill_decides_exactly_as_on_the_re_simulation(bars, proposals) -> None:
    kwargs = {"limits": LIMITS, "sectors": SECTORS, "equity": EQUITY, "kill_switch": False}
    frames = backtest_signals(proposals, pd.DataFrame(), bars, **kwargs)
    expected = _re_simulated(proposals, pd.DataFrame(), bars)
    assert len(frames) == len(expected) == len(proposals)
    for got, want in zip(frames, expected, strict=True):
        pd.testing.assert_frame_equal(got, want)
    signals = pd.concat(frames, ignore_index=True)
    assert set(signals["status"]) == {"approved", "resized", "rejected"}
    assert signals["equity"].nunique() > 10  # sized on a moving book
    # a run starting mid-session first fills the signals stored by the earlier runs
    noon = SESSION + pd.Timedelta("12h")
    later = {m: b for m, b in proposals.items() if m >= noon}
    stored = signals[signals["minute"] < noon]
    resumed = backtest_signals(later, stored, bars, **kwargs)
    pd.testing.assert_frame_equal(
        pd.concat(resumed, ignore_index=True),
        signals[signals["minute"] >= noon].reset_index(drop=True),
    )
