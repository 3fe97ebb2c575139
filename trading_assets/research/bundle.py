"""What the researchers see for a debated ticker-minute: the four reports, headlines, triggers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from trading_assets.analysts.report import AnalystReport, Stance
from trading_assets.events.brief import EventBrief
from trading_assets.research.debate import AnalystBundle

MAX_HEADLINES = 5
HEADLINE_WINDOW = pd.Timedelta(hours=24)

Key = tuple[str, pd.Timestamp]


def _report(row: Mapping[str, object]) -> AnalystReport:
    return AnalystReport(
        stance=Stance(str(row["stance"])),
        score=float(row["score"]),
        confidence=float(row["confidence"]),
        key_points=json.loads(str(row["key_points"]))[:6],
        narrative=str(row["narrative"])[:1200],
    )


def _newest_first(published: np.ndarray) -> np.ndarray:
    """Positions ordering `published` (datetime64) newest first, NaT last, exactly as
    `sort_values(ascending=False)` orders them: pandas reverses, quicksorts and reverses back,
    so equal times keep the order the per-row pandas sort gave them."""
    missing = np.isnat(published)
    idx = np.arange(len(published))
    values, positions = published[~missing][::-1], idx[~missing][::-1]
    order = positions[values.argsort(kind="quicksort")][::-1]
    return np.concatenate([order, idx[missing]])


class _Headlines:
    """One ticker's headlines as arrays: each debated minute masks a few numbers, not a frame."""

    def __init__(self, news: pd.DataFrame) -> None:
        self.minute = news["minute"].to_numpy("datetime64[ns]")
        self.published = news["published_at"].to_numpy("datetime64[ns]")
        self.headline = np.asarray(news["headline"].tolist(), dtype=object)

    def recent(self, minute: pd.Timestamp) -> list[str]:
        """Arrived by `minute`, published within HEADLINE_WINDOW before it, newest first."""
        m = pd.Timestamp(minute)
        mask = (self.minute <= m.to_datetime64()) & (
            self.published > (m - HEADLINE_WINDOW).to_datetime64()
        )
        order = _newest_first(self.published[mask])
        return self.headline[mask][order][:MAX_HEADLINES].tolist()


def _debated_rows(frame: pd.DataFrame, wanted: set[Key]) -> list[dict[str, Any]]:
    """The rows of `frame` whose (ticker, minute) is debated, as dicts, in frame order.

    Only the debated few percent become dicts (a dict of every analysis row was most of this
    step); minutes are matched as nanosecond integers, which is what Timestamp equality is."""
    stamps = {(ticker, pd.Timestamp(minute).value) for ticker, minute in wanted}
    minutes = frame["minute"].to_numpy("datetime64[ns]").view("int64").tolist()
    keys = zip(frame["ticker"].tolist(), minutes, strict=True)
    return frame[[key in stamps for key in keys]].to_dict("records")


def build_bundles(
    analyses: Mapping[str, pd.DataFrame],
    triggers: pd.DataFrame,
    headlines: pd.DataFrame,
    briefs: Mapping[Key, EventBrief] | None = None,
) -> dict[Key, AnalystBundle]:
    """An AnalystBundle per debated (ticker, minute).

    `analyses` maps analyst name -> its ANALYSIS_COLUMNS frame; `headlines` is
    `headline_targets` (flagged ones included: prompts mark them, rules ignore them); `briefs`
    the event briefs (`event_briefs`) of the ticker-minutes with a new market event.
    """
    debated = triggers[triggers["debated"].astype(bool)]
    wanted = set(zip(debated["ticker"], debated["minute"], strict=True))
    reports: dict[Key, dict[str, AnalystReport]] = {k: {} for k in wanted}
    prices: dict[Key, tuple[float | None, float | None]] = {}
    for name, frame in analyses.items():
        for row in _debated_rows(frame, wanted):
            key = (row["ticker"], row["minute"])
            reports[key][name] = _report(row)
            if name == "technical":
                features = json.loads(row["features"])
                prices[key] = (features.get("close"), features.get("atr_14"))
    by_ticker = (
        {t: _Headlines(g) for t, g in headlines.groupby("ticker")} if not headlines.empty else {}
    )
    bundles: dict[Key, AnalystBundle] = {}
    for row in debated.itertuples():
        key = (row.ticker, row.minute)
        news = by_ticker.get(row.ticker)
        recent = news.recent(row.minute) if news is not None else []
        price, atr = prices.get(key, (None, None))
        brief = (briefs or {}).get(key)
        bundles[key] = AnalystBundle(
            ticker=row.ticker,
            minute=pd.Timestamp(row.minute).strftime("%Y-%m-%dT%H:%M"),
            reports=reports[key],
            headlines=recent,
            triggers=json.loads(row.reasons),
            price=price,
            atr=atr,
            events=brief.text if brief else "",
            cited_events=list(brief.cited) if brief else [],
            event_evidence=list(brief.past_lines) if brief else [],
        )
    return bundles
