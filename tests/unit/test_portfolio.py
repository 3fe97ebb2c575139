"""Fills -> closed trades -> the risk manager's PortfolioState.

The prices are round illustrative numbers (100.00 -> 99.50 and the like), not market data: this
is pure bookkeeping arithmetic, and round numbers keep every expected pnl checkable by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from trading_assets.decision.portfolio import (
    ClosedTrade,
    FillEvent,
    closed_trades,
    portfolio_state,
    positions_from_fills,
)
from trading_assets.decision.risk import PortfolioState, Position, RiskLimits, circuit_breaker

TODAY = "2026-03-17"  # a Tuesday; New York is on EDT (UTC-4) since 2026-03-08
YESTERDAY = "2026-03-16"
EQUITY = 100_000.0


def at(hhmm: str, day: str = TODAY) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}")


def fill(
    side: str,
    qty: float,
    price: float,
    hhmm: str,
    symbol: str = "AAPL",
    *,
    day: str = TODAY,
    commission: float = 0.0,
    order_id: str = "",
) -> FillEvent:
    return FillEvent(
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        at=at(hhmm, day),
        commission=commission,
        order_id=order_id,
    )


def state(fills: list[FillEvent], as_of: datetime, **kwargs: object) -> PortfolioState:
    args: dict = {"equity": EQUITY, "cash": EQUITY, "positions": [], "entries_today": 0}
    return portfolio_state(**(args | kwargs), fills_today=fills, as_of=as_of)


def round_trip(symbol: str, open_at: str, close_at: str, exit_price: float) -> list[FillEvent]:
    """100 shares long from 100.00, out at exit_price: pnl = (exit_price - 100) x 100."""
    return [
        fill("buy", 100, 100.0, open_at, symbol),
        fill("sell", 100, exit_price, close_at, symbol),
    ]


# --- closed trades ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opening", "closing", "direction", "pnl"),
    [
        # long loss: 100 x (99.50 - 100.00)
        (("buy", 100, 100.00), ("sell", 100, 99.50), "long", -50.0),
        # long win: 100 x (101.00 - 100.00)
        (("buy", 100, 100.00), ("sell", 100, 101.00), "long", 100.0),
        # short win: 50 x (200.00 - 198.00)
        (("sell", 50, 200.00), ("buy", 50, 198.00), "short", 100.0),
        # short loss: 50 x (200.00 - 201.00)
        (("sell", 50, 200.00), ("buy", 50, 201.00), "short", -50.0),
    ],
)
def test_round_trip_pnl_long_and_short(
    opening: tuple, closing: tuple, direction: str, pnl: float
) -> None:
    (trade,) = closed_trades([fill(*opening, "10:00"), fill(*closing, "10:30")])
    assert trade.direction == direction
    assert trade.symbol == "AAPL"
    assert trade.qty == opening[1]
    assert (trade.entry_price, trade.exit_price) == (opening[2], closing[2])
    assert (trade.opened_at, trade.closed_at) == (at("10:00"), at("10:30"))
    assert trade.pnl == pytest.approx(pnl)
    assert trade.win is (pnl > 0)


def test_partial_closes_give_one_trade_per_closing_fill() -> None:
    trades = closed_trades(
        [
            fill("buy", 100, 100.00, "10:00"),
            fill("sell", 40, 101.00, "10:10"),  # +1.00 x 40
            fill("sell", 60, 99.00, "10:20"),  # -1.00 x 60
        ]
    )
    assert [(t.qty, t.entry_price, t.exit_price) for t in trades] == [
        (40, 100.0, 101.0),
        (60, 100.0, 99.0),
    ]
    assert [t.pnl for t in trades] == pytest.approx([40.0, -60.0])
    assert [t.closed_at for t in trades] == [at("10:10"), at("10:20")]
    assert all(t.opened_at == at("10:00") for t in trades)
    (rest,) = positions_from_fills(
        [fill("buy", 100, 100.00, "10:00"), fill("sell", 40, 101.00, "10:10")]
    )
    assert (rest.qty, rest.avg_price) == (60, 100.0)  # a partial close keeps the entry price


def test_adds_average_the_entry_price() -> None:
    # 100 @ 100.00 + 100 @ 102.00 -> 200 @ 101.00; out at 101.50 -> 200 x 0.50 = +100
    (trade,) = closed_trades(
        [
            fill("buy", 100, 100.00, "10:00"),
            fill("buy", 100, 102.00, "10:05"),
            fill("sell", 200, 101.50, "10:10"),
        ]
    )
    assert (trade.qty, trade.entry_price, trade.opened_at) == (200, 101.0, at("10:00"))
    assert trade.pnl == pytest.approx(100.0)


def test_flip_through_zero_closes_then_opens_the_other_side() -> None:
    fills = [
        fill("buy", 100, 100.00, "10:00"),
        fill("sell", 150, 102.00, "10:10"),  # closes 100 long (+200), opens 50 short at 102
        fill("buy", 50, 101.00, "10:20"),  # closes the short: 50 x (102 - 101) = +50
    ]
    long_leg, short_leg = closed_trades(fills)
    assert (long_leg.direction, long_leg.qty, long_leg.pnl) == ("long", 100, pytest.approx(200.0))
    assert (short_leg.direction, short_leg.qty, short_leg.pnl) == ("short", 50, pytest.approx(50.0))
    assert (short_leg.entry_price, short_leg.opened_at) == (102.0, at("10:10"))
    (short,) = positions_from_fills(fills[:2])
    assert (short.ticker, short.qty, short.avg_price) == ("AAPL", -50, 102.0)
    assert positions_from_fills(fills) == []


@pytest.mark.parametrize(
    ("fills", "pnls", "commissions"),
    [
        pytest.param(
            # 100 x 0.50 gross = 50, minus 1.00 to open and 1.00 to close
            [
                fill("buy", 100, 100.00, "10:00", commission=1.00),
                fill("sell", 100, 100.50, "10:10", commission=1.00),
            ],
            [48.0],
            [2.0],
            id="round-trip",
        ),
        pytest.param(
            # a gross win of 1.00 is a net loss of 1.00 after 2.00 of commission
            [
                fill("buy", 100, 100.00, "10:00", commission=1.00),
                fill("sell", 100, 100.01, "10:10", commission=1.00),
            ],
            [-1.0],
            [2.0],
            id="gross-win-net-loss",
        ),
        pytest.param(
            # the opening 1.00 is split 40/60; each closing fill pays its own 0.99
            [
                fill("buy", 100, 100.00, "10:00", commission=1.00),
                fill("sell", 40, 101.00, "10:10", commission=0.99),
                fill("sell", 60, 101.00, "10:20", commission=0.99),
            ],
            [40 - 0.40 - 0.99, 60 - 0.60 - 0.99],
            [1.39, 1.59],
            id="partial-closes",
        ),
        pytest.param(
            # the flip fill's 1.50 is split: 1.00 closes the long (100 of 150 shares), 0.50
            # opens the short and is charged when the short closes
            [
                fill("buy", 100, 100.00, "10:00", commission=1.00),
                fill("sell", 150, 102.00, "10:10", commission=1.50),
                fill("buy", 50, 101.00, "10:20", commission=0.99),
            ],
            [200 - 1.00 - 1.00, 50 - 0.50 - 0.99],
            [2.0, 1.49],
            id="flip",
        ),
    ],
)
def test_commissions_reduce_pnl(
    fills: list[FillEvent], pnls: list[float], commissions: list[float]
) -> None:
    trades = closed_trades(fills)
    assert [t.pnl for t in trades] == pytest.approx(pnls)
    assert [t.commission for t in trades] == pytest.approx(commissions)


def test_time_order_with_input_order_breaking_ties() -> None:
    # given out of order: sorted by time
    (trade,) = closed_trades([fill("sell", 10, 101.0, "10:10"), fill("buy", 10, 100.0, "10:00")])
    assert (trade.direction, trade.pnl) == ("long", pytest.approx(10.0))
    # equal times: the sell came first, so it opened a short the buy then closed
    (trade,) = closed_trades([fill("sell", 10, 101.0, "10:00"), fill("buy", 10, 100.0, "10:00")])
    assert (trade.direction, trade.pnl) == ("short", pytest.approx(10.0))


def test_trades_of_several_symbols_come_out_by_close_time() -> None:
    trades = closed_trades(
        [
            *round_trip("MSFT", "10:00", "10:30", 101.0),
            *round_trip("AAPL", "10:05", "10:20", 99.0),
        ]
    )
    assert [(t.symbol, t.closed_at) for t in trades] == [
        ("AAPL", at("10:20")),
        ("MSFT", at("10:30")),
    ]


def test_fill_event_validation_and_time_zone() -> None:
    utc = FillEvent(symbol="AAPL", side="BUY", qty=1, price=100, at="2026-03-17T14:40:00Z")
    assert (utc.side, utc.at) == ("buy", at("10:40"))  # naive New York
    for bad in ({"qty": 0}, {"price": -1.0}, {"side": "short"}, {"price": float("nan")}):
        with pytest.raises(ValidationError):
            FillEvent(
                **(
                    {"symbol": "AAPL", "side": "buy", "qty": 1, "price": 100, "at": at("10:00")}
                    | bad
                )
            )


# --- portfolio state and the circuit breaker -------------------------------------------------


def test_three_losses_today_trip_the_breaker_and_a_win_resets_the_run() -> None:
    losses = [
        *round_trip("AAPL", "10:00", "10:10", 99.50),  # -50
        *round_trip("MSFT", "10:15", "10:25", 99.50),  # -50
        *round_trip("NVDA", "10:30", "10:40", 99.50),  # -50
    ]
    s = state(losses, at("10:41"), entries_today=3)
    assert (s.consecutive_losses, s.last_loss_at, s.trades_today) == (3, at("10:40"), 3)
    assert s.realised_pnl_today == pytest.approx(-150.0)  # 0.15 %: only the streak trips

    why = circuit_breaker(s, RiskLimits(), at("10:45"))
    assert why is not None
    assert "3 consecutive losses (limit 3)" in why
    assert "realised loss" not in why
    assert "60-minute cool-down after the loss at 2026-03-17T10:40 runs until 2026-03-17T11:40" in (
        why
    )
    assert circuit_breaker(s, RiskLimits(), at("11:39")) is not None
    assert circuit_breaker(s, RiskLimits(), at("11:40")) is None  # cool-down over

    after_win = state([*losses, *round_trip("AAPL", "11:45", "11:50", 101.0)], at("11:51"))
    assert after_win.consecutive_losses == 0
    assert after_win.last_loss_at == at("10:40")  # the most recent loss, still
    assert after_win.realised_pnl_today == pytest.approx(-50.0)
    assert circuit_breaker(after_win, RiskLimits(), at("11:52")) is None


def test_a_win_from_a_position_opened_before_the_trip_does_not_end_the_cool_down() -> None:
    """As in the 2026-03-23 demo: three stops, then a take-profit on a position opened earlier
    lands inside the hour. The streak ends; the one-hour pause must not."""
    fills = [
        fill("buy", 100, 100.0, "09:40", "TSLA"),  # still open when the streak trips
        *round_trip("AAPL", "09:45", "10:00", 99.50),
        *round_trip("MSFT", "09:50", "10:01", 99.50),
        *round_trip("NVDA", "09:55", "10:02", 99.50),
        fill("sell", 100, 101.0, "10:20", "TSLA"),  # +100: a win inside the cool-down
    ]
    limits = RiskLimits()
    s = state(fills, at("10:35"), limits=limits)
    assert s.consecutive_losses == 0 and s.breaker_tripped_at == at("10:02")
    why = circuit_breaker(s, limits, at("10:35"))
    assert why is not None and "tripped by 3 consecutive losses" in why
    assert "cool-down after the trip at 2026-03-17T10:02 runs until 2026-03-17T11:02" in why
    assert circuit_breaker(s, limits, at("11:01")) is not None
    assert circuit_breaker(s, limits, at("11:02")) is None
    assert state(fills, at("10:35")).breaker_tripped_at is None  # without limits: not computed


def test_the_daily_loss_trip_is_timed_at_the_loss_that_crossed_the_limit() -> None:
    # 100 shares from 100.00 out at 89.00 and 91.00: -1,100 then -900 = -2,000 = 2 % of equity
    fills = [
        *round_trip("AAPL", "10:00", "10:10", 89.0),
        *round_trip("MSFT", "10:20", "10:30", 91.0),
        *round_trip("NVDA", "10:40", "10:50", 105.0),  # +500 afterwards
    ]
    s = state(fills, at("11:00"), limits=RiskLimits(), day_start_equity=EQUITY)
    assert s.breaker_tripped_at == at("10:30") and "daily loss 2,000.00" in s.breaker_cause
    assert circuit_breaker(s, RiskLimits(), at("11:00")) is not None  # cool-down to 11:30
    assert circuit_breaker(s, RiskLimits(), at("11:30")) is None


WIN, LOSS, FLAT = 101.0, 99.5, 100.0  # exit prices of a 100-share long from 100.00


@pytest.mark.parametrize(
    ("exits", "run"),
    [
        ([], 0),
        ([LOSS, LOSS, LOSS], 3),
        ([LOSS, LOSS, WIN], 0),
        ([WIN, LOSS, LOSS], 2),
        ([LOSS, LOSS, FLAT], 0),  # a breakeven is not a loss and ends the run
        ([LOSS, FLAT, LOSS], 1),
    ],
)
def test_consecutive_losses_is_the_run_at_the_end(exits: list[float], run: int) -> None:
    times = [("10:00", "10:05"), ("10:10", "10:15"), ("10:20", "10:25")]
    fills = [
        f for (o, c), x in zip(times, exits, strict=False) for f in round_trip("AAPL", o, c, x)
    ]
    assert state(fills, at("12:00")).consecutive_losses == run


def test_one_stop_filled_in_pieces_is_one_loss() -> None:
    pieces = [
        fill("buy", 300, 100.00, "10:00", order_id="entry-1"),
        fill("sell", 100, 99.50, "10:30", order_id="stop-1"),
        fill("sell", 100, 99.50, "10:30", order_id="stop-1"),
        fill("sell", 100, 99.49, "10:31", order_id="stop-1"),
    ]
    assert len(closed_trades(pieces)) == 3
    s = state(pieces, at("11:00"))
    assert (s.consecutive_losses, s.last_loss_at) == (1, at("10:31"))
    assert s.realised_pnl_today == pytest.approx(-50 - 50 - 51)
    # without order ids nothing says they were one order: three losses
    anonymous = [p.model_copy(update={"order_id": ""}) for p in pieces]
    assert state(anonymous, at("11:00")).consecutive_losses == 3


def test_losses_of_yesterday_do_not_count_today() -> None:
    fills = [
        fill("buy", 100, 100.0, "14:00", day=YESTERDAY),
        fill("sell", 100, 99.0, "14:10", day=YESTERDAY),  # -100 yesterday
        fill("buy", 100, 100.0, "15:00", day=YESTERDAY),
        fill("sell", 100, 99.0, "15:10", day=YESTERDAY),  # -100 yesterday
        *round_trip("MSFT", "10:00", "10:10", 99.5),  # -50 today
    ]
    s = state(fills, at("10:30"))
    assert (s.consecutive_losses, s.last_loss_at) == (1, at("10:10"))
    assert s.realised_pnl_today == pytest.approx(-50.0)
    assert circuit_breaker(s, RiskLimits(), at("10:30")) is None


def test_a_position_carried_overnight_counts_the_day_it_closes() -> None:
    fills = [
        fill("sell", 100, 100.0, "15:30", day=YESTERDAY),  # short into the close
        fill("buy", 100, 101.0, "09:31"),  # covered at a loss today: -100
    ]
    s = state(fills, at("09:45"))
    assert s.realised_pnl_today == pytest.approx(-100.0)
    assert (s.consecutive_losses, s.last_loss_at) == (1, at("09:31"))


def test_fills_after_as_of_are_ignored() -> None:
    fills = round_trip("AAPL", "10:00", "10:40", 99.5)
    before = state(fills, at("10:39"))
    assert (before.realised_pnl_today, before.consecutive_losses, before.last_loss_at) == (
        0.0,
        0,
        None,
    )
    # a fill at exactly as_of counts; a tz-aware as_of is the same instant in New York
    for as_of in (at("10:40"), datetime(2026, 3, 17, 14, 40, tzinfo=UTC)):
        s = state(fills, as_of)
        assert (s.realised_pnl_today, s.last_loss_at) == (pytest.approx(-50.0), at("10:40"))
    (open_long,) = positions_from_fills(fills, as_of=at("10:39"))
    assert open_long.qty == 100


@pytest.mark.parametrize(
    ("exit_price", "fires"),
    [
        (98.00, True),  # 1,000 x -2.00 = -2,000.00: 2.00 % of 100,000 -> the limit is reached
        (98.01, False),  # -1,990.00: 1.99 %
    ],
)
def test_daily_loss_limit_from_realised_pnl(exit_price: float, fires: bool) -> None:
    fills = [fill("buy", 1000, 100.00, "10:00"), fill("sell", 1000, exit_price, "10:30")]
    s = state(fills, at("10:31"), equity=98_500.0, day_start_equity=EQUITY)
    assert s.consecutive_losses == 1  # below the streak limit: only the daily loss can fire
    assert s.day_start_equity == EQUITY
    why = circuit_breaker(s, RiskLimits(), at("10:45"))
    if fires:
        assert why is not None
        assert "realised loss today 2,000.00 is 2.00% of day-start equity 100,000.00" in why
        assert "runs until 2026-03-17T11:30" in why
    else:
        assert why is None


def test_state_passes_the_callers_numbers_through() -> None:
    held = [Position(ticker="AAPL", qty=10, avg_price=100.0)]
    s = state([], at("10:00"), cash=5_000.0, positions=held, entries_today=4, kill_switch=True)
    assert (s.equity, s.cash, s.positions, s.trades_today, s.kill_switch) == (
        EQUITY,
        5_000.0,
        held,
        4,
        True,
    )
    assert (s.realised_pnl_today, s.consecutive_losses, s.last_loss_at) == (0.0, 0, None)
    assert s.day_start_equity is None


# --- positions -------------------------------------------------------------------------------


def test_positions_from_fills() -> None:
    fills = [
        fill("buy", 100, 100.00, "10:00", "AAPL"),
        fill("buy", 50, 103.00, "10:05", "AAPL"),  # 150 @ (10,000 + 5,150) / 150 = 101.00
        fill("sell", 20, 400.00, "10:10", "MSFT"),  # short 20
        *round_trip("NVDA", "10:15", "10:20", 101.0),  # flat again: not a position
    ]
    aapl, msft = positions_from_fills(fills, {"AAPL": 102.0, "MSFT": float("nan")})
    assert (aapl.ticker, aapl.qty, aapl.avg_price, aapl.mark) == ("AAPL", 150, 101.0, 102.0)
    assert aapl.value == pytest.approx(150 * 102.0)
    assert (msft.ticker, msft.qty, msft.avg_price, msft.mark) == ("MSFT", -20, 400.0, None)
    assert msft.value == pytest.approx(20 * 400.0)  # no usable mark: the average price
    assert [p.ticker for p in positions_from_fills(fills)] == ["AAPL", "MSFT"]
    assert positions_from_fills([]) == []


def test_positions_from_fills_refuses_a_fractional_share() -> None:
    with pytest.raises(ValueError, match="whole shares"):
        positions_from_fills([fill("buy", 10.5, 100.0, "10:00")])
    # fractional fills that add up to whole shares are fine
    (p,) = positions_from_fills(
        [fill("buy", 0.5, 100.0, "10:00"), fill("buy", 0.5, 100.0, "10:01")]
    )
    assert p.qty == 1


def test_closed_trade_win_is_strictly_positive() -> None:
    base = {
        "symbol": "AAPL",
        "direction": "long",
        "qty": 1,
        "entry_price": 100.0,
        "exit_price": 100.0,
        "opened_at": at("10:00"),
        "closed_at": at("10:01"),
    }
    assert ClosedTrade(**base, pnl=0.0).win is False
    assert ClosedTrade(**base, pnl=0.01).win is True
