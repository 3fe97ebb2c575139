"""Copy the real bars and headlines from ../shared/data into the bundled replay folder.

Run once by a maintainer (the output is committed); `scripts/vendor_fundamentals.py` does the
SEC company facts. Bars go to Parquet (a third of the CSV's size, and typed).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
REPLAY = ROOT / "trading_assets" / "data" / "replay"


def main() -> None:
    bars_src = SHARED / "bars" / "us_equities_1min_2026-03-12_2026-03-27.csv"
    bars = pd.read_csv(bars_src)
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
    (REPLAY / "bars").mkdir(parents=True, exist_ok=True)
    out = REPLAY / "bars" / "us_equities_1min_2026-03-12_2026-03-27.parquet"
    bars.to_parquet(out, index=False, compression="zstd")
    print(f"bars: {len(bars)} rows -> {out.relative_to(ROOT)} ({out.stat().st_size} bytes)")

    (REPLAY / "news").mkdir(parents=True, exist_ok=True)
    news_src = SHARED / "news" / "yahoo_headlines_2026-03.csv"
    shutil.copyfile(news_src, REPLAY / "news" / news_src.name)
    print(f"news: {sum(1 for _ in news_src.open()) - 1} rows -> {news_src.name}")


if __name__ == "__main__":
    main()
