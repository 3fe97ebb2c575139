"""Event context: for a new event, the most similar past events and what they did to the price.

Pure functions, no Dagster (the `event_context` asset wires them later).

**Impact of an event** (`event_impact`, per event x ticker). Times are naive New York wall clock,
`minute` is the arrival partition (bar start) and bar `b` covers ``[b, b+1min)``:

- reference price: the close of the bar at the event's minute (known at ``minute + 1min``), or of
  the last bar before it in the same session; no such bar -> every impact is NaN;
- ``ret_15m`` / ``ret_60m``: close of the bar at ``minute + 15`` / ``+ 60`` (or the last bar at or
  before it) over the reference, minus 1; the window ends at that bar's end
  (``minute + 16min`` / ``+ 61min``);
- ``ret_close``: the session's last close over the reference, minus 1; ends at the session close
  (the calendar's, 13:00 on an early close);
- ``volume_ratio``: mean volume per minute over the 60 bars after the event minute
  (``minute + 1 .. minute + 60``) over the mean volume per minute of the same clock minutes in the
  ticker's previous ``NORMAL_SESSIONS`` (5) sessions found in `bars`. Intraday volume is U-shaped,
  so "the same window on earlier days" is the fair normal; "the session so far" would call every
  afternoon quiet. NaN when there is no earlier session (the first bundled session);
- a window cut by the session close ends at the close, uses the last bar before it, and is
  marked ``truncated_15m`` / ``truncated_60m``;
- ``impact_end``: the end of the last window used = the session close (``ret_close`` is always
  measured). An event therefore becomes context only from the next session on.
- an impact whose window is not covered by `bars` yet (the data stop before the window's last
  minute) is NaN, not a partial number; ``complete`` says whether every window was covered.

**Eligibility** (`eligible`): a past event may be context for partition ``m`` only if
``impact_end <= m`` (the partition's start): every price and volume it reports was known before
the partition began.

**Neighbours** (`event_context`): text ``"{event_type}: {headline}"`` embedded with the static
WordLlama model shipped in the `wordllama` wheel (`embed_texts`), cosine similarity (dot product
of unit vectors). For each new event and each of its tickers: the eligible past events about the
same ticker with similarity >= `min_similarity`, best first; if fewer than `k`, filled with
eligible events about other tickers (best first, their own ticker's impact, see
``neighbour_ticker``). An event never appears twice in one context. Past events without a
measured impact (ticker without bars) are never context.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

import numpy as np
import pandas as pd

from trading_assets.analysts.headline_sentiment import EMBEDDING_MODEL, embed_texts
from trading_assets.partitions import session_bounds
from trading_assets.schemas import empty_frame

IMPACT_WINDOWS: tuple[int | str, ...] = (15, 60, "close")
VOLUME_WINDOW = 60  # minutes after the event whose volume is compared
NORMAL_SESSIONS = 5  # earlier sessions whose same clock window is the "normal" volume
DEFAULT_K = 5
DEFAULT_MIN_SIMILARITY = 0.3
MINUTE = pd.Timedelta(minutes=1)

EVENT_COLUMNS = ("minute", "event_id", "tickers", "event_type", "headline")

IMPACT_COLUMNS: dict[str, str] = {
    "ticker": "string",
    "ref_minute": "datetime64[ns]",
    "ref_price": "float64",
    "ret_15m": "float64",
    "ret_60m": "float64",
    "ret_close": "float64",
    "volume_ratio": "float64",
    "truncated_15m": "bool",
    "truncated_60m": "bool",
    "end_15m": "datetime64[ns]",
    "end_60m": "datetime64[ns]",
    "impact_end": "datetime64[ns]",
    "complete": "bool",
}

EVENT_CONTEXT_COLUMNS: dict[str, str] = {
    "minute": "datetime64[ns]",  # the new event's partition (naive NY)
    "event_id": "string",
    "ticker": "string",  # the new event's ticker this context is for
    "rank": "int64",  # 1 = most relevant
    "neighbour_event_id": "string",
    "neighbour_minute": "datetime64[ns]",
    "neighbour_ticker": "string",  # whose impact the row reports (= ticker unless a fallback)
    "neighbour_headline": "string",
    "similarity": "float64",
    "ret_15m": "float64",
    "ret_60m": "float64",
    "ret_close": "float64",
    "volume_ratio": "float64",
    "impact_end": "datetime64[ns]",
    "embedding_model": "string",
}


@cache
def _close_of(day: dt.date) -> pd.Timestamp | None:
    bounds = session_bounds(day)
    return None if bounds is None else bounds[1]


def _nan_impact(ticker: str, close: pd.Timestamp | None) -> dict[str, object]:
    return {
        "ticker": ticker,
        "ref_minute": pd.NaT,
        "ref_price": np.nan,
        "ret_15m": np.nan,
        "ret_60m": np.nan,
        "ret_close": np.nan,
        "volume_ratio": np.nan,
        "truncated_15m": False,
        "truncated_60m": False,
        "end_15m": pd.NaT,
        "end_60m": pd.NaT,
        "impact_end": close if close is not None else pd.NaT,
        "complete": False,
    }


def _ticker_bars(bars: pd.DataFrame, ticker: str) -> pd.DataFrame:
    rows = bars.loc[bars["ticker"].astype(str) == ticker, ["minute", "close", "volume"]]
    return rows.sort_values("minute").reset_index(drop=True)


def event_impact(
    ticker: str,
    minute: pd.Timestamp,
    bars: pd.DataFrame,
    *,
    _own: pd.DataFrame | None = None,
    _through: pd.Timestamp | None = None,
) -> dict[str, object]:
    """The realised impact of an event arriving in partition `minute` on `ticker` (see module)."""
    minute = pd.Timestamp(minute)
    close = _close_of(minute.date())
    out = _nan_impact(ticker, close)
    if close is None:
        return out
    own = _ticker_bars(bars, ticker) if _own is None else _own
    through = pd.Timestamp(bars["minute"].max()) if _through is None else _through
    # `own` is sorted by minute: every window below is a positional slice (searchsorted), not a
    # boolean mask over all the ticker's bars (build_history calls this once per event x ticker).
    times = own["minute"].to_numpy("datetime64[ns]")
    closes = own["close"].to_numpy(float)
    volumes = own["volume"].to_numpy(float)

    def upto(t: pd.Timestamp) -> int:  # bars with minute <= t
        return int(np.searchsorted(times, t.to_datetime64(), side="right"))

    opened = minute.normalize()
    day_lo = int(np.searchsorted(times, opened.to_datetime64(), side="left"))
    day_hi = int(np.searchsorted(times, close.to_datetime64(), side="left"))  # day: [lo, hi)
    ref_i = min(upto(minute), day_hi) - 1
    if ref_i < day_lo:
        return out
    ref_price = float(closes[ref_i])
    out["ref_minute"] = pd.Timestamp(times[ref_i])
    out["ref_price"] = ref_price
    last_minute = close - MINUTE  # the session's last bar start
    complete = True

    def close_at(target: pd.Timestamp) -> float:
        nonlocal complete
        if through < target:  # the window has not been fully observed in `bars`
            complete = False
            return np.nan
        return float(closes[min(upto(target), day_hi) - 1]) / ref_price - 1.0

    for window in (15, 60):
        target = minute + pd.Timedelta(minutes=window)
        truncated = target > last_minute
        target = min(target, last_minute)
        out[f"ret_{window}m"] = close_at(target)
        out[f"truncated_{window}m"] = bool(truncated)
        out[f"end_{window}m"] = target + MINUTE
    out["ret_close"] = close_at(last_minute)

    # Volume: bars minute+1 .. minute+60 (cut at the close) vs the same clock minutes on the
    # ticker's previous NORMAL_SESSIONS sessions present in `bars`.
    v_end = min(minute + pd.Timedelta(minutes=VOLUME_WINDOW), last_minute)
    if through < v_end:
        complete = False
    elif v_end > minute:
        n_minutes = int((v_end - minute) / MINUTE)
        vol_rate = float(volumes[upto(minute) : min(upto(v_end), day_hi)].sum()) / n_minutes
        earlier = times[:day_lo]
        sessions = np.unique(earlier.astype("datetime64[D]"))[-NORMAL_SESSIONS:]
        rates = []
        for s in pd.DatetimeIndex(sessions):
            lo = np.searchsorted(earlier, (s + (minute - opened)).to_datetime64(), side="right")
            hi = np.searchsorted(earlier, (s + (v_end - opened)).to_datetime64(), side="right")
            rates.append(float(volumes[lo:hi].sum()) / n_minutes)
        normal = float(np.mean(rates)) if rates else np.nan
        out["volume_ratio"] = vol_rate / normal if normal and normal > 0 else np.nan
    out["impact_end"] = close
    out["complete"] = complete
    return out


def split_tickers(tickers: object) -> list[str]:
    """'NVDA, AMD' -> ['NVDA', 'AMD'] (order kept, duplicates and blanks dropped)."""
    if tickers is None or (isinstance(tickers, float) and np.isnan(tickers)):
        return []
    seen: dict[str, None] = {}
    for t in str(tickers).split(","):
        if t.strip():
            seen.setdefault(t.strip().upper(), None)
    return list(seen)


def build_history(events: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """One row per event x ticker: the event's columns plus its impact on that ticker."""
    through = pd.Timestamp(bars["minute"].max()) if len(bars) else pd.Timestamp.min
    per_ticker: dict[str, pd.DataFrame] = {}
    rows = []
    for ev in events.itertuples(index=False):
        for ticker in split_tickers(ev.tickers):
            if ticker not in per_ticker:
                per_ticker[ticker] = _ticker_bars(bars, ticker)
            impact = event_impact(
                ticker, ev.minute, bars, _own=per_ticker[ticker], _through=through
            )
            rows.append({c: getattr(ev, c) for c in EVENT_COLUMNS} | impact)
    frame = pd.DataFrame(rows, columns=[*EVENT_COLUMNS, *IMPACT_COLUMNS])
    frame["minute"] = pd.to_datetime(frame["minute"]).astype("datetime64[ns]")
    frame["event_id"] = frame["event_id"].astype("string")
    return frame.astype(IMPACT_COLUMNS)


def eligible(past_events: pd.DataFrame, partition_start: pd.Timestamp) -> pd.DataFrame:
    """The past events whose whole impact window ended at or before `partition_start`."""
    ends = pd.to_datetime(past_events["impact_end"])
    return past_events[ends.notna() & (ends <= pd.Timestamp(partition_start))]


def event_text(event_type: object, headline: object) -> str:
    return f"{'' if pd.isna(event_type) else event_type}: {'' if pd.isna(headline) else headline}"


def _texts(frame: pd.DataFrame) -> list[str]:
    pairs = zip(frame["event_type"], frame["headline"], strict=True)
    return [event_text(t, h) for t, h in pairs]


def event_context(
    events: pd.DataFrame,
    history: pd.DataFrame,
    k: int = DEFAULT_K,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
) -> pd.DataFrame:
    """Up to `k` context rows per new event x ticker, strictly point-in-time (see module)."""
    if events.empty or history.empty:
        return empty_frame(EVENT_CONTEXT_COLUMNS)
    # Only past events with a measured impact can teach anything.
    hist = history[history["ret_close"].notna()].reset_index(drop=True)
    if hist.empty:
        return empty_frame(EVENT_CONTEXT_COLUMNS)
    new_texts = _texts(events)
    hist_texts = _texts(hist)
    unique = list(dict.fromkeys([*new_texts, *hist_texts]))
    vectors = embed_texts(unique)
    position = {text: i for i, text in enumerate(unique)}
    new_vec = vectors[[position[t] for t in new_texts]]
    hist_vec = vectors[[position[t] for t in hist_texts]]
    sims = new_vec @ hist_vec.T  # unit rows: cosine similarity

    hist_end = pd.to_datetime(hist["impact_end"]).to_numpy()
    hist_ticker = hist["ticker"].astype(str).to_numpy()
    hist_event = hist["event_id"].astype(str).to_numpy()
    rows: list[dict[str, object]] = []
    for i, ev in enumerate(events.itertuples(index=False)):
        start = pd.Timestamp(ev.minute)
        ok = (hist_end <= start.to_datetime64()) & (hist_event != str(ev.event_id))
        ok &= sims[i] >= min_similarity
        if not ok.any():
            continue
        idx = np.flatnonzero(ok)
        # Best first; ties broken by the newer event, then by position (deterministic).
        order = idx[
            np.lexsort((idx, -hist["minute"].to_numpy()[idx].astype("int64"), -sims[i, idx]))
        ]
        for ticker in split_tickers(ev.tickers):
            same = [j for j in order if hist_ticker[j] == ticker]
            other = [j for j in order if hist_ticker[j] != ticker]
            chosen: list[int] = []
            used: set[str] = set()
            for j in [*same, *other]:
                if hist_event[j] in used:
                    continue
                used.add(hist_event[j])
                chosen.append(j)
                if len(chosen) == k:
                    break
            for rank, j in enumerate(chosen, start=1):
                past = hist.iloc[j]
                rows.append(
                    {
                        "minute": start,
                        "event_id": str(ev.event_id),
                        "ticker": ticker,
                        "rank": rank,
                        "neighbour_event_id": hist_event[j],
                        "neighbour_minute": past["minute"],
                        "neighbour_ticker": hist_ticker[j],
                        "neighbour_headline": past["headline"],
                        "similarity": float(sims[i, j]),
                        "ret_15m": past["ret_15m"],
                        "ret_60m": past["ret_60m"],
                        "ret_close": past["ret_close"],
                        "volume_ratio": past["volume_ratio"],
                        "impact_end": past["impact_end"],
                        "embedding_model": EMBEDDING_MODEL,
                    }
                )
    if not rows:
        return empty_frame(EVENT_CONTEXT_COLUMNS)
    return pd.DataFrame(rows, columns=list(EVENT_CONTEXT_COLUMNS)).astype(EVENT_CONTEXT_COLUMNS)
