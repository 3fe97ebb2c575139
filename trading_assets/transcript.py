"""Print the debate transcripts of a minute from the warehouse (`make transcript MINUTE=...`).

    python -m trading_assets.transcript "2026-03-23 10:15"          # every debate that minute
    python -m trading_assets.transcript "2026-03-23|10:15" META     # a partition key works too
    python -m trading_assets.transcript 2026-03-23 --list           # the session's debates

A minute without a debate says why each ticker held (the gate's reason).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from resources.duckdb_locks import connect
from resources.warehouse import SCHEMA, table_exists, warehouse_path
from trading_assets.research.transcript import transcript_markdown


def _minute(text: str) -> pd.Timestamp:
    return pd.Timestamp(text.replace("|", " "))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("minute", help="'YYYY-MM-DD HH:MM' (New York) or a partition key")
    parser.add_argument("ticker", nargs="?", default="", help="one ticker (default: all)")
    parser.add_argument("--list", action="store_true", help="the day's debates, one a line")
    args = parser.parse_args(argv)
    path = warehouse_path()
    if not path.exists():
        print(f"no warehouse at {path}: run `make demo` first", file=sys.stderr)
        return 2
    with connect(path, read_only=True) as conn:
        if not table_exists(conn, "debate"):
            print("the debate table was never materialized", file=sys.stderr)
            return 2
        if args.list:
            day = _minute(args.minute).normalize()
            rows = conn.execute(
                f"SELECT minute, ticker, action, confidence, consensus FROM {SCHEMA}.debate "
                "WHERE debated AND minute >= ? AND minute < ? ORDER BY minute, ticker",
                [day.to_pydatetime(), (day + pd.Timedelta(days=1)).to_pydatetime()],
            ).df()
            for r in rows.itertuples():
                print(f"{r.minute:%Y-%m-%d %H:%M} {r.ticker:<6} {r.action:<4} "
                      f"{r.confidence:.2f} {r.consensus}")  # fmt: skip
            print(f"{len(rows)} debates on {day:%Y-%m-%d}")
            return 0
        minute = _minute(args.minute)
        rows = conn.execute(
            f"SELECT * FROM {SCHEMA}.debate WHERE minute = ? AND (? = '' OR ticker = ?) "
            "ORDER BY ticker",
            [minute.to_pydatetime(), args.ticker, args.ticker],
        ).df()
    if rows.empty:
        print(f"nothing stored for {minute} {args.ticker}".rstrip(), file=sys.stderr)
        return 1
    debated = rows[rows["debated"]]
    for row in debated.to_dict("records"):
        print(transcript_markdown(row))
    for row in rows[~rows["debated"]].itertuples():
        print(f"{row.ticker}: no debate ({row.hold_reason})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
