"""The README's main command: replay one bundled real session as if live, on the defaults.

Starts the embedded paper broker (its clock at the session's open) and the real
`dagster-daemon`, then runs `trading_assets.replay`: research, a decision per minute, the
signal sensor launching `execute_signals`, bracket orders at the paper broker, the close-out and
the final ledger. Ends with what the team decided, what the broker did and what it earned, and
where to look in the UI. Rules analysts, bundled data, no keys.
"""

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

from resources.duckdb_locks import connect
from resources.paper_broker import BrokerState
from trading_assets.event_writes import apply_event_writes
from trading_assets.instance import project_home
from trading_assets.partitions import key_minute, session_bounds

DEFAULT_SESSION = "2026-03-23"
INITIAL_CASH = 100_000.0


def marked_pnl(
    cash: float, positions: list[dict], last_close: dict[str, float], initial: float = INITIAL_CASH
) -> float:
    """Net P&L with open positions (signed quantities) at their last close: a window that ends
    before the session's close leaves positions open, and they count marked, not as a missing
    number (a position without a bar counts at its entry price)."""
    held = sum(p["qty"] * last_close.get(p["symbol"], p["avg_entry_price"]) for p in positions)
    return cash + held - initial


def _print_summary(warehouse: Path, first: str, last: str, books: BrokerState) -> None:
    lo, hi = key_minute(first), key_minute(last)
    with connect(warehouse, read_only=True) as conn:
        signals = conn.execute(
            "SELECT * FROM trading.trade_signals WHERE minute BETWEEN ? AND ?", [lo, hi]
        ).df()
        ledger = conn.execute(
            "SELECT * FROM trading.broker_orders WHERE minute BETWEEN ? AND ?", [lo, hi]
        ).df()
        verdicts = conn.execute(
            "SELECT action, count(*) FROM trading.debate WHERE debated AND minute BETWEEN ? AND ?"
            " GROUP BY action ORDER BY action",
            [lo, hi],
        ).fetchall()
        last_close = dict(
            conn.execute(
                "SELECT ticker, arg_max(close, minute) FROM trading.bars "
                "WHERE minute BETWEEN ? AND ? GROUP BY ticker",
                [lo, hi],
            ).fetchall()
        )
    orders = sum(1 for o in books.orders() if o["client_order_id"].startswith("sig-"))
    fills = collections.Counter(f["reason"] for f in books.fills()).items()
    commission = sum(f["commission"] for f in books.fills())
    positions = books.positions()
    cash, open_positions = books.cash, len(positions)
    print("\ndebate verdicts: " + ", ".join(f"{a} {n}" for a, n in verdicts))
    print(
        f"trade signals:   {len(signals)} proposals -> "
        + ", ".join(f"{k} {v}" for k, v in signals["status"].value_counts().items())
    )
    rejected = signals[signals["status"] == "rejected"]
    if len(rejected):
        first_reason = json.loads(rejected.iloc[0]["reasons"])[0]
        print(f"  e.g. rejected {rejected.iloc[0]['ticker']}: {first_reason[:160]}")
    states = ledger["state"].value_counts().to_dict() if len(ledger) else {}
    print(f"broker_orders:   {len(ledger)} ledger rows: " + ", ".join(
        f"{k} {v}" for k, v in states.items()))  # fmt: skip
    by_reason = ", ".join(f"{r} {n}" for r, n in fills)
    print(f"paper broker:    {orders} bracket orders, fills by reason: {by_reason}; "
          f"{open_positions} positions open")  # fmt: skip
    pnl = marked_pnl(cash, positions, last_close)
    gross = float(ledger["realised_pnl"].sum()) if len(ledger) else 0.0
    how = f"{open_positions} positions marked at {hi:%H:%M}'s close, " if open_positions else ""
    print(f"P&L:             {pnl:+,.2f} USD net ({how}ledger gross {gross:+,.2f}, commissions "
          f"{commission:,.2f}) on {INITIAL_CASH:,.0f}")  # fmt: skip
    closed = ledger[ledger["state"] == "closed"]
    for row in closed.head(5).itertuples():
        print(f"  {row.minute:%H:%M} {row.side:<4} {row.qty:>4} {row.ticker:<5} in "
              f"{row.entry_price:.2f} out {row.exit_price:.2f} ({row.exit_reason}) "
              f"{row.realised_pnl:+.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--session", default=DEFAULT_SESSION, help="YYYY-MM-DD (%(default)s)")
    parser.add_argument("--from", dest="first", default=None, help="HH:MM (session open)")
    parser.add_argument("--to", dest="last", default=None, help="HH:MM (last bar, 15:59)")
    parser.add_argument(
        "--intraday-window",
        default=None,
        help="HH:MM-HH:MM: run the full intraday_job per minute there (the schedule's path)",
    )
    parser.add_argument(
        "--backtest",
        default="2026-03-12|09:30...2026-03-27|15:59",
        help="partition range to backtest after the replay, or 'none' (%(default)s)",
    )
    args = parser.parse_args(argv)
    # DAGSTER_HOME (./.dagster_home): its embedded PostgreSQL runs until the demo ends
    with project_home() as home:
        return _demo(args, home)


def _demo(args: argparse.Namespace, home: Path) -> int:
    apply_event_writes()  # before the daemon starts: it and its run workers inherit them
    from resources.paper_broker import PaperBroker
    from resources.warehouse import data_dir, table_exists, warehouse_path

    bounds = session_bounds(args.session)
    if bounds is None:
        print(f"{args.session} is not an NYSE session", file=sys.stderr)
        return 2
    broker_db = data_dir() / "paper_broker.sqlite"
    for stale in (broker_db, *broker_db.parent.glob(broker_db.name + "-*")):
        stale.unlink(missing_ok=True)  # a replay starts with a fresh paper account
    opened = bounds[0].tz_localize("America/New_York").tz_convert("UTC")
    broker = PaperBroker(broker_db, start_time=opened, initial_cash=INITIAL_CASH).start()
    os.environ |= {"TRADING_BROKER_MODE": "embedded", "TRADING_BROKER_URL": broker.url}
    warehouse = warehouse_path()
    if warehouse.exists():  # the old ledger belongs to an old paper account
        with connect(warehouse) as conn:
            if table_exists(conn, "broker_orders"):
                conn.execute(
                    "DELETE FROM trading.broker_orders WHERE minute >= ?::DATE "
                    "AND minute < ?::DATE + 1",
                    [args.session, args.session],
                )
    from trading_assets.replay import replay, summarize

    window = tuple(args.intraday_window.split("-")) if args.intraday_window else None
    started = time.perf_counter()
    try:
        result = replay(
            args.session,
            set_clock=broker.set_clock,
            first=args.first,
            last=args.last,
            intraday_window=window,  # type: ignore[arg-type]
        )
    finally:
        broker.stop()
    print(f"\nreplayed {result.first} .. {result.last} in {time.perf_counter() - started:.0f} s "
          f"(research {result.research_s:.0f} s; {result.execute_runs} execute_signals runs "
          "launched by the daemon's trade_signal_sensor)")  # fmt: skip
    books = BrokerState(broker_db, initial_cash=INITIAL_CASH, start_time=opened)  # reopened
    try:
        _print_summary(warehouse, result.first, result.last, books)
    finally:
        books.close()
    figures = summarize(result.stages)
    if figures:
        print("latency, minute close -> order at the broker (median / max, s):")
        for stage in ("signals_s", "sensor_s", "launch_s", "execute_s", "to_order_s"):
            if f"{stage}_median" in figures:
                print(f"  {stage[:-2]:<10} {figures[f'{stage}_median']:6.1f} / "
                      f"{figures[f'{stage}_max']:6.1f}")  # fmt: skip
    if args.backtest != "none":
        from dagster import DagsterInstance

        from trading_assets.backfill import print_table, run_backtest

        first_key, last_key = args.backtest.split("...")
        print()
        with DagsterInstance.get() as instance:
            backtest = run_backtest(instance, first_key, last_key)
        print_table(backtest)
        print(f"(backtest run {backtest.backtest_s:.0f} s, report {backtest.report_s:.0f} s; "
              f"chart: {data_dir() / 'backtest' / 'equity_drawdown.png'})")  # fmt: skip
    print(f"\ninstance: {home}   warehouse: {warehouse}   paper broker: {broker_db}")
    print("UI: make ui, then http://127.0.0.1:3000 -> Assets (Global asset lineage: bars ..")
    print("    broker_orders, backtest_performance with its chart), Runs (execute_signals")
    print("    launched by trade_signal_sensor, backtest_job), Automation.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
