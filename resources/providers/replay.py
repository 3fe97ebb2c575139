"""The offline provider: replays a folder of real bars, headlines and SEC company facts.

The folder layout is documented in trading_assets/data/replay/README.md; the bundled copy is the
default. Files are read once per process and folder (a backfill asks for many windows).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from resources.errors import ProviderConfigError
from trading_assets.schemas import (
    PROVIDER_BAR_COLUMNS,
    PROVIDER_FACT_COLUMNS,
    PROVIDER_NEWS_COLUMNS,
    conform,
    empty_frame,
)

BUNDLED_REPLAY_DIR = Path(__file__).resolve().parents[2] / "trading_assets" / "data" / "replay"


def _read_tables(folder: Path) -> pd.DataFrame:
    files = sorted([*folder.glob("*.csv"), *folder.glob("*.parquet")])
    if not files:
        return pd.DataFrame()
    frames = [pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f) for f in files]
    return pd.concat(frames, ignore_index=True)


def _first_column(frame: pd.DataFrame, names: Sequence[str], what: str, folder: Path) -> str:
    for name in names:
        if name in frame.columns:
            return name
    raise ProviderConfigError(
        f"replay {what} in {folder} need one of the columns {list(names)}; "
        f"found {list(frame.columns)}"
    )


@functools.lru_cache(maxsize=4)
def _load_bars(folder: str) -> pd.DataFrame:
    path = Path(folder) / "bars"
    raw = _read_tables(path)
    if raw.empty:
        return empty_frame(PROVIDER_BAR_COLUMNS)
    ticker_col = _first_column(raw, ("ticker", "symbol"), "bars", path)
    raw = raw.rename(columns={ticker_col: "ticker"})
    raw["ticker"] = raw["ticker"].astype(str).str.upper()
    raw["timestamp"] = pd.to_datetime(raw["timestamp"], utc=True)
    undated = int(raw["timestamp"].isna().sum())
    if undated:  # no partition could ever serve them: refuse rather than lose them silently
        raise ProviderConfigError(
            f"replay bars in {path}: {undated} bars without a timestamp; every bar needs the "
            "UTC start of its minute"
        )
    for optional in ("vwap", "trade_count"):
        if optional not in raw.columns:
            raw[optional] = float("nan")
    bars = conform(raw, PROVIDER_BAR_COLUMNS)
    return bars.sort_values(["timestamp", "ticker"], kind="stable").reset_index(drop=True)


def _story_id(url: str, headline: str) -> str:
    return hashlib.sha1(f"{url}\n{headline}".encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def _load_news(folder: str) -> pd.DataFrame:
    path = Path(folder) / "news"
    raw = _read_tables(path)
    if raw.empty:
        return empty_frame(PROVIDER_NEWS_COLUMNS)
    published_col = _first_column(raw, ("published_utc", "published_at"), "news", path)
    tickers_col = _first_column(raw, ("tickers", "ticker"), "news", path)
    for name in ("summary", "source", "url"):
        if name not in raw.columns:
            raw[name] = ""
    raw = raw.fillna({"summary": "", "source": "", "url": "", "headline": ""})
    news = pd.DataFrame(
        {
            "provider": "replay",
            "provider_id": raw["id"].astype(str)
            if "id" in raw.columns
            else [_story_id(u, h) for u, h in zip(raw["url"], raw["headline"], strict=True)],
            "published_at": pd.to_datetime(raw[published_col], utc=True),
            "headline": raw["headline"].astype(str),
            "summary": raw["summary"].astype(str),
            "source": raw["source"].astype(str),
            "url": raw["url"].astype(str),
            "tickers": [
                sorted({t.strip().upper() for t in str(v).split(",") if t.strip()})
                for v in raw[tickers_col]
            ],
        }
    )
    return conform(news, PROVIDER_NEWS_COLUMNS).sort_values("published_at", kind="stable")


@functools.lru_cache(maxsize=4)
def load_universe(folder: str) -> pd.DataFrame:
    """`universe.csv` of a replay folder (ticker, name, aliases, cik, sector, asset_type)."""
    path = Path(folder) / "universe.csv"
    if not path.exists():
        return pd.DataFrame(columns=["ticker", "name", "aliases", "cik", "sector", "asset_type"])
    universe = pd.read_csv(path, dtype={"cik": "string"})
    universe["ticker"] = universe["ticker"].str.upper()
    return universe


@functools.lru_cache(maxsize=4)
def _load_facts(folder: str) -> pd.DataFrame:
    from trading_assets.ingest.fundamentals import facts_from_companyfacts

    universe = load_universe(folder)
    ticker_by_cik = {
        int(cik): ticker
        for cik, ticker in zip(universe["cik"], universe["ticker"], strict=True)
        if isinstance(cik, str) and cik.strip()
    }
    frames = []
    for path in sorted((Path(folder) / "fundamentals").glob("*.json")):
        doc = json.loads(path.read_text())
        ticker = ticker_by_cik.get(int(doc.get("cik", -1)))
        if ticker is None:
            continue  # a company outside universe.csv: nothing to map it to
        frames.append(facts_from_companyfacts(doc, ticker))
    if not frames:
        return empty_frame(PROVIDER_FACT_COLUMNS)
    return pd.concat(frames, ignore_index=True)


class ReplayProvider:
    """Bars, news and facts from a replay folder; windows are half-open [start, end) in UTC."""

    name = "replay"

    def __init__(self, folder: str | Path = BUNDLED_REPLAY_DIR) -> None:
        self.folder = Path(folder).expanduser().resolve()
        if not self.folder.is_dir():
            raise ProviderConfigError(
                f"replay folder {self.folder} does not exist: set TRADING_REPLAY_DIR to a folder "
                "laid out as in trading_assets/data/replay/README.md"
            )

    def default_tickers(self) -> list[str]:
        """Every ticker with bars in the folder, sorted."""
        return sorted(_load_bars(str(self.folder))["ticker"].unique().tolist())

    def universe(self) -> pd.DataFrame:
        return load_universe(str(self.folder))

    def fetch_bars(
        self, tickers: Sequence[str], start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        bars = _load_bars(str(self.folder))
        lo, hi = bars["timestamp"].searchsorted([start, end], side="left")
        window = bars.iloc[lo:hi]
        return window[window["ticker"].isin(set(tickers))].reset_index(drop=True)

    def fetch_news(
        self, tickers: Sequence[str], start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        news = _load_news(str(self.folder))
        in_window = (news["published_at"] >= start) & (news["published_at"] < end)
        wanted = set(tickers)
        about = news["tickers"].map(lambda ts: bool(wanted.intersection(ts)))
        return news[in_window & about].reset_index(drop=True)

    def fetch_facts(self, tickers: Sequence[str]) -> pd.DataFrame:
        facts = _load_facts(str(self.folder))
        return facts[facts["ticker"].isin(set(tickers))].reset_index(drop=True)
