"""Backtest metrics on real bundled bars: a two-trade AAPL example small enough to check by hand
(one winner on 2026-03-12, one loser on 2026-03-13, filled by the real fill model), the empty
run, the baselines' consistency, and the chart."""

from __future__ import annotations

import base64
import math
import statistics

import pandas as pd
import pytest

from tests.real_bars import bundled_bars
from trading_assets.backtest.baselines import run_baselines
from trading_assets.backtest.chart import equity_chart_png, equity_figure, markdown_image
from trading_assets.backtest.metrics import (
    daily_returns,
    equity_curve,
    per_ticker,
    performance,
    performance_table,
    round_trips,
)
from trading_assets.backtest.schema import BACKTEST_FILL_COLUMNS, fill_row
from trading_assets.execution.fills import Fill, FillModel
from trading_assets.schemas import conform, empty_frame

MODEL = FillModel()
START = 100_000.0
QTY = 100
SLIP = 5 / 10_000
# (day, entry bar, exit bar): AAPL rose 254.90 -> 255.33 over the first, fell 255.83 -> 255.43
# over the second (asserted below, from the bars).
TRADES = [("2026-03-12", "11:00", "11:30"), ("2026-03-13", "10:00", "10:30")]


@pytest.fixture(scope="module")
def aapl() -> pd.DataFrame:
    bars = bundled_bars()
    days = bars["minute"].dt.strftime("%Y-%m-%d").isin([day for day, _, _ in TRADES])
    return bars[(bars["ticker"] == "AAPL") & days].sort_values("minute").reset_index(drop=True)


def row(fill: Fill, trade_id: str, position_side: str, ticker: str = "AAPL") -> dict:
    return fill_row(
        fill,
        strategy="hand",
        trade_id=trade_id,
        signal_minute=fill.timestamp - pd.Timedelta(minutes=1),
        ticker=ticker,
        position_side=position_side,
    )


def bar(bars: pd.DataFrame, day: str, hhmm: str) -> pd.Series:
    found = bars[bars["minute"] == pd.Timestamp(f"{day} {hhmm}")].iloc[0]
    return found.rename({"minute": "timestamp"})


@pytest.fixture(scope="module")
def two_trips(aapl: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for n, (day, enter, leave) in enumerate(TRADES, start=1):
        buy = MODEL.entry_fill("buy", QTY, bar(aapl, day, enter))
        sell = MODEL.entry_fill("sell", QTY, bar(aapl, day, leave))
        assert buy is not None and sell is not None and buy.qty == sell.qty == QTY
        rows += [row(buy, f"hand-{n}", "long"), row(sell, f"hand-{n}", "long")]
    return conform(pd.DataFrame(rows), BACKTEST_FILL_COLUMNS)


def hand_pnl(aapl: pd.DataFrame, day: str, enter: str, leave: str) -> float:
    """Long QTY shares from one bar's open to another's, 5 bp slippage each way, $0.99 each."""
    bought = bar(aapl, day, enter)["open"] * (1 + SLIP)
    sold = bar(aapl, day, leave)["open"] * (1 - SLIP)
    return QTY * (sold - bought) - 2 * max(0.99, 0.0049 * QTY)


def test_the_example_is_one_winner_and_one_loser(aapl: pd.DataFrame) -> None:
    win, loss = (hand_pnl(aapl, *trade) for trade in TRADES)
    assert win > 0 > loss  # 100 * (255.33 * 0.9995 - 254.90 * 1.0005) - 1.98 = +15.5...


def test_round_trips_of_the_example(aapl: pd.DataFrame, two_trips: pd.DataFrame) -> None:
    trips = round_trips(two_trips)
    assert list(trips["trade_id"]) == ["hand-1", "hand-2"]
    assert trips["closed"].all()
    for (_, trip), (day, enter, leave) in zip(trips.iterrows(), TRADES, strict=True):
        assert trip["qty"] == QTY
        assert trip["entry_minute"] == pd.Timestamp(f"{day} {enter}")
        assert trip["exit_minute"] == pd.Timestamp(f"{day} {leave}")
        assert trip["entry_price"] == pytest.approx(bar(aapl, day, enter)["open"] * (1 + SLIP))
        assert trip["exit_price"] == pytest.approx(bar(aapl, day, leave)["open"] * (1 - SLIP))
        assert trip["commission"] == pytest.approx(1.98)
        assert trip["pnl"] == pytest.approx(hand_pnl(aapl, day, enter, leave), abs=1e-9)
        assert trip["return"] == pytest.approx(trip["pnl"] / (QTY * trip["entry_price"]))


def test_round_trips_weight_partial_entries_and_flag_an_open_trade(aapl: pd.DataFrame) -> None:
    day = TRADES[0][0]
    first = MODEL.entry_fill("sell", 30, bar(aapl, day, "10:00"))
    second = MODEL.entry_fill("sell", 10, bar(aapl, day, "10:01"))
    cover = MODEL.close_fill("sell", 40, bar(aapl, day, "15:59"))
    still_open = MODEL.entry_fill("buy", 5, bar(aapl, day, "12:00"))
    assert first and second and still_open
    fills = conform(
        pd.DataFrame(
            [
                row(first, "s-1", "short"),
                row(second, "s-1", "short"),
                row(cover, "s-1", "short"),
                row(still_open, "l-1", "long"),
            ]
        ),
        BACKTEST_FILL_COLUMNS,
    )
    trips = round_trips(fills).set_index("trade_id")
    short = trips.loc["s-1"]
    assert short["qty"] == 40 and bool(short["closed"])
    assert short["entry_price"] == pytest.approx((30 * first.price + 10 * second.price) / 40)
    assert short["exit_price"] == pytest.approx(cover.price)
    assert short["exit_minute"] == pd.Timestamp(f"{day} 15:59")
    assert short["pnl"] == pytest.approx(first.cash_delta + second.cash_delta + cover.cash_delta)
    assert not bool(trips.loc["l-1", "closed"])
    assert math.isnan(trips.loc["l-1", "exit_price"])
    metrics = performance(equity_curve(fills, aapl, START), round_trips(fills), fills)
    assert metrics["trades"] == 1.0  # the open trade does not count


def test_equity_curve_marks_every_minute_at_the_close(
    aapl: pd.DataFrame, two_trips: pd.DataFrame
) -> None:
    curve = equity_curve(two_trips, aapl, START)
    assert list(curve["minute"]) == list(aapl["minute"])
    assert curve.attrs["starting_equity"] == START
    # by hand: cash moves at each fill's bar, the 100 shares are marked at every close between
    cash, held, expected, gross = START, 0, [], []
    fills_at = {f["minute"]: f for _, f in two_trips.iterrows()}
    for _, b in aapl.iterrows():
        if b["minute"] in fills_at:
            fill = fills_at[b["minute"]]
            cash += fill["cash_delta"]
            held += QTY if fill["side"] == "buy" else -QTY
        expected.append(cash + held * b["close"])
        gross.append(abs(held * b["close"]))
    assert curve["equity"].to_numpy() == pytest.approx(expected, rel=1e-12)
    assert curve["gross_exposure"].to_numpy() == pytest.approx(gross, rel=1e-12)
    peak = pd.Series(expected).cummax().clip(lower=START)
    assert curve["drawdown"].to_numpy() == pytest.approx((pd.Series(expected) / peak - 1).values)
    assert (curve["drawdown"] <= 0).all()
    win, loss = (hand_pnl(aapl, *trade) for trade in TRADES)
    assert curve["equity"].iloc[-1] == pytest.approx(START + win + loss)


def test_performance_of_the_example_by_hand(aapl: pd.DataFrame, two_trips: pd.DataFrame) -> None:
    curve = equity_curve(two_trips, aapl, START)
    metrics = performance(curve, round_trips(two_trips), two_trips, llm_cost_usd=12.5)
    win, loss = (hand_pnl(aapl, *trade) for trade in TRADES)
    day1, day2 = START + win, START + win + loss  # flat at both closes: equity = cash
    r1, r2 = day1 / START - 1, day2 / day1 - 1
    mean = (r1 + r2) / 2
    assert list(daily_returns(curve, START)) == pytest.approx([r1, r2])
    assert metrics["cumulative_return"] == pytest.approx(day2 / START - 1)
    assert metrics["annualised_return"] == pytest.approx((day2 / START) ** (252 / 2) - 1)
    assert metrics["sharpe"] == pytest.approx(mean / statistics.stdev([r1, r2]) * math.sqrt(252))
    downside = math.sqrt((0.0**2 + r2**2) / 2)  # r1 > 0 counts as 0 below the target of 0
    assert metrics["sortino"] == pytest.approx(mean / downside * math.sqrt(252))
    assert metrics["win_rate"] == 0.5
    assert metrics["profit_factor"] == pytest.approx(win / -loss)
    assert metrics["trades"] == 2.0
    assert metrics["commissions"] == pytest.approx(4 * 0.99)
    traded = float((two_trips["qty"] * two_trips["price"]).sum())
    assert metrics["turnover"] == pytest.approx(traded / curve["equity"].mean())
    assert metrics["exposure"] == pytest.approx((curve["gross_exposure"] / curve["equity"]).mean())
    assert 0 < metrics["exposure"] < 0.3  # 100 AAPL shares is about a quarter of the equity
    # the loser took back the winner's gain and more: the deepest point is during trade 2
    assert metrics["max_drawdown"] == pytest.approx(curve["drawdown"].min())
    assert metrics["max_drawdown"] <= day2 / day1 - 1 < 0
    assert metrics["llm_cost_usd"] == 12.5
    assert metrics["net_return_after_llm"] == pytest.approx((day2 - 12.5 - START) / START)


def test_a_run_with_no_fills_is_flat_and_every_metric_is_finite(aapl: pd.DataFrame) -> None:
    fills = empty_frame(BACKTEST_FILL_COLUMNS)
    curve = equity_curve(fills, aapl, START)
    assert len(curve) == len(aapl)
    assert (curve["equity"] == START).all() and (curve["cash"] == START).all()
    assert (curve["drawdown"] == 0).all() and (curve["gross_exposure"] == 0).all()
    trips = round_trips(fills)
    assert trips.empty and "closed" in trips.columns
    metrics = performance(curve, trips, fills)
    assert all(math.isfinite(value) for value in metrics.values())
    for key in ("cumulative_return", "sharpe", "sortino", "max_drawdown", "win_rate"):
        assert metrics[key] == 0.0
    assert metrics["profit_factor"] == 0.0 and metrics["trades"] == 0.0
    assert per_ticker(fills, aapl, START).empty


def test_only_winners_give_an_infinite_profit_factor_and_one_day_no_sharpe(
    aapl: pd.DataFrame, two_trips: pd.DataFrame
) -> None:
    winner = two_trips[two_trips["trade_id"] == "hand-1"]
    first_day = aapl[aapl["minute"] < "2026-03-13"]
    metrics = performance(equity_curve(winner, first_day, START), round_trips(winner), winner)
    assert metrics["profit_factor"] == math.inf
    assert metrics["win_rate"] == 1.0
    assert metrics["sharpe"] == 0.0 and metrics["sortino"] == 0.0  # one day: undefined
    assert metrics["cumulative_return"] > 0


def test_starting_equity_is_not_the_first_row_when_the_first_bar_trades(
    aapl: pd.DataFrame,
) -> None:
    opening = bar(aapl, TRADES[0][0], "09:30")
    fill = MODEL.entry_fill("buy", QTY, opening)
    assert fill is not None
    fills = conform(pd.DataFrame([row(fill, "t-1", "long")]), BACKTEST_FILL_COLUMNS)
    curve = equity_curve(fills, aapl, START)
    assert curve["equity"].iloc[0] < START  # slippage, commission and the 09:30 move
    metrics = performance(curve, round_trips(fills), fills)
    assert metrics["cumulative_return"] == pytest.approx(curve["equity"].iloc[-1] / START - 1)
    override = performance(curve, round_trips(fills), fills, starting_equity=2 * START)
    assert override["cumulative_return"] == pytest.approx(curve["equity"].iloc[-1] / 2 / START - 1)


@pytest.fixture(scope="module")
def baseline_runs() -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    bars = bundled_bars()
    bars = bars[bars["ticker"].isin(["SPY", "NVDA", "MSFT"]) & (bars["minute"] < "2026-03-20")]
    return run_baselines(bars, MODEL, START), bars


def test_performance_table_and_per_ticker_agree_with_the_equity_curve(
    baseline_runs: tuple[dict[str, pd.DataFrame], pd.DataFrame],
) -> None:
    runs, bars = baseline_runs
    table = performance_table(runs, bars, START, llm_cost_usd={"macd": 50.0})
    assert list(table["strategy"]) == list(runs)
    metrics = table.drop(columns="strategy")
    assert metrics.notna().all().all()
    for name, fills in runs.items():
        curve = equity_curve(fills, bars, START)
        got = table.set_index("strategy").loc[name]
        assert got["cumulative_return"] == pytest.approx(curve["equity"].iloc[-1] / START - 1)
        assert -1 < got["max_drawdown"] <= 0
        assert 0 <= got["win_rate"] <= 1
        tickers = per_ticker(fills, bars, START)
        # every baseline is flat at the end, so the tickers' P&L adds up to the equity change
        assert tickers["pnl"].sum() == pytest.approx(curve["equity"].iloc[-1] - START)
        assert tickers["return"].sum() == pytest.approx(got["cumulative_return"])
        assert tickers["trades"].sum() == got["trades"]
        assert tickers["commissions"].sum() == pytest.approx(got["commissions"])
    macd = table.set_index("strategy").loc["macd"]
    assert macd["net_return_after_llm"] == pytest.approx(macd["cumulative_return"] - 50.0 / START)


def test_chart_is_a_png_with_equity_and_drawdown_panels(
    baseline_runs: tuple[dict[str, pd.DataFrame], pd.DataFrame],
) -> None:
    runs, bars = baseline_runs
    curves = {name: equity_curve(fills, bars, START) for name, fills in runs.items()}
    figure = equity_figure(curves, "baselines")
    assert len(figure.axes) == 2
    for axes in figure.axes:  # one labelled line per strategy (separators are unlabelled)
        labels = [line.get_label() for line in axes.get_lines()]
        assert [label for label in labels if not label.startswith("_")] == list(curves)
    # the x axis is the trading-minute index: no room for nights, one tick per session
    x = figure.axes[0].get_lines()[0].get_xdata()
    assert list(x) == list(range(len(curves["buy_and_hold"])))
    assert len(figure.axes[1].get_xticks()) == bars["minute"].dt.date.nunique()
    png = equity_chart_png(curves, "baselines")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    text = markdown_image(png, "equity")
    prefix = "![equity](data:image/png;base64,"
    assert text.startswith(prefix) and text.endswith(")")
    assert base64.b64decode(text[len(prefix) : -1]) == png
