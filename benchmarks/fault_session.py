"""The fault drill over a whole bundled session: exactly-once orders under random broker faults.

A throw-away Dagster instance on the local Postgres, warehouse and embedded paper broker; the
paper broker fails `--rate` of every API call at random (seeded: 500, 429, timeout, dropped
connection, answer lost after the order was booked); every signal batch is requested twice;
failed runs are retried. Prints what was tried and the outcome (trading_assets/fault_drill.py).

    .venv/bin/python benchmarks/fault_session.py [--session 2026-03-23] [--from 09:30 --to 15:50]
        [--rate 0.25] [--seed 7]
"""

import argparse
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", default="2026-03-23")
    parser.add_argument("--from", dest="first", default="09:30")
    parser.add_argument("--to", dest="last", default="15:50")
    parser.add_argument("--rate", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    import pandas as pd

    from resources.paper_broker import PaperBroker
    from resources.trading_controls import TradingControls
    from tests.graph.conftest import make_graph, throwaway_postgres_instance
    from trading_assets.event_writes import apply_event_writes
    from trading_assets.fault_drill import describe, drill_broker, run_fault_drill

    apply_event_writes()
    opened = pd.Timestamp(f"{args.session} 09:30", tz="America/New_York").tz_convert("UTC")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "home").mkdir()
        with (
            PaperBroker(tmp / "paper.sqlite", start_time=opened) as broker,
            throwaway_postgres_instance(tmp / "home") as (instance, db),
        ):
            print(f"instance: Postgres database {db}; paper broker {broker.url}")
            graph = make_graph(tmp, broker=drill_broker(broker.url), controls=TradingControls())
            counts = run_fault_drill(
                graph.defs,
                instance,
                broker,
                graph.warehouse,
                args.session,
                first=args.first,
                last=args.last,
                rate=args.rate,
                seed=args.seed,
            )
    print(
        f"\nfault drill {args.session} {args.first}-{args.last}, rate {args.rate}, seed {args.seed}"
    )
    for line in describe(counts):
        print("  " + line)
    bad = (
        counts.orders_doubled
        + counts.ledger_duplicates
        + counts.signals_without_row
        + counts.signals_without_final_state
        + counts.orders_without_signal
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
