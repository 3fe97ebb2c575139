"""Provider headlines -> the `news` asset frame: one row per story, in the partition where it
first became known.

The same story arrives from several providers and is re-published later; a story counts once,
at its first appearance. Deciding "first" needs the stories published before the window too,
so callers pass a look-back of provider rows and this function keeps only the stories whose
first appearance falls inside [window_start, window_end).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

import pandas as pd

from trading_assets.partitions import arrival_minutes
from trading_assets.schemas import MARKET_TZ, NEWS_COLUMNS, conform, empty_frame, to_market_naive

# What the `news` table keeps of a story's text. Real headlines run to ~300 characters and
# summaries to a few thousand; a provider's 1 MB "headline" is cut here, and counted
# (`rows_over_storage_cap`), rather than stored whole and read into every prompt's feature frame.
MAX_STORED_CHARS = {"headline": 1_000, "summary": 10_000}

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_NON_WORD = re.compile(r"[^0-9a-z]+")


def story_key(headline: str) -> str:
    """A headline reduced to what makes it the same story: case, quotes, punctuation and
    spacing differ between providers and are ignored."""
    text = unicodedata.normalize("NFKC", headline).translate(_QUOTES).casefold()
    return _NON_WORD.sub(" ", text).strip()


def story_id(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def has_headline(headlines: pd.Series) -> pd.Series:
    """True where a headline has visible text (a missing one is just as empty as "  ")."""
    return headlines.fillna("").astype(str).str.strip().astype(bool)


def provider_rows_dropped(provider_news: pd.DataFrame, universe: Iterable[str]) -> dict[str, int]:
    """Why provider rows cannot become stories, counted for the asset's metadata: a row with no
    headline has nothing to read or score, one without a universe ticker is not about us."""
    if provider_news.empty:
        return {"blank_headline": 0, "no_universe_ticker": 0}
    wanted = set(universe)
    about = provider_news["tickers"].map(lambda ts: bool(wanted.intersection(ts)))
    return {
        "blank_headline": int((~has_headline(provider_news["headline"])).sum()),
        "no_universe_ticker": int((~about).sum()),
    }


def rows_over_storage_cap(provider_news: pd.DataFrame) -> int:
    """Provider rows whose headline or summary is longer than the table keeps."""
    if provider_news.empty:
        return 0
    over = pd.Series(False, index=provider_news.index)
    for column, cap in MAX_STORED_CHARS.items():
        if column in provider_news:
            over |= provider_news[column].fillna("").astype(str).str.len() > cap
    return int(over.sum())


def dedupe_news(
    provider_news: pd.DataFrame,
    universe: Iterable[str],
    grid: pd.DatetimeIndex,
    window_start: pd.Timestamp,
    window_end: pd.Timestamp,
) -> pd.DataFrame:
    """Merge provider rows into stories and keep those first known inside the window.

    `grid` is the session-minute grid (naive NY) used to find each story's arrival partition;
    `window_start`/`window_end` are naive NY partition bounds. Tickers outside `universe` are
    dropped from a story; a story left with none is not about us and is dropped.
    """
    wanted = set(universe)
    if provider_news.empty:
        return empty_frame(NEWS_COLUMNS)
    # Point in time: a copy published after the window must not add its providers, tickers or
    # a longer summary to a story stored inside the window.
    known_by = window_end.tz_localize(MARKET_TZ).tz_convert("UTC")
    rows = provider_news[pd.to_datetime(provider_news["published_at"], utc=True) < known_by].copy()
    rows["tickers"] = rows["tickers"].map(lambda ts: sorted(wanted.intersection(ts)))
    rows = rows[rows["tickers"].map(bool) & has_headline(rows["headline"])]
    if rows.empty:
        return empty_frame(NEWS_COLUMNS)
    rows["key"] = rows["headline"].map(story_key)
    rows = rows.sort_values(["published_at", "provider", "provider_id"], kind="stable")

    grouped = rows.groupby("key", sort=False)
    first = grouped.head(1).set_index("key")
    stories = pd.DataFrame(
        {
            "published_at": first["published_at"],
            "headline": first["headline"].str.strip(),
            "url": first["url"],
            "summary": grouped["summary"].agg(lambda s: max(s, key=len)),
            "source": grouped["source"].agg(lambda s: "; ".join(dict.fromkeys(x for x in s if x))),
            "tickers": grouped["tickers"].agg(lambda s: ",".join(sorted(set().union(*s)))),
            "providers": grouped["provider"].agg(lambda s: ",".join(sorted(set(s)))),
        }
    )
    for column, cap in MAX_STORED_CHARS.items():  # the story's identity is its whole headline
        stories[column] = stories[column].str.slice(0, cap)
    stories["news_id"] = [story_id(k) for k in stories.index]
    stories["minute"] = arrival_minutes(stories["published_at"], grid).to_numpy()
    stories["published_at"] = to_market_naive(stories["published_at"])
    inside = (stories["minute"] >= window_start) & (stories["minute"] < window_end)
    frame = conform(stories[inside].reset_index(drop=True), NEWS_COLUMNS)
    return frame.sort_values(["minute", "published_at", "news_id"], kind="stable").reset_index(
        drop=True
    )
