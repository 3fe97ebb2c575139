"""What the researchers see for a debated ticker-minute: the four reports, headlines, triggers."""

from __future__ import annotations

import json
from collections.abc import Mapping

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
        score=float(row["score"]),  # type: ignore[arg-type]
        confidence=float(row["confidence"]),  # type: ignore[arg-type]
        key_points=json.loads(str(row["key_points"]))[:6],
        narrative=str(row["narrative"])[:1200],
    )


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
        for row in frame.to_dict("records"):
            key = (row["ticker"], row["minute"])
            if key not in reports:
                continue
            reports[key][name] = _report(row)
            if name == "technical":
                features = json.loads(row["features"])
                prices[key] = (features.get("close"), features.get("atr_14"))
    by_ticker = {t: g for t, g in headlines.groupby("ticker")} if not headlines.empty else {}
    bundles: dict[Key, AnalystBundle] = {}
    for row in debated.itertuples():
        key = (row.ticker, row.minute)
        news = by_ticker.get(row.ticker)
        recent: list[str] = []
        if news is not None:
            mask = (news["minute"] <= row.minute) & (
                news["published_at"] > row.minute - HEADLINE_WINDOW
            )
            recent = news[mask].sort_values("published_at", ascending=False)["headline"].tolist()
        price, atr = prices.get(key, (None, None))
        brief = (briefs or {}).get(key)
        bundles[key] = AnalystBundle(
            ticker=row.ticker,
            minute=pd.Timestamp(row.minute).strftime("%Y-%m-%dT%H:%M"),
            reports=reports[key],
            headlines=recent[:MAX_HEADLINES],
            triggers=json.loads(row.reasons),
            price=price,
            atr=atr,
            events=brief.text if brief else "",
            cited_events=list(brief.cited) if brief else [],
            event_evidence=list(brief.past_lines) if brief else [],
        )
    return bundles
