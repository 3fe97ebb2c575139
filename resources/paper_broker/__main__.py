"""`python -m resources.paper_broker --db paper.sqlite --port 8765`: the paper broker in the
foreground until Ctrl-C. `--fresh` deletes the state file first (a new account and clock)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from resources.paper_broker.server import PaperBroker


def remove_state(db: str | Path) -> None:
    """Delete the SQLite state file and its sidecars, so a stale WAL cannot be replayed into it."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m resources.paper_broker",
        description="The embedded paper broker: an Alpaca-compatible HTTP server filling against "
        "bundled real bars.",
    )
    parser.add_argument("--db", default="paper_broker.sqlite")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--start-time", default=None, help="simulated start time (only seeds a new state file)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="delete the state file first (e.g. for demos)"
    )
    args = parser.parse_args(argv)
    if args.fresh:
        remove_state(args.db)
    broker = PaperBroker(args.db, host=args.host, port=args.port, start_time=args.start_time)
    broker.start()
    print(f"paper broker at {broker.url} (state {broker.db_path})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        broker.stop()


if __name__ == "__main__":
    main()
