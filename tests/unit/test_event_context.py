"""Event context on the bundled real data: impacts, the look-ahead guard, similarity, embeddings.

Events are the bundled Yahoo headlines (2026-03-13 .. 2026-03-24), one event per distinct
headline, stored in their arrival partition; impacts come from the bundled real 1-minute bars.
"""

import functools

import numpy as np
import pandas as pd
import pytest

from resources.providers.replay import BUNDLED_REPLAY_DIR
from tests.real_bars import bundled_bars, scrambled_after
from trading_assets.analysts.headline_sentiment import EMBEDDING_MODEL, embed_texts
from trading_assets.events.context import (
    EVENT_CONTEXT_COLUMNS,
    IMPACT_WINDOWS,
    build_history,
    eligible,
    event_context,
    event_impact,
)
from trading_assets.partitions import arrival_minutes, session_minutes

HEADLINES = BUNDLED_REPLAY_DIR / "news" / "yahoo_headlines_2026-03.csv"


@functools.cache
def _events() -> pd.DataFrame:
    raw = pd.read_csv(HEADLINES)
    grid = session_minutes("2026-03-12", "2026-04-10")
    raw["minute"] = arrival_minutes(pd.to_datetime(raw["published_utc"], utc=True), grid)
    events = (
        raw.groupby("headline", sort=False)
        .agg(minute=("minute", "min"), tickers=("ticker", lambda s: ",".join(dict.fromkeys(s))))
        .reset_index()
    )
    events["event_id"] = [f"yh{i:03d}" for i in range(len(events))]
    events["event_type"] = "headline"
    return events.sort_values(["minute", "event_id"]).reset_index(drop=True)


def events() -> pd.DataFrame:
    return _events().copy()


@functools.cache
def _history() -> pd.DataFrame:
    return build_history(_events(), bundled_bars())


def history() -> pd.DataFrame:
    return _history().copy()


def by_headline(text: str) -> pd.Series:
    ev = events()
    hit = ev[ev["headline"].str.contains(text, regex=False)]
    assert len(hit) == 1, text
    return hit.iloc[0]


def independent_bars() -> pd.DataFrame:
    """The bundled parquet read straight, converted to naive New York bar starts."""
    raw = pd.read_parquet(next((BUNDLED_REPLAY_DIR / "bars").glob("*.parquet")))
    ts = pd.to_datetime(raw["timestamp"], utc=True)
    raw["minute"] = ts.dt.tz_convert("America/New_York").dt.tz_localize(None)
    return raw.rename(columns={"symbol": "ticker"})


def expected_impact(ticker: str, minute: str, close_hhmm: str = "16:00") -> dict[str, float]:
    """The impact recomputed with plain pandas, following the documented definitions."""
    bars = independent_bars()
    t = bars[bars["ticker"] == ticker].set_index("minute").sort_index()
    m = pd.Timestamp(minute)
    day = t.loc[str(m.date())]
    last = pd.Timestamp(f"{m.date()} {close_hhmm}") - pd.Timedelta(minutes=1)
    ref = day.loc[:m, "close"].iloc[-1]
    out = {}
    for w in (15, 60):
        target = min(m + pd.Timedelta(minutes=w), last)
        out[f"ret_{w}m"] = day.loc[:target, "close"].iloc[-1] / ref - 1
    out["ret_close"] = day.loc[:last, "close"].iloc[-1] / ref - 1
    v_end = min(m + pd.Timedelta(minutes=60), last)
    n = (v_end - m) / pd.Timedelta(minutes=1)
    after = day.loc[m + pd.Timedelta(minutes=1) : v_end, "volume"].sum() / n
    days = sorted({d for d in t.index.normalize() if d < m.normalize()})[-5:]
    normal = np.mean(
        [
            t.loc[
                d + (m - m.normalize()) + pd.Timedelta(minutes=1) : d + (v_end - m.normalize()),
                "volume",
            ].sum()
            / n
            for d in days
        ]
    )
    out["volume_ratio"] = after / normal
    return out


# -- impact ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ticker", "minute"),
    [
        ("NVDA", "2026-03-13 10:42"),  # "Tech stocks today: Anthropic ... SK Hynix ... ASML"
        ("NVDA", "2026-03-20 11:06"),  # "Super Micro co-founder's smuggling arrest ..."
        ("SPY", "2026-03-20 13:46"),  # "Accenture Stock Gets 2 Price Target Cuts Today ..."
        ("AMZN", "2026-03-20 15:37"),  # 60-minute window cut by the close
    ],
)
def test_impact_matches_an_independent_pandas_computation(ticker: str, minute: str) -> None:
    got = event_impact(ticker, pd.Timestamp(minute), bundled_bars())
    want = expected_impact(ticker, minute)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert got["impact_end"] == pd.Timestamp(minute[:10] + " 16:00")
    assert got["complete"]
    assert IMPACT_WINDOWS == (15, 60, "close")


def test_windows_cut_by_the_close_are_truncated_and_marked() -> None:
    bars = bundled_bars()
    late = event_impact("AMZN", pd.Timestamp("2026-03-20 15:52"), bars)
    assert late["truncated_15m"] and late["truncated_60m"]
    assert late["end_15m"] == late["end_60m"] == pd.Timestamp("2026-03-20 16:00")
    assert late["ret_15m"] == late["ret_60m"] == late["ret_close"]
    edge = event_impact("AMZN", pd.Timestamp("2026-03-20 15:44"), bars)
    assert not edge["truncated_15m"] and edge["truncated_60m"]
    assert edge["end_15m"] == pd.Timestamp("2026-03-20 16:00")
    early = event_impact("NVDA", pd.Timestamp("2026-03-13 10:42"), bars)
    assert early["end_15m"] == pd.Timestamp("2026-03-13 10:58")
    assert early["end_60m"] == pd.Timestamp("2026-03-13 11:43")


def test_windows_not_yet_in_the_bars_are_nan_not_partial() -> None:
    bars = bundled_bars()
    cut = bars[bars["minute"] < pd.Timestamp("2026-03-20 12:00")]
    got = event_impact("NVDA", pd.Timestamp("2026-03-20 11:06"), cut)
    assert not got["complete"]
    assert np.isfinite(got["ret_15m"])  # ended 11:22, observed
    assert np.isnan(got["ret_60m"]) and np.isnan(got["ret_close"])
    assert np.isnan(got["volume_ratio"])


def test_a_ticker_without_bars_has_no_impact_and_is_never_context() -> None:
    hist = history()
    smci = hist[hist["ticker"] == "SMCI"]  # SMCI has no bundled bars
    assert len(smci) > 0 and smci["ret_close"].isna().all()
    ctx = event_context(events(), hist)
    assert "SMCI" not in set(ctx["neighbour_ticker"])


def test_first_session_has_no_normal_volume() -> None:
    got = event_impact("NVDA", pd.Timestamp("2026-03-12 11:00"), bundled_bars())
    assert np.isnan(got["volume_ratio"]) and np.isfinite(got["ret_close"])


# -- point in time -----------------------------------------------------------------------------


def test_eligible_is_impact_end_at_or_before_the_partition_start() -> None:
    hist = history()
    start = pd.Timestamp("2026-03-23 09:30")
    got = eligible(hist, start)
    assert (got["impact_end"] <= start).all()
    assert set(got["minute"].dt.date.astype(str)) == {"2026-03-13", "2026-03-18", "2026-03-20"}
    assert len(eligible(hist, pd.Timestamp("2026-03-20 16:00"))) == len(
        eligible(hist, start)
    )  # the 16:00 close itself counts as ended
    assert eligible(hist, pd.Timestamp("2026-03-20 15:59"))["minute"].max() < pd.Timestamp(
        "2026-03-20"
    )


def test_no_context_impact_ends_after_the_partition_start() -> None:
    ctx = event_context(events(), history(), k=5, min_similarity=0.0)
    assert len(ctx) > 0
    assert (ctx["impact_end"] <= ctx["minute"]).all()
    assert (ctx["neighbour_minute"] < ctx["minute"]).all()
    assert (ctx["neighbour_minute"].dt.date < ctx["minute"].dt.date).all()
    assert (ctx["event_id"] != ctx["neighbour_event_id"]).all()


def test_an_event_is_context_only_after_its_session_closed() -> None:
    """The Super Micro smuggling story arrived 2026-03-20 11:06 (NVDA). Its 60-minute window ended
    12:07, its close window at 16:00: a repeat of the same story later that day must not see it,
    not even in the session's last partition; the next session's first partition must."""
    past = by_headline("Super Micro co-founder's smuggling arrest")
    assert past["minute"] == pd.Timestamp("2026-03-20 11:06")
    probes = pd.DataFrame(
        {
            "minute": pd.to_datetime(["2026-03-20 13:28", "2026-03-20 15:59", "2026-03-23 09:30"]),
            "event_id": ["probe-1", "probe-2", "probe-3"],
            "tickers": "NVDA",
            "event_type": past["event_type"],
            "headline": past["headline"],  # identical text: similarity 1 if eligible
        }
    )
    ctx = event_context(probes, history(), k=50, min_similarity=0.0)
    seen = ctx.groupby("event_id")["neighbour_event_id"].agg(set)
    assert past["event_id"] not in seen.get("probe-1", set())
    assert past["event_id"] not in seen.get("probe-2", set())
    top = ctx[(ctx["event_id"] == "probe-3") & (ctx["rank"] == 1)].iloc[0]
    assert top["neighbour_event_id"] == past["event_id"]
    assert top["similarity"] == pytest.approx(1.0)
    # Nothing from 2026-03-20 in the same-day probes, though its 15/60-minute windows had ended.
    same_day = ctx[ctx["event_id"].isin(["probe-1", "probe-2"])]
    assert (same_day["neighbour_minute"] < pd.Timestamp("2026-03-20")).all()


@pytest.mark.parametrize("partition", ["2026-03-20 13:28", "2026-03-24 10:23"])
def test_bars_after_the_partition_start_cannot_change_its_context(partition: str) -> None:
    start = pd.Timestamp(partition)
    new = events()
    new = new[new["minute"] == start]
    assert len(new) > 0
    bars = bundled_bars()
    honest = event_context(new, build_history(events(), bars), min_similarity=0.0)
    scrambled = build_history(events(), scrambled_after(bars, start - pd.Timedelta(minutes=1), 7))
    probe = event_context(new, scrambled, min_similarity=0.0)
    assert len(honest) > 0
    pd.testing.assert_frame_equal(honest, probe)


# -- similarity and embeddings -----------------------------------------------------------------


def test_related_headlines_are_more_similar_than_unrelated_ones() -> None:
    citi = "Super Micro Stock Drops. Why Citi Just Slashed Its Price Target."
    related = "Citi Is the Latest Bank to Sour On Super Micro Computer Stock"
    unrelated = "2 Things You Must Do if You Want to Retire Early"
    oil = "The S&P Falls Close to 1% As Oil Blasts Past $100 A Barrel"
    oil_related = (
        "The VIX Rips 10% Higher As Oil Punches Through $100 A Barrel and Panic Enters The Arena"
    )
    oil_unrelated = "Jeff Bezos wants to buy manufacturers for a disturbing reason"
    for text in (citi, related, unrelated, oil, oil_related, oil_unrelated):
        by_headline(text)  # all real bundled headlines
    v = embed_texts([citi, related, unrelated, oil, oil_related, oil_unrelated])
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert v[3] @ v[4] > v[3] @ v[5] + 0.2


def test_context_of_a_super_micro_story_is_super_micro_stories() -> None:
    new = events()
    new = new[new["headline"].str.startswith("Citi Is the Latest Bank to Sour On Super Micro")]
    ctx = event_context(new, history(), k=5)
    assert list(ctx["rank"]) == [1, 2, 3, 4, 5]
    top2 = ctx.sort_values("rank")["neighbour_headline"].head(2)
    assert top2.str.contains("Super Micro").all()
    unrelated = by_headline("Jeff Bezos wants to buy manufacturers")
    assert unrelated["event_id"] not in set(ctx["neighbour_event_id"])


def test_same_ticker_neighbours_come_first_then_any_ticker() -> None:
    ctx = event_context(events(), history(), k=5)
    for _, group in ctx.groupby(["event_id", "ticker"]):
        group = group.sort_values("rank")
        assert list(group["rank"]) == list(range(1, len(group) + 1))
        same = (group["neighbour_ticker"] == group["ticker"]).to_numpy()
        assert not (~same[:-1] & same[1:]).any()  # no same-ticker row after a fallback row
        for part in (group[same], group[~same]):
            assert part["similarity"].is_monotonic_decreasing
        assert group["neighbour_event_id"].is_unique
        assert (group["similarity"] >= 0.3).all()
    assert ctx.groupby(["event_id", "ticker"]).size().max() <= 5


def test_schema_and_model_name() -> None:
    ctx = event_context(events(), history())
    assert list(ctx.columns) == list(EVENT_CONTEXT_COLUMNS)
    assert {c: str(t) for c, t in ctx.dtypes.items()} == EVENT_CONTEXT_COLUMNS
    assert (ctx["embedding_model"] == EMBEDDING_MODEL).all()
    empty = event_context(events().iloc[:0], history())
    assert list(empty.columns) == list(EVENT_CONTEXT_COLUMNS) and empty.empty


def test_embeddings_have_fixed_dimension_and_unit_norm() -> None:
    texts = [f"headline: {h}" for h in events()["headline"]]
    v = embed_texts(texts)
    assert v.shape == (len(texts), 256) and v.dtype == np.float64
    assert np.isfinite(v).all()
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-9)
    assert embed_texts([]).shape == (0, 256)


def test_embeddings_and_context_are_deterministic() -> None:
    texts = list(events()["headline"])
    np.testing.assert_array_equal(embed_texts(texts), embed_texts(texts))
    np.testing.assert_array_equal(embed_texts(texts[:3]), embed_texts(texts)[:3])
    pd.testing.assert_frame_equal(
        event_context(events(), history()), event_context(events(), history())
    )
