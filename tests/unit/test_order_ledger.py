"""The broker_orders ledger rows built from the broker's orders, and the book rebuilt from them.

The orders are `resources.broker.OrderState` values as `BrokerClient` returns them (UTC times,
bracket legs nested). Prices are round illustrative numbers (entry 100.00, take-profit 101.00,
stop 99.50 and the like), not market data: this is bookkeeping arithmetic, and round numbers
keep every P&L checkable by hand. 2026-03-17 is a Tuesday on EDT (New York = UTC-4).
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from resources.broker import OrderState
from trading_assets.assets.decision import read_ledger
from trading_assets.decision.sources import broker_fills, entries_sent, state_from_ledger
from trading_assets.execution.ledger import (
    FINAL_STATES,
    LEDGER_COLUMNS,
    SENT_STATES,
    ledger_frame,
    naive_ny,
    sent_row,
    unsent_row,
)

DAY = "2026-03-17"
EQUITY = 100_000.0


def utc(hhmm: str, day: str = DAY) -> pd.Timestamp:
    """A New York wall-clock time as the broker reports it (tz-aware UTC)."""
    return pd.Timestamp(f"{day} {hhmm}", tz="America/New_York").tz_convert("UTC")


def ny(hhmm: str, day: str = DAY) -> pd.Timestamp:
    return pd.Timestamp(f"{day} {hhmm}")


def signal(
    ticker: str = "AAPL",
    action: str = "BUY",
    qty: int = 10,
    entry: float = 100.0,
    minute: str = "10:30",
    day: str = DAY,
) -> dict:
    """A trade_signals row (the columns the ledger reads); stop/target 0.5 % / 1 % away."""
    sign = 1 if action == "BUY" else -1
    return {
        "minute": ny(minute, day),
        "signal_id": f"sig-{ticker.lower()}-{day}-{minute}",
        "ticker": ticker,
        "action": action,
        "proposed_action": action,
        "qty": qty,
        "status": "approved",
        "entry": entry,
        "stop": round(entry * (1 - sign * 0.005), 2),
        "take_profit": round(entry * (1 + sign * 0.01), 2),
        "reasons": "[]",
    }


def order(
    sig: dict,
    status: str = "accepted",
    *,
    fill: float | None = None,
    filled_qty: float | None = None,
    at: str | None = None,
    legs: tuple[OrderState, ...] = (),
    day: str = DAY,
) -> OrderState:
    """The bracket entry the broker holds for `sig` (submitted a minute after its bar)."""
    submitted = sig["minute"] + pd.Timedelta(minutes=1, seconds=2)
    return OrderState(
        id=f"broker-{sig['signal_id']}",
        client_order_id=sig["signal_id"],
        symbol=sig["ticker"],
        side="buy" if sig["proposed_action"] == "BUY" else "sell",
        qty=float(sig["qty"]),
        status=status,
        type="market",
        order_class="bracket",
        filled_qty=float(filled_qty if filled_qty is not None else (sig["qty"] if fill else 0)),
        filled_avg_price=fill,
        submitted_at=submitted.tz_localize("America/New_York").tz_convert("UTC"),
        filled_at=utc(at, day) if at else None,
        limit_price=None,
        stop_price=None,
        legs=legs,
    )


def legs(
    sig: dict,
    filled: str | None = None,
    *,
    fill: float | None = None,
    at: str | None = None,
    stop_type: str = "stop",
    day: str = DAY,
) -> tuple[OrderState, OrderState]:
    """The bracket's take-profit (limit) and stop legs; `filled` names the one that filled."""
    exit_side = "sell" if sig["proposed_action"] == "BUY" else "buy"
    working = "new" if filled is None else "canceled"

    def leg(kind: str, type_: str, limit: float | None, stop: float | None) -> OrderState:
        done = filled == kind
        return OrderState(
            id=f"{sig['signal_id']}-{kind}",
            client_order_id=f"leg-{kind}-{sig['signal_id']}",
            symbol=sig["ticker"],
            side=exit_side,
            qty=float(sig["qty"]),
            status="filled" if done else working,
            type=type_,
            order_class="bracket",
            filled_qty=float(sig["qty"]) if done else 0.0,
            filled_avg_price=fill if done else None,
            submitted_at=None,
            filled_at=utc(at, day) if done and at else None,
            limit_price=limit,
            stop_price=stop,
        )

    stop_limit = sig["stop"] if stop_type == "stop_limit" else None
    return (
        leg("take_profit", "limit", sig["take_profit"], None),
        leg("stop", stop_type, stop_limit, sig["stop"]),
    )


def flatten(
    symbol: str, side: str, fill: float, at: str, client_order_id: str = "close-all-1"
) -> OrderState:
    """A market order that closes a position (close_all_positions / the broker's own close)."""
    return OrderState(
        id=f"flat-{symbol}-{at}",
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        qty=10.0,
        status="filled",
        type="market",
        order_class="simple",
        filled_qty=10.0,
        filled_avg_price=fill,
        submitted_at=utc(at) - pd.Timedelta(seconds=1),
        filled_at=utc(at),
        limit_price=None,
        stop_price=None,
    )


NOW = utc("15:58")


# --- sent_row: the state of a signal's order ---------------------------------------------------


@pytest.mark.parametrize(
    "status",
    ["accepted", "new", "pending_new", "held", "accepted_for_bidding", "pending_replace"],
)
def test_an_accepted_unfilled_entry_is_submitted(status: str) -> None:
    sig = signal()
    row = sent_row(sig, order(sig, status), "paper", NOW, attempts=1)
    assert (row["state"], row["reason"]) == ("submitted", "accepted; waiting for the next bar")
    assert row["broker_order_id"] == f"broker-{sig['signal_id']}" and row["attempts"] == 1
    assert row["submitted_at"] == ny("10:31:02")  # UTC from the broker, New York in the ledger
    assert row["filled_qty"] == 0 and math.isnan(row["entry_price"])
    assert pd.isna(row["entry_filled_at"])
    assert row["recorded_at"] == ny("15:58")


def test_an_unknown_broker_status_stays_submitted_and_is_named() -> None:
    sig = signal()
    row = sent_row(sig, order(sig, "calculated"), "paper", NOW)
    assert (row["state"], row["reason"]) == ("submitted", "broker status calculated")


@pytest.mark.parametrize("status", ["canceled", "expired", "rejected"])
def test_an_entry_that_never_filled_ends_in_the_brokers_state(status: str) -> None:
    sig = signal()
    row = sent_row(sig, order(sig, status), "paper", NOW)
    assert row["state"] == status and row["reason"] == f"entry {status} by the broker"
    assert row["filled_qty"] == 0 and "exit_reason" not in row


def test_a_filled_entry_with_working_legs_is_open() -> None:
    sig = signal()
    entry = order(sig, "filled", fill=100.02, at="10:32", legs=legs(sig))
    row = sent_row(sig, entry, "paper", NOW, others=[entry])
    assert (row["state"], row["reason"]) == ("open", "entry filled; bracket legs working")
    assert (row["filled_qty"], row["entry_price"]) == (10.0, 100.02)
    assert row["entry_filled_at"] == ny("10:32")
    assert "exit_price" not in row and "realised_pnl" not in row


def test_a_partly_filled_entry_is_an_open_position() -> None:
    sig = signal()
    entry = order(sig, "partially_filled", fill=100.0, filled_qty=4, at="10:32", legs=legs(sig))
    row = sent_row(sig, entry, "paper", NOW)
    assert (row["state"], row["filled_qty"]) == ("open", 4.0)


@pytest.mark.parametrize(
    ("action", "entry", "leg", "stop_type", "exit_price", "pnl"),
    [
        # long 10 from 100.00, out at the target 101.00: +10.00
        ("BUY", 100.0, "take_profit", "stop", 101.0, 10.0),
        # long 10 from 100.00, stopped at 99.50: -5.00
        ("BUY", 100.0, "stop", "stop", 99.5, -5.0),
        # the stop as a stop-limit order is still the stop
        ("BUY", 100.0, "stop", "stop_limit", 99.5, -5.0),
        # short 10 from 200.00, covered at the target 198.00: +20.00
        ("SELL", 200.0, "take_profit", "stop", 198.0, 20.0),
        # short 10 from 200.00, stopped at 201.00: -10.00
        ("SELL", 200.0, "stop", "stop", 201.0, -10.0),
    ],
    ids=["long-target", "long-stop", "long-stop-limit", "short-target", "short-stop"],
)
def test_a_filled_bracket_leg_closes_the_row_with_its_pnl(
    action: str, entry: float, leg: str, stop_type: str, exit_price: float, pnl: float
) -> None:
    sig = signal(action=action, entry=entry)
    exits = legs(sig, leg, fill=exit_price, at="10:47", stop_type=stop_type)
    row = sent_row(sig, order(sig, "filled", fill=entry, at="10:32", legs=exits), "paper", NOW)
    assert (row["state"], row["exit_reason"]) == ("closed", leg)
    assert (row["exit_price"], row["exit_filled_at"]) == (exit_price, ny("10:47"))
    assert row["realised_pnl"] == pytest.approx(pnl)
    assert row["reason"] == f"closed by {leg.replace('_', '-')} at {exit_price:.2f}"
    assert row["side"] == action.lower()


@pytest.mark.parametrize(
    ("action", "entry", "close_side", "close_price", "pnl"),
    [
        ("BUY", 100.0, "sell", 100.4, 4.0),  # long 10: (100.40 - 100.00) x 10
        ("SELL", 200.0, "buy", 200.7, -7.0),  # short 10: (200.00 - 200.70) x 10
    ],
    ids=["long", "short"],
)
def test_the_close_of_day_flatten_closes_the_row(
    action: str, entry: float, close_side: str, close_price: float, pnl: float
) -> None:
    sig = signal(action=action, entry=entry)
    mine = order(sig, "filled", fill=entry, at="10:32", legs=legs(sig))
    canceled = replace(mine, legs=tuple(replace(leg, status="canceled") for leg in mine.legs))
    out = flatten("AAPL", close_side, close_price, "15:55")
    row = sent_row(sig, canceled, "paper", NOW, others=[canceled, out])
    assert (row["state"], row["exit_reason"]) == ("closed", "flatten")
    assert (row["exit_price"], row["exit_filled_at"]) == (close_price, ny("15:55"))
    assert row["realised_pnl"] == pytest.approx(pnl)


@pytest.mark.parametrize(
    "other",
    [
        flatten("AAPL", "sell", 100.4, "15:55", client_order_id="sig-aapl-short-entry"),
        flatten("AAPL", "buy", 100.4, "15:55"),  # same side: adds, does not close
        flatten("MSFT", "sell", 380.0, "15:55"),  # another symbol
        flatten("AAPL", "sell", 99.0, "10:15"),  # before the entry filled
        replace(flatten("AAPL", "sell", 100.4, "15:55"), status="new", filled_at=None),
    ],
    ids=["another-signals-entry", "same-side", "other-symbol", "before-the-entry", "unfilled"],
)
def test_other_orders_are_not_mistaken_for_a_flatten(other: OrderState) -> None:
    sig = signal()
    mine = order(sig, "filled", fill=100.0, at="10:32", legs=legs(sig))
    row = sent_row(sig, mine, "paper", NOW, others=[mine, other])
    assert row["state"] == "open"


def test_a_note_replaces_the_default_reason() -> None:
    sig = signal()
    note = "already at the broker (found by its id)"
    row = sent_row(sig, order(sig), "paper", NOW, note=note)
    assert (row["state"], row["reason"]) == ("submitted", note)


def test_a_rejected_sells_ledger_row_keeps_the_proposed_side() -> None:
    sig = signal(action="SELL") | {"action": "HOLD", "qty": 0, "status": "rejected"}
    row = unsent_row(sig, "not_sent", "risk manager: kill switch is on", "paper", NOW)
    assert (row["side"], row["qty"], row["signal_status"]) == ("sell", 0, "rejected")
    assert row["state"] in FINAL_STATES and row["state"] not in SENT_STATES


# --- ledger_frame and naive_ny -----------------------------------------------------------------


def test_ledger_frame_has_the_contract_dtypes_for_every_kind_of_row() -> None:
    a, b, c = signal("AAPL"), signal("MSFT", entry=380.0), signal("TSLA", "SELL", entry=250.0)
    rows = [
        unsent_row(a, "skipped", "market closed", "paper", NOW),
        sent_row(b, order(b), "paper", NOW, attempts=1),
        sent_row(
            c,
            order(
                c,
                "filled",
                fill=250.0,
                at="10:32",
                legs=legs(c, "take_profit", fill=247.5, at="11:02"),
            ),
            "paper",
            NOW,
        ),
    ]
    frame = ledger_frame(rows)
    assert dict(frame.dtypes.astype(str)) == LEDGER_COLUMNS
    assert list(frame["state"]) == ["skipped", "submitted", "closed"]
    assert list(frame["exit_reason"]) == ["", "", "take_profit"]  # never null
    assert frame["broker_order_id"].iloc[0] == "" and frame["attempts"].iloc[0] == 0
    assert pd.isna(frame["exit_filled_at"].iloc[1]) and math.isnan(frame["realised_pnl"].iloc[1])
    assert frame["realised_pnl"].iloc[2] == pytest.approx(25.0)  # short 10: (250 - 247.5) x 10
    assert dict(ledger_frame([]).dtypes.astype(str)) == LEDGER_COLUMNS


@pytest.mark.parametrize(
    ("stamp", "wall_clock"),
    [
        (pd.Timestamp("2026-03-17 14:31:00", tz="UTC"), "2026-03-17 10:31:00"),  # EDT, UTC-4
        (pd.Timestamp("2026-03-06 14:31:00", tz="UTC"), "2026-03-06 09:31:00"),  # EST, UTC-5
        (pd.Timestamp("2026-03-17 00:30:00", tz="UTC"), "2026-03-16 20:30:00"),  # the day before
        (datetime.fromisoformat("2026-03-17T20:00:00+00:00"), "2026-03-17 16:00:00"),
        ("2026-03-17T14:31:00Z", "2026-03-17 10:31:00"),
        (pd.Timestamp("2026-03-17 10:31:00"), "2026-03-17 10:31:00"),  # naive: already New York
    ],
)
def test_naive_ny_is_new_york_wall_clock(stamp: object, wall_clock: str) -> None:
    out = naive_ny(stamp)
    assert out == pd.Timestamp(wall_clock) and out.tzinfo is None


@pytest.mark.parametrize("missing", [None, pd.NaT, float("nan")])
def test_naive_ny_keeps_a_missing_time_missing(missing: object) -> None:
    assert pd.isna(naive_ny(missing))


# --- broker fills and entries ------------------------------------------------------------------


def test_broker_fills_are_one_event_per_filled_order_or_leg() -> None:
    a, b, c = signal("AAPL"), signal("MSFT", entry=380.0), signal("TSLA", "SELL", entry=250.0)
    orders = [
        order(a, "filled", fill=100.0, at="10:32", legs=legs(a, "stop", fill=99.5, at="10:40")),
        order(b),  # not filled yet: no fill
        order(c, "canceled", fill=250.0, filled_qty=3, at="10:33"),  # a partial fill counts
        flatten("AAPL", "sell", 101.0, "15:55"),
    ]
    fills = broker_fills(orders)
    got = [(f.symbol, f.side, f.qty, f.price, f.at) for f in fills]
    assert got == [
        ("AAPL", "buy", 10.0, 100.0, datetime(2026, 3, 17, 10, 32)),
        ("TSLA", "sell", 3.0, 250.0, datetime(2026, 3, 17, 10, 33)),
        ("AAPL", "sell", 10.0, 99.5, datetime(2026, 3, 17, 10, 40)),
        ("AAPL", "sell", 10.0, 101.0, datetime(2026, 3, 17, 15, 55)),
    ]
    assert fills[0].order_id == f"broker-{a['signal_id']}"


def test_entries_sent_counts_our_accepted_entries_only() -> None:
    a, b, c, d = (signal(t) for t in ("AAPL", "MSFT", "TSLA", "NVDA"))
    orders = [
        order(a, "filled", fill=100.0, at="10:32", legs=legs(a, "stop", fill=99.5, at="10:40")),
        order(b),  # accepted
        order(c, "canceled"),  # sent, then canceled: still an entry today
        order(d, "rejected"),  # the broker refused it: not a trade
        flatten("AAPL", "sell", 101.0, "15:55"),  # an exit, not an entry
    ]
    assert entries_sent(orders) == 3


# --- the book rebuilt from the ledger ----------------------------------------------------------

YESTERDAY = "2026-03-16"


def closed_row(sig: dict, exit_leg: str, exit_price: float, opened: str, closed: str, day: str):
    exits = legs(sig, exit_leg, fill=exit_price, at=closed, day=day)
    entry = order(sig, "filled", fill=sig["entry"], at=opened, legs=exits, day=day)
    return sent_row(sig, entry, "paper", NOW)


@pytest.fixture(scope="module")
def ledger() -> pd.DataFrame:
    """A day of ledger rows (and one from the day before), as a backfill would read them."""
    old = signal("META", entry=600.0, minute="15:00", day=YESTERDAY)
    a = signal("AAPL", minute="09:50")
    b = signal("MSFT", qty=5, entry=200.0, minute="10:10")
    c = signal("TSLA", "SELL", qty=4, entry=150.0, minute="10:30")
    d = signal("NVDA", qty=8, entry=120.0, minute="10:58")
    e = signal("AMZN", qty=6, entry=210.0, minute="10:20")
    f = signal("GOOG", minute="10:25")
    tsla = order(
        c, "filled", fill=150.0, at="10:32", legs=legs(c, "take_profit", fill=148.5, at="11:20")
    )
    rows = [
        # yesterday: long 10 META 600 -> 602, +20.00
        closed_row(old, "take_profit", 602.0, "15:02", "15:30", YESTERDAY),
        # today: long 10 AAPL 100 -> 99.50 at 10:05, -5.00
        closed_row(a, "stop", 99.5, "09:52", "10:05", DAY),
        # today: long 5 MSFT 200 -> 199 at 10:20, -5.00
        closed_row(b, "stop", 199.0, "10:12", "10:20", DAY),
        # today: short 4 TSLA at 150 from 10:32, covered at 148.50 at 11:20 (+6.00)
        sent_row(c, tsla, "paper", NOW),
        # today: long 8 NVDA at 120, filled at 11:00 (after the 10:45 decision)
        sent_row(d, order(d, "filled", fill=120.0, at="11:00", legs=legs(d)), "paper", NOW),
        # skipped at send time and refused by the broker: neither is a trade
        unsent_row(e, "skipped", "spread 1.20% is wider than 1.00%", "paper", NOW),
        sent_row(f, order(f, "rejected"), "paper", NOW),
    ]
    return ledger_frame(rows)


def test_the_book_as_of_a_minute(ledger: pd.DataFrame) -> None:
    state = state_from_ledger(ledger, datetime(2026, 3, 17, 10, 45), EQUITY, kill_switch=False)
    # yesterday's +20 is in the starting equity, not in today's P&L
    assert state.day_start_equity == pytest.approx(EQUITY + 20.0)
    assert state.realised_pnl_today == pytest.approx(-10.0)  # AAPL -5, MSFT -5
    assert state.equity == pytest.approx(EQUITY + 20.0 - 10.0)
    assert state.consecutive_losses == 2
    assert state.last_loss_at == datetime(2026, 3, 17, 10, 20)
    # short TSLA open; NVDA's fill at 11:00 is not seen at 10:45
    assert [(p.ticker, p.qty, p.avg_price) for p in state.positions] == [("TSLA", -4, 150.0)]
    assert state.cash == pytest.approx(EQUITY + 10.0 + 4 * 150.0)  # short proceeds held as cash
    # entries today before the 10:44 decision: AAPL, MSFT, TSLA (not skipped, not refused)
    assert state.trades_today == 3
    assert state.kill_switch is False


def test_later_fills_appear_when_the_book_is_rebuilt_later(ledger: pd.DataFrame) -> None:
    state = state_from_ledger(ledger, datetime(2026, 3, 17, 11, 30), EQUITY, kill_switch=True)
    assert state.realised_pnl_today == pytest.approx(-10.0 + 6.0)  # the TSLA cover won
    assert state.consecutive_losses == 0  # a win ends the run of losses
    assert state.last_loss_at == datetime(2026, 3, 17, 10, 20)
    assert [(p.ticker, p.qty) for p in state.positions] == [("NVDA", 8)]
    assert state.trades_today == 4 and state.kill_switch is True


def test_a_fill_at_the_decision_instant_counts_one_a_second_later_does_not(
    ledger: pd.DataFrame,
) -> None:
    at_fill = state_from_ledger(ledger, datetime(2026, 3, 17, 11, 0), EQUITY, False)
    before = state_from_ledger(ledger, datetime(2026, 3, 17, 10, 59, 59), EQUITY, False)
    assert "NVDA" in {p.ticker for p in at_fill.positions}
    assert "NVDA" not in {p.ticker for p in before.positions}


def test_a_position_from_yesterday_closed_today_counts_today() -> None:
    sig = signal("AAPL", minute="15:40", day=YESTERDAY)
    exits = legs(sig, "stop", fill=99.0, at="09:31")  # stopped at today's open: -10.00
    entry = order(sig, "filled", fill=100.0, at="15:42", legs=exits, day=YESTERDAY)
    ledger = ledger_frame([sent_row(sig, entry, "paper", NOW)])
    state = state_from_ledger(ledger, datetime(2026, 3, 17, 9, 45), EQUITY, False)
    assert state.realised_pnl_today == pytest.approx(-10.0)
    assert state.day_start_equity == EQUITY and state.consecutive_losses == 1
    assert state.positions == [] and state.trades_today == 0  # yesterday's entry


def test_the_first_ledger_decision_on_a_new_warehouse_starts_flat(tmp_path: Path) -> None:
    """Before the first execution there is no broker_orders table: the book is the starting
    equity, not a crash."""
    warehouse = DuckDBResource(database=str(tmp_path / "warehouse.duckdb"))
    empty = read_ledger(warehouse, pd.Timestamp("2026-03-10"), pd.Timestamp("2026-03-17 10:30"))
    for frame in (empty, ledger_frame([])):
        state = state_from_ledger(frame, datetime(2026, 3, 17, 10, 31), EQUITY, False)
        assert (state.equity, state.cash, state.day_start_equity) == (EQUITY, EQUITY, EQUITY)
        assert state.positions == [] and state.trades_today == 0
        assert (state.realised_pnl_today, state.consecutive_losses) == (0.0, 0)
