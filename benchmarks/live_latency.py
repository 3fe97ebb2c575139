"""Latency from a minute's close to its order at the broker, per stage, on the live path.

Replays a window of the bundled 2026-03-23 session with the real daemon and the paper broker,
running the full `intraday_job` (ingest .. trade_signals) per minute as the intraday schedule
would, on a throw-away SQLite instance and warehouse. Prints the per-stage median / max over
the minutes that sent orders (signals = the intraday run, sensor = run done -> execute run
created, launch = created -> started, execute = the op run, to_order = close -> op finished).

    .venv/bin/python benchmarks/live_latency.py [--from 09:30 --to 09:44]
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", default="2026-03-23")
    parser.add_argument("--from", dest="first", default="09:30")
    parser.add_argument("--to", dest="last", default="09:44")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="live-latency-"))
    (tmp / "home").mkdir()
    os.environ |= {"DAGSTER_HOME": str(tmp / "home"), "TRADING_DATA_DIR": str(tmp / "data")}
    from trading_assets.main import main as replay_main

    return replay_main(
        [
            "--session", args.session, "--from", args.first, "--to", args.last,
            "--intraday-window", f"{args.first}-{args.last}",
        ]
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
