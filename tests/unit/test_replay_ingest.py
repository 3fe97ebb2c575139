"""The replay provider and the bars/news ingest functions on the bundled real data."""

from pathlib import Path

import pandas as pd
import pytest

from resources.errors import ProviderConfigError
from resources.providers.replay import BUNDLED_REPLAY_DIR, ReplayProvider
from trading_assets.ingest.bars import bars_frame
from trading_assets.ingest.news import dedupe_news, story_key
from trading_assets.partitions import session_minutes
from trading_assets.schemas import BAR_COLUMNS, NEWS_COLUMNS

SHARED_BARS = (
    Path(__file__).resolve().parents[3]
    / "shared/data/bars/us_equities_1min_2026-03-12_2026-03-27.csv"
)
UTC = "UTC"


def utc(ts: str) -> pd.Timestamp:
    return pd.Timestamp(ts, tz=UTC)


@pytest.fixture(scope="module")
def replay() -> ReplayProvider:
    return ReplayProvider()


def test_bundled_universe_is_the_tickers_with_bars(replay: ReplayProvider) -> None:
    assert replay.default_tickers() == [
        "AAPL",
        "AMZN",
        "GOOG",
        "META",
        "MSFT",
        "NVDA",
        "QQQ",
        "SPY",
        "TSLA",
    ]


@pytest.mark.skipif(not SHARED_BARS.exists(), reason="../shared/data is not beside the checkout")
def test_replay_bars_equal_the_source_csv(replay: ReplayProvider) -> None:
    source = pd.read_csv(SHARED_BARS)
    source["timestamp"] = pd.to_datetime(source["timestamp"], utc=True)
    start, end = utc("2026-03-17 13:30"), utc("2026-03-17 20:00")
    expected = source[(source["timestamp"] >= start) & (source["timestamp"] < end)]
    got = replay.fetch_bars(replay.default_tickers(), start, end)
    assert len(got) == len(expected) > 3000
    merged = got.merge(
        expected, left_on=["ticker", "timestamp"], right_on=["symbol", "timestamp"], how="outer"
    )
    for col in ("open", "high", "low", "close", "volume"):
        assert (merged[f"{col}_x"] == merged[f"{col}_y"]).all(), col


def test_bars_frame_stamps_new_york_bar_starts(replay: ReplayProvider) -> None:
    raw = replay.fetch_bars(["AAPL"], utc("2026-03-17 13:30"), utc("2026-03-17 13:35"))
    frame = bars_frame(raw, "replay")
    assert list(frame.columns) == list(BAR_COLUMNS)
    assert frame["minute"].dt.strftime("%H:%M").tolist() == [
        "09:30",
        "09:31",
        "09:32",
        "09:33",
        "09:34",
    ]
    assert frame["minute"].dt.tz is None  # naive NY: what the DuckDB IO manager filters on
    assert (frame["close"].to_numpy() == raw["close"].to_numpy()).all()


def test_window_is_half_open(replay: ReplayProvider) -> None:
    got = replay.fetch_bars(["SPY"], utc("2026-03-17 14:00"), utc("2026-03-17 14:01"))
    assert got["timestamp"].tolist() == [utc("2026-03-17 14:00")]


def story(provider: str, published: str, headline: str, tickers: list[str]) -> dict[str, object]:
    return {
        "provider": provider,
        "provider_id": f"{provider}-{published}",
        "published_at": utc(published),
        "headline": headline,
        "summary": "",
        "source": provider.title(),
        "url": f"https://example.invalid/{provider}",
        "tickers": tickers,
    }


GRID = session_minutes("2026-03-18", "2026-03-24")


def test_a_story_from_two_providers_and_repeated_later_counts_once(
    replay: ReplayProvider,
) -> None:
    real = replay.fetch_news(["NVDA"], utc("2026-03-20 00:00"), utc("2026-03-21 00:00"))
    headline = real["headline"].iloc[0]
    published = real["published_at"].iloc[0]
    extra = pd.DataFrame(
        [
            story(
                "finnhub",
                str(published + pd.Timedelta(minutes=3)),
                headline.upper() + "!",
                ["NVDA", "AMD"],
            ),
            story("alpaca", "2026-03-23 15:00Z", headline, ["NVDA"]),  # re-published Monday
        ]
    )
    rows = pd.concat([real, extra], ignore_index=True)
    window = dict(grid=GRID, universe=replay.default_tickers())
    friday = dedupe_news(
        rows,
        window_start=pd.Timestamp("2026-03-20 09:30"),
        window_end=pd.Timestamp("2026-03-20 16:00"),
        **window,
    )
    monday = dedupe_news(
        rows,
        window_start=pd.Timestamp("2026-03-23 09:30"),
        window_end=pd.Timestamp("2026-03-23 16:00"),
        **window,
    )
    assert list(friday.columns) == list(NEWS_COLUMNS)
    same = friday[friday["headline"].map(story_key) == story_key(headline)]
    assert len(same) == 1
    assert same["providers"].iloc[0] == "finnhub,replay"
    assert "AMD" not in same["tickers"].iloc[0]  # outside the universe
    assert story_key(headline) not in set(monday["headline"].map(story_key))
    assert friday["news_id"].is_unique


def test_stories_are_stored_where_they_became_known(replay: ReplayProvider) -> None:
    rows = replay.fetch_news(replay.default_tickers(), utc("2026-03-19"), utc("2026-03-24"))
    frame = dedupe_news(
        rows,
        replay.default_tickers(),
        GRID,
        pd.Timestamp("2026-03-20 09:30"),
        pd.Timestamp("2026-03-23 16:00"),
    )
    assert (frame["published_at"] < frame["minute"] + pd.Timedelta(minutes=1)).all()
    overnight = frame[frame["published_at"] < pd.Timestamp("2026-03-20 09:30")]
    assert not overnight.empty
    assert (overnight["minute"] == pd.Timestamp("2026-03-20 09:30")).all()


def test_a_users_own_csv_folder_replays_without_code_changes(
    tmp_path: Path, replay: ReplayProvider
) -> None:
    bars = pd.read_parquet(next((BUNDLED_REPLAY_DIR / "bars").glob("*.parquet")))
    mine = bars[bars["symbol"].isin(["AAPL", "MSFT"])].rename(columns={"symbol": "ticker"})
    mine = mine.groupby("ticker").head(250)
    (tmp_path / "bars").mkdir()
    mine.to_csv(tmp_path / "bars" / "mine.csv", index=False)
    (tmp_path / "news").mkdir()
    pd.DataFrame(
        {
            "published_at": ["2026-03-12T14:00:00Z"],
            "tickers": ["AAPL,MSFT"],
            "source": ["Desk"],
            "headline": ["Apple and Microsoft trade higher"],
            "url": ["https://example.invalid/1"],
        }
    ).to_csv(tmp_path / "news" / "mine.csv", index=False)
    provider = ReplayProvider(tmp_path)
    assert provider.default_tickers() == ["AAPL", "MSFT"]
    got = provider.fetch_bars(["AAPL"], utc("2026-03-12"), utc("2026-03-13"))
    assert len(got) == (mine["ticker"] == "AAPL").sum()
    news = provider.fetch_news(["MSFT"], utc("2026-03-12"), utc("2026-03-13"))
    assert news["tickers"].iloc[0] == ["AAPL", "MSFT"]


def test_a_missing_replay_folder_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ProviderConfigError, match="TRADING_REPLAY_DIR"):
        ReplayProvider(tmp_path / "nope")
