"""Load: a replayed session at 10x with 50 tickers through the real daemon on Postgres.

    .venv/bin/python benchmarks/load_session.py [--tickers 50] [--speed 10] \
        [--from 09:30 --to 10:29] [--session 2026-03-23] [--portfolio-source ledger]

Throw-away everything: a Postgres database for the instance (dagster.yaml.example: the queued
run coordinator), a warehouse, a paper broker (in this process) and a replay folder with the
bundled real bars replicated under new symbols up to `--tickers` (benchmarks/scale.py). After an
in-process warm-up (the previous session's ingest: the indicators' history), every 60/speed s
the driver moves the broker's clock to the next minute's close and submits the run request
`intraday_schedule` makes for it to the run queue; the real `dagster-daemon` launches each run
(the full `intraday_job`, ingest .. trade_signals) in its own process, and its sensor launches
`execute_signals` for every minute with actionable signals (trading_assets/load.py). Then it
waits for the queue to drain and prints runs requested / succeeded / failed / lost, execute runs
expected / launched / succeeded, broker orders vs ledger rows, lock conflicts handled vs
unhandled (every run's event log and the daemon log), the queue's backlog, run durations, wall.

At 10x the market-time guards shrink tenfold in wall time: `trade_signals` refuses the broker's
book for a minute more than 3 session minutes (18 s) behind the broker's clock, and the
execution op skips a signal older than 2 session minutes (12 s). On 2 shared cores a 50-ticker
intraday run takes minutes, so with the broker's book every run that waited would be refused by
design. The default `--portfolio-source ledger` sizes on the ledger instead (no broker clock in
the decision), so what is measured is whether runs are lost; stale signals are still skipped by
the op and recorded as such in the ledger (`auto` is the live path).
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=50, help="universe incl. SPY, QQQ")
    parser.add_argument("--speed", type=float, default=10.0, help="session minutes per wall minute")
    parser.add_argument("--session", default="2026-03-23")
    parser.add_argument("--from", dest="first", default="09:30")
    parser.add_argument("--to", dest="last", default="10:29")
    parser.add_argument(
        "--portfolio-source",
        default="ledger",
        choices=("auto", "broker", "ledger", "backtest"),
        help="what trade_signals sizes on (default %(default)s; auto = the broker's book)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (daemon.log)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stops the daemon and the broker

    import pandas as pd

    from benchmarks.scale import build_replay
    from resources.paper_broker import PaperBroker
    from tests.graph.conftest import throwaway_postgres_instance
    from trading_assets.event_writes import apply_event_writes
    from trading_assets.load import load_session, report

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="load-session-"))
    home = tmp / "home"
    home.mkdir()
    replay_dir = tmp / "replay"
    symbols = build_replay(replay_dir, args.tickers)
    print(f"{len(symbols)} tickers: {', '.join(symbols[:4])} ... {symbols[-1]}; "
          f"load {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores", flush=True)  # fmt: skip
    apply_event_writes()  # the shipped setting (the Makefile exports it)
    os.environ.pop("TRADING_REPLAY_CLOCK", None)
    opened = pd.Timestamp(f"{args.session} 09:30", tz="America/New_York").tz_convert("UTC")
    try:
        with (
            throwaway_postgres_instance(home) as (_instance, db),
            PaperBroker(tmp / "paper.sqlite", start_time=opened) as broker,
        ):
            os.environ.update(
                {
                    "DAGSTER_HOME": str(home),
                    "TRADING_DATA_DIR": str(tmp / "data"),
                    "TRADING_REPLAY_DIR": str(replay_dir),
                    "TRADING_BROKER_MODE": "embedded",
                    "TRADING_BROKER_URL": broker.url,
                    "TRADING_PORTFOLIO_SOURCE": args.portfolio_source,
                }
            )
            print(f"instance: Postgres database {db}; paper broker {broker.url}", flush=True)
            result = load_session(
                args.session,
                args.first,
                args.last,
                speed=args.speed,
                set_clock=broker.set_clock,
                broker_orders=lambda: broker._require_engine().state.orders(),
                tickers=len(symbols),
                log=lambda line: print(line, flush=True),
            )
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    for line in report(result, time.perf_counter() - started):
        print(line)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}"
          + (f"; kept {tmp}" if args.keep else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
