"""The paper's baselines on the real bundled bars (12 sessions, 2026-03-12..2026-03-27), through
the same fill model as the agents: the right prices at the right bar, flat every night, no
look-ahead, and buy-and-hold equal to a computation by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tests.real_bars import bundled_bars, scrambled_after
from trading_assets.backtest.baselines import (
    BASELINES,
    kdj_rsi,
    run_baselines,
    simulate_targets,
    sma_crossover,
)
from trading_assets.backtest.metrics import equity_curve, performance_table
from trading_assets.backtest.schema import BACKTEST_FILL_COLUMNS
from trading_assets.execution.fills import FillModel

MODEL = FillModel()
START = 100_000.0
LAST_SESSION = "2026-03-28"  # SPY and QQQ have bars after it; the 12 full sessions end 03-27
INTRADAY = [name for name in BASELINES if name != "buy_and_hold"]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    every = bundled_bars()
    return every[every["minute"] < LAST_SESSION].reset_index(drop=True)


@pytest.fixture(scope="module")
def runs(bars: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return run_baselines(bars, MODEL, START)


def one(bars: pd.DataFrame, ticker: str) -> pd.DataFrame:
    return bars[bars["ticker"] == ticker].sort_values("minute").reset_index(drop=True)


def test_every_baseline_writes_the_fill_contract_and_closes_every_trade(
    runs: dict[str, pd.DataFrame], bars: pd.DataFrame
) -> None:
    assert set(runs) == set(BASELINES)
    for name, fills in runs.items():
        assert list(fills.columns) == list(BACKTEST_FILL_COLUMNS)
        assert not fills.empty, name
        assert (fills["strategy"] == name).all()
        assert (fills["qty"] > 0).all() and (fills["qty"] % 1 == 0).all()  # whole shares
        signed = fills["qty"].where(fills["side"] == "buy", -fills["qty"])
        net = signed.groupby(fills["trade_id"]).sum()
        assert (net == 0).all(), f"{name}: a round trip is left open"
        # one trade id per round trip: a trade has one ticker and one direction
        assert (fills.groupby("trade_id")["ticker"].nunique() == 1).all()
        assert (fills.groupby("trade_id")["position_side"].nunique() == 1).all()
        assert (fills["slippage_cost"] >= 0).all()
    assert set(runs["buy_and_hold"]["ticker"]) == set(bars["ticker"])
    # mean reversion trades both ways, and a short is covered by its signal, not only at the close
    fades = runs["zero_mean_reversion"]
    short = fades[fades["position_side"] == "short"]
    assert (short["reason"] == "exit").any() and (short["side"] == "buy").any()


def test_buy_and_hold_equals_the_arithmetic_on_the_first_open_and_last_close(
    bars: pd.DataFrame,
) -> None:
    tickers = ["AAPL", "SPY"]
    chosen = bars[bars["ticker"].isin(tickers)]
    runs = run_baselines(chosen, MODEL, START, tickers=tickers)
    capital = START / 2
    expected_final = 0.0
    for ticker in tickers:
        series = one(chosen, ticker)
        first_open, last_close = series["open"].iloc[0], series["close"].iloc[-1]
        buy_price = first_open * (1 + 5 / 10_000)
        shares = math.floor(capital / buy_price)
        assert shares <= 0.025 * series["volume"].iloc[0]  # the first bar fills it in one go
        buy_commission = max(0.99, 0.0049 * shares)
        sell_commission = max(0.99, 0.0049 * shares)
        cash = capital - shares * buy_price - buy_commission
        cash += shares * last_close * (1 - 5 / 10_000) - sell_commission
        expected_final += cash
        fills = runs["buy_and_hold"][runs["buy_and_hold"]["ticker"] == ticker]
        assert list(fills["minute"]) == [series["minute"].iloc[0], series["minute"].iloc[-1]]
        assert list(fills["qty"]) == [shares, shares]
    curve = equity_curve(runs["buy_and_hold"], chosen, START)
    assert curve["equity"].iloc[-1] == pytest.approx(expected_final, rel=1e-12)
    # held overnight: long on every session's last minute until the end
    closes = curve.groupby(curve["minute"].dt.date).last()
    assert (closes["position_value"].iloc[:-1] > 0).all()
    table = performance_table(runs, chosen, START).set_index("strategy")
    assert table.loc["buy_and_hold", "cumulative_return"] == pytest.approx(
        expected_final / START - 1, rel=1e-9
    )


def test_intraday_baselines_are_flat_after_every_session(
    runs: dict[str, pd.DataFrame], bars: pd.DataFrame
) -> None:
    last_minute = bars.groupby(["ticker", bars["minute"].dt.date])["minute"].max()
    for name in INTRADAY:
        fills = runs[name]
        dates = fills["minute"].dt.date
        assert (fills.groupby("trade_id")["minute"].agg(lambda m: m.dt.date.nunique()) == 1).all()
        signed = fills["qty"].where(fills["side"] == "buy", -fills["qty"])
        assert (signed.groupby([fills["ticker"], dates]).sum() == 0).all(), name
        # what is still open at the last bar is closed at its close, never later
        closes = fills[fills["reason"] == "close"]
        keys = list(zip(closes["ticker"], closes["minute"].dt.date, strict=True))
        assert list(closes["minute"]) == [last_minute[key] for key in keys]
        close_at = bars.set_index(["ticker", "minute"])["close"]
        expected = close_at.loc[list(zip(closes["ticker"], closes["minute"], strict=True))]
        assert (closes["reference_price"].to_numpy() == expected.to_numpy()).all()
    hold = runs["buy_and_hold"]
    assert (hold.groupby("trade_id")["minute"].agg(lambda m: m.dt.date.nunique()) > 1).all()


def test_a_target_decided_at_a_close_fills_at_the_next_open(
    runs: dict[str, pd.DataFrame], bars: pd.DataFrame
) -> None:
    aapl = one(bars, "AAPL").set_index("minute")
    entries = runs["sma_crossover"]
    entry = entries[(entries["ticker"] == "AAPL") & (entries["reason"] == "entry")].iloc[0]
    decided, filled = entry["signal_minute"], entry["minute"]
    # the cross, computed here from the closes: fast SMA above slow at `decided`, not before
    close = aapl["close"]
    above = close.rolling(20).mean() > close.rolling(50).mean()
    assert above[decided] and not above[close.index[close.index.get_loc(decided) - 1]]
    assert filled == close.index[close.index.get_loc(decided) + 1]  # the very next bar
    assert entry["reference_price"] == aapl.loc[filled, "open"]
    assert entry["price"] == pytest.approx(aapl.loc[filled, "open"] * 1.0005, rel=1e-12)
    assert entry["qty"] == math.floor(START / 9 / (aapl.loc[filled, "open"] * 1.0005))
    assert entry["commission"] == pytest.approx(max(0.99, 0.0049 * entry["qty"]))


def test_no_look_ahead_scrambling_or_cutting_the_future_changes_no_earlier_fill(
    bars: pd.DataFrame,
) -> None:
    sample = bars[
        bars["ticker"].isin(["NVDA", "TSLA"]) & (bars["minute"] < "2026-03-18")
    ].reset_index(drop=True)
    cut = pd.Timestamp("2026-03-17 11:17")
    full = run_baselines(sample, MODEL, START)
    scrambled = run_baselines(scrambled_after(sample, cut, seed=7), MODEL, START)
    truncated = run_baselines(sample[sample["minute"] <= cut], MODEL, START)
    for name in INTRADAY:
        before = full[name][full[name]["minute"] <= cut].reset_index(drop=True)
        assert len(before) > 0, name
        after_scramble = scrambled[name][scrambled[name]["minute"] <= cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(before, after_scramble)
        # cut at `cut`, the last bar closes any position at `cut`: compare what precedes it
        earlier = before[before["minute"] < cut].reset_index(drop=True)
        cut_run = truncated[name]
        pd.testing.assert_frame_equal(
            earlier, cut_run[cut_run["minute"] < cut].reset_index(drop=True)
        )


@pytest.mark.parametrize("name", list(BASELINES))
def test_targets_are_causal_and_in_range(name: str, bars: pd.DataFrame) -> None:
    """Random prices after a cut change no target up to it (nor does cutting the bars there)."""
    series = one(bars, "MSFT").iloc[:1600]
    full = BASELINES[name](series)
    assert set(full.unique()) <= {-1, 0, 1}
    for seed, cut in enumerate((450, 700, 1111, 1500)):
        at = series["minute"].iloc[cut]
        scrambled = BASELINES[name](scrambled_after(series, at, seed))
        cut_short = BASELINES[name](series.iloc[: cut + 1])
        assert (full.iloc[: cut + 1].to_numpy() == scrambled.iloc[: cut + 1].to_numpy()).all()
        assert (full.iloc[: cut + 1].to_numpy() == cut_short.to_numpy()).all()


def test_kdj_rsi_enters_only_when_both_are_oversold(bars: pd.DataFrame) -> None:
    from ta.momentum import RSIIndicator

    from trading_assets.backtest.baselines import kdj

    series = one(bars, "TSLA")
    target = kdj_rsi(series).to_numpy()
    j = kdj(series)["j"].to_numpy()
    rsi = RSIIndicator(series["close"].round(6), window=14).rsi().to_numpy()
    new_session = series["minute"].dt.date.ne(series["minute"].dt.date.shift()).to_numpy()
    entries = [i for i in range(1, len(target)) if target[i] == 1 and target[i - 1] != 1]
    assert entries, "the rule never fired on 12 real sessions of TSLA"
    for i in entries:
        assert j[i] < 20 and rsi[i] < 30
    exits = [
        i
        for i in range(1, len(target))
        if target[i] == 0 and target[i - 1] == 1 and not new_session[i]
    ]
    for i in exits:
        assert j[i] > 80 or rsi[i] > 70


def test_an_order_bigger_than_the_volume_cap_keeps_working_on_the_next_bars(
    bars: pd.DataFrame,
) -> None:
    session = one(bars, "AAPL")
    session = session[session["minute"].dt.date == pd.Timestamp("2026-03-16").date()]
    session = session.reset_index(drop=True)
    targets = pd.Series(0, index=pd.DatetimeIndex(session["minute"]))
    targets.iloc[100:200] = 1  # long from bar 100's close to bar 199's close
    capital = 20_000_000.0
    fills = simulate_targets(targets, session, MODEL, capital, strategy="big")
    entries = fills[fills["reason"] == "entry"]
    first_open = session["open"].iloc[101]
    wanted = math.floor(capital / (first_open * 1.0005))
    assert len(entries) > 1  # the cap bound: several bars
    assert entries["minute"].iloc[0] == session["minute"].iloc[101]
    volume = session.set_index("minute")["volume"]
    assert (entries["qty"] <= (volume[entries["minute"]] * 0.025).to_numpy()).all()
    held_at_exit = entries[entries["minute"] <= session["minute"].iloc[200]]["qty"].sum()
    assert held_at_exit <= wanted
    assert fills["trade_id"].nunique() == 1
    signed = fills["qty"].where(fills["side"] == "buy", -fills["qty"])
    assert signed.sum() == 0  # flat by the close


def test_a_target_on_a_sessions_last_bar_does_nothing(bars: pd.DataFrame) -> None:
    two_days = one(bars, "META")
    two_days = two_days[two_days["minute"] < "2026-03-14"].reset_index(drop=True)
    targets = pd.Series(0, index=pd.DatetimeIndex(two_days["minute"]))
    last_of_first_day = two_days["minute"].dt.date.ne(two_days["minute"].dt.date.shift(-1))
    targets[last_of_first_day.to_numpy()] = 1
    fills = simulate_targets(targets, two_days, MODEL, 10_000.0, strategy="late")
    assert fills.empty
    assert list(fills.columns) == list(BACKTEST_FILL_COLUMNS)


def test_nothing_trades_on_a_sessions_first_bar_intraday(
    runs: dict[str, pd.DataFrame], bars: pd.DataFrame
) -> None:
    """Intraday baselines start each session flat: no decision exists yet at the first open."""
    first_bar = set(bars.groupby(bars["minute"].dt.date)["minute"].min())
    for name in INTRADAY:
        assert not runs[name]["minute"].isin(first_bar).any(), name
    # a regime rule still follows yesterday's regime from the second bar
    series = one(bars, "QQQ")
    target = sma_crossover(series)
    second = series.groupby(series["minute"].dt.date)["minute"].nth(1)
    previous = series.groupby(series["minute"].dt.date)["minute"].nth(0)
    long_at_first = target.reindex(pd.DatetimeIndex(previous)).to_numpy() == 1
    fills = runs["sma_crossover"]
    entered = set(fills[(fills["ticker"] == "QQQ") & (fills["reason"] == "entry")]["minute"])
    assert long_at_first.any()
    for minute, is_long in zip(second, long_at_first, strict=True):
        assert (minute in entered) == bool(is_long)
