"""Corrupted bars never pass the blocking `bars_valid` check, and it says what is wrong.

Property-based: real bundled bars, fetched through the replay provider and stamped by
`bars_frame` exactly as the `bars` asset does, then corrupted the way a broken feed would
(NaN, zero, negative or infinite prices and volumes, a duplicated or re-sent minute, bars
stamped far in the future or before the window). The rows are split into "inside the partition
range" and "written outside it" as the check's loader does, and the check's own suite and
result builder judge them. What each corruption does on the way:

* out-of-order rows: normalised (`bars_frame` sorts them); the same bars, not an error;
* everything else is stored as delivered (nothing is repaired or dropped in ingest) and fails
  the blocking check with a message naming the expectation and the row count.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetCheckResult, AssetCheckSeverity
from hypothesis import given, settings
from hypothesis import strategies as st

from resources.errors import ProviderConfigError
from resources.providers.replay import BUNDLED_REPLAY_DIR, ReplayProvider
from trading_assets.checks.ingest import BOUNDS, judge_bars
from trading_assets.ingest.bars import bars_frame

START = pd.Timestamp("2026-03-23 10:00")  # naive New York, a real session window
END = pd.Timestamp("2026-03-23 10:05")
TZ = "America/New_York"
PRICES = ("open", "high", "low", "close")


def _utc(naive: pd.Timestamp) -> pd.Timestamp:
    return naive.tz_localize(TZ).tz_convert("UTC")


REAL = ReplayProvider(BUNDLED_REPLAY_DIR).fetch_bars(
    sorted(pd.read_csv(BUNDLED_REPLAY_DIR / "universe.csv")["ticker"]), _utc(START), _utc(END)
)


def judge(provider_bars: pd.DataFrame) -> AssetCheckResult:
    """`bars_valid` on what the `bars` asset would store for [START, END) from these rows."""
    frame = bars_frame(provider_bars, "replay")
    inside = frame[(frame["minute"] >= START) & (frame["minute"] < END)]
    stray = frame.drop(inside.index)  # every row is this run's: outside the range is stray
    return judge_bars(inside.reset_index(drop=True), stray, START, END)


# (what is done to one real row, the label the check's message must name)
def _set(col: str, value: float) -> tuple[str, str, float]:
    return ("set", col, value)


@st.composite
def corruptions(draw: st.DrawFn) -> tuple[str, str, float, int, str]:
    """One corruption: (kind, column, value, row, label the check must report)."""
    row = draw(st.integers(0, len(REAL) - 1))
    kinds = ["nan", "zero", "negative", "inf", "absurd", "dup", "future", "early"]
    kind = draw(st.sampled_from(kinds))
    col = draw(st.sampled_from([*PRICES, "volume"]))
    if kind == "nan":
        return kind, col, np.nan, row, f"{col} present"
    if kind == "zero":
        col = draw(st.sampled_from(PRICES))  # a zero volume is a quiet minute, not an error
        return kind, col, 0.0, row, f"{col} > 0"
    if kind == "negative":
        value = -draw(st.floats(0.01, 1e6))
        return kind, col, value, row, "volume >= 0" if col == "volume" else f"{col} > 0"
    if kind in ("inf", "absurd"):  # absurd: finite, but no share ever cost or traded that
        value = np.inf if kind == "inf" else BOUNDS[col] * draw(st.floats(1.5, 1e200))
        return kind, col, value, row, f"{col} <= {BOUNDS[col]:.0e}"
    if kind == "dup":
        return kind, "close", draw(st.floats(0.99, 1.01)), row, "one bar per ticker and minute"
    if kind == "future":
        years = draw(st.integers(0, 80))
        minutes = draw(st.integers(0, 60 * 24 * 365))
        shift = pd.Timedelta(days=365 * years, minutes=minutes) + (END - START)
        return kind, "timestamp", shift.total_seconds(), row, "written outside the partition range"
    # at least the window's length back, so that any row lands before it (a shorter shift of
    # a later row stays inside the window: a duplicate minute, not a stray)
    early = pd.Timedelta(minutes=draw(st.integers(1, 60 * 24 * 30))) + (END - START)
    return kind, "timestamp", -early.total_seconds(), row, "written outside the partition range"


def corrupt(bars: pd.DataFrame, changes: list[tuple[str, str, float, int, str]]) -> pd.DataFrame:
    out = bars.copy()
    for kind, col, value, row, _ in changes:
        if kind == "dup":  # the same ticker-minute re-sent, maybe with a corrected price
            again = out.iloc[[row]].copy()
            again[col] = again[col] * value
            out = pd.concat([out, again], ignore_index=True)
        elif kind in ("future", "early"):
            out.loc[row, "timestamp"] += pd.Timedelta(seconds=value)
        else:
            out.loc[row, col] = value
    return out


def test_real_bars_pass() -> None:
    result = judge(REAL)
    assert len(REAL) == 9 * 5
    assert result.passed, result.description


@settings(max_examples=20)
@given(
    changes=st.lists(corruptions(), min_size=1, max_size=3, unique_by=lambda c: c[3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_corruption_fails_the_blocking_check_with_its_name(
    changes: list[tuple[str, str, float, int, str]], seed: int
) -> None:
    """Whatever the mix of corruptions (and in any row order), the blocking check fails and its
    message names each problem; the row count of the store is what the provider sent."""
    bad = corrupt(REAL, changes).sample(frac=1.0, random_state=seed % 2**32)
    result = judge(bad)
    assert not result.passed
    assert result.severity == AssetCheckSeverity.ERROR
    for *_, label in changes:
        assert label in result.description, (label, result.description)
    assert len(bars_frame(bad, "replay")) == len(bad)  # nothing dropped on the way


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1))
def test_out_of_order_rows_are_sorted_not_rejected(seed: int) -> None:
    """A feed that delivers bars out of order is normalised: the same frame, and a pass."""
    shuffled = REAL.sample(frac=1.0, random_state=seed)
    expected = bars_frame(REAL, "replay")
    pd.testing.assert_frame_equal(bars_frame(shuffled, "replay"), expected)


@pytest.mark.parametrize("high", [np.inf, 1e30])
def test_an_infinite_or_absurd_high_fails_the_check(high: float) -> None:
    """An infinite or absurd high is consistent with every OHLC inequality, so only a bound
    catches it (infinity used to pass the blocking check, 1e30 passed until issue 20)."""
    bad = REAL.copy()
    bad.loc[3, "high"] = high
    result = judge(bad)
    assert not result.passed and "high <= 1e+07 (finite, plausible): 1 rows" in result.description


def test_a_bar_stamped_with_seconds_fails_the_check_and_is_not_a_minute_of_its_own() -> None:
    """A vendor's row stamped 09:32:59.999 (a last row 'at the close' with seconds) is stored
    as delivered and fails the blocking check, which names it."""
    bad = REAL.copy()
    bad.loc[7, "timestamp"] += pd.Timedelta(seconds=59, milliseconds=999)
    result = judge(bad)
    assert not result.passed
    assert "stamped on the minute (no seconds): 1 rows" in result.description


def test_bars_labelled_by_their_end_fail_the_check_and_say_so() -> None:
    """The session's first real bars labelled by their end (09:31 .. ): the open has no bar,
    the next minute has, and the check says the bars look end-labelled instead of passing."""
    opened, end = pd.Timestamp("2026-03-23 09:30"), pd.Timestamp("2026-03-23 09:36")
    tickers = sorted(pd.read_csv(BUNDLED_REPLAY_DIR / "universe.csv")["ticker"])
    real = ReplayProvider(BUNDLED_REPLAY_DIR).fetch_bars(tickers, _utc(opened), _utc(end))

    def at_the_open(provider_bars: pd.DataFrame) -> AssetCheckResult:
        frame = bars_frame(provider_bars, "replay")
        inside = frame[frame["minute"] < end].reset_index(drop=True)
        return judge_bars(inside, frame.iloc[0:0], opened, end)

    assert at_the_open(real).passed
    shifted = real.copy()
    shifted["timestamp"] += pd.Timedelta(minutes=1)
    result = at_the_open(shifted)
    assert not result.passed
    assert "bars look labelled by their end" in result.description
    assert "2026-03-23" in result.description
    # one ticker without a bar at the open (a late first trade) is no such sign
    first = real["timestamp"] == real["timestamp"].min()
    assert at_the_open(real[~(first & (real.index == real[first].index[0]))]).passed


def test_bars_without_a_timestamp_fail_the_replay_loudly(tmp_path: Path) -> None:
    """A bar whose time cannot be read belongs to no partition: the replay refuses the folder
    with the count instead of never serving those rows."""
    folder = tmp_path / "replay"
    (folder / "bars").mkdir(parents=True)
    raw = pd.read_parquet(next((BUNDLED_REPLAY_DIR / "bars").glob("*.parquet")))
    raw = raw.head(100).copy()
    raw["timestamp"] = raw["timestamp"].astype(object)
    raw.loc[[5, 7], "timestamp"] = None
    raw.to_parquet(folder / "bars" / "bars.parquet", index=False)
    with pytest.raises(ProviderConfigError, match="2 bars without a timestamp"):
        ReplayProvider(folder).fetch_bars(["AAPL"], _utc(START), _utc(END))
