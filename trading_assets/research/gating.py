"""Event gating: which ticker-minutes are worth a debate.

A debate costs 2 x rounds + 1 model calls. Most minutes nothing happens, so a ticker is debated
only when something did: a new headline, a technical signal crossing its threshold, or a price or
volume shock. At most `max_per_minute` tickers are debated a minute (strongest first); every
other ticker-minute carries HOLD with the reason.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

TRIGGER_COLUMNS: dict[str, str] = {
    "minute": "datetime64[ns]",
    "ticker": "string",
    "triggered": "bool",
    "debated": "bool",  # triggered and within the cap
    "strength": "float64",  # what ranks triggers inside a minute
    "rank": "int64",  # 1 = strongest trigger of the minute; 0 = not triggered
    "reasons": "string",  # JSON list of plain-words reasons
    "hold_reason": "string",  # why a ticker-minute is not debated ("" when debated)
    "data_as_of": "datetime64[ns]",
}


class GateSettings(BaseModel):
    enabled: bool = Field(
        True, description="off: every ticker-minute is debated, uncapped (to measure the saving)"
    )
    max_per_minute: int = Field(3, ge=0, description="debates a minute at most (strongest first)")
    signal_threshold: float = Field(0.5, gt=0, le=1, description="|technical score| crossing")
    return_z: float = Field(3.0, gt=0, description="|1-minute return z-score| for a price shock")
    volume_ratio: float = Field(4.0, gt=1, description="volume / its average for a volume shock")


def gate(
    technical: pd.DataFrame, headlines: pd.DataFrame, settings: GateSettings | None = None
) -> pd.DataFrame:
    """TRIGGER_COLUMNS rows, one per row of `technical` (ticker-minutes with bars).

    `technical` is `technical_features` output sorted or not (needs minute, ticker, signal_score,
    return_z, volume_ratio, data_as_of); `headlines` is `headline_targets` (minute, ticker,
    flagged). Quarantined headlines never trigger anything.
    """
    s = settings or GateSettings()
    frame = technical.sort_values(["ticker", "minute"], kind="stable").reset_index(drop=True)
    reasons: list[list[str]] = [[] for _ in range(len(frame))]
    strength = np.zeros(len(frame))

    fresh = headlines[~headlines["flagged"].astype(bool)] if not headlines.empty else headlines
    counts = (
        fresh.groupby(["ticker", "minute"]).size()
        if not fresh.empty
        else pd.Series(dtype="int64", index=pd.MultiIndex.from_arrays([[], []]))
    )
    # A dict, not `counts.get` per row: a MultiIndex lookup per ticker-minute was most of the gate.
    per_key = dict(zip(counts.index, counts.tolist(), strict=True))
    new_news = np.array(
        [per_key.get((t, m), 0) for t, m in zip(frame["ticker"], frame["minute"], strict=True)]
    )

    score = frame["signal_score"].astype(float)
    previous = score.groupby(frame["ticker"]).shift(1)
    crossed = (score.abs() >= s.signal_threshold) & (previous.abs() < s.signal_threshold)
    z = frame["return_z"].astype(float).fillna(0.0)
    ratio = frame["volume_ratio"].astype(float).fillna(0.0)

    for i in np.flatnonzero(new_news > 0):
        reasons[i].append(f"{new_news[i]} new headline(s)")
        strength[i] += 1.0 + 0.25 * (new_news[i] - 1)
    for i in np.flatnonzero(crossed.to_numpy()):
        side = "bullish" if score.iat[i] > 0 else "bearish"
        reasons[i].append(
            f"technical score crossed {s.signal_threshold:.2f} {side} ({score.iat[i]:+.2f})"
        )
        strength[i] += abs(score.iat[i])
    for i in np.flatnonzero((z.abs() >= s.return_z).to_numpy()):
        reasons[i].append(f"price shock: 1-minute return z = {z.iat[i]:+.1f}")
        strength[i] += abs(z.iat[i]) / s.return_z
    for i in np.flatnonzero((ratio >= s.volume_ratio).to_numpy()):
        reasons[i].append(f"volume shock: {ratio.iat[i]:.1f}x its average")
        strength[i] += ratio.iat[i] / s.volume_ratio * 0.5
    if not s.enabled:
        for found in reasons:
            found.append("gating off: every ticker-minute is debated")

    out = pd.DataFrame(
        {
            "minute": frame["minute"],
            "ticker": frame["ticker"],
            "triggered": [bool(r) for r in reasons],
            "strength": strength,
            "reasons": [json.dumps(r) for r in reasons],
            "data_as_of": frame["data_as_of"],
        }
    )
    ranked = out[out["triggered"]].sort_values(
        ["minute", "strength", "ticker"], ascending=[True, False, True], kind="stable"
    )
    rank = ranked.groupby("minute").cumcount() + 1
    out["rank"] = 0
    out.loc[rank.index, "rank"] = rank.to_numpy()
    cap = s.max_per_minute if s.enabled else len(out)
    out["debated"] = out["triggered"] & (out["rank"] <= cap)
    out["hold_reason"] = np.select(
        [out["debated"], out["triggered"]],
        [
            "",
            [f"capped: trigger rank {r} > {cap} debates a minute" for r in out["rank"]],
        ],
        default="no trigger: no new headline, signal crossing or shock",
    )
    return out[list(TRIGGER_COLUMNS)].astype(
        {k: v for k, v in TRIGGER_COLUMNS.items() if not v.startswith("datetime")}
    )


TRIGGER_KINDS = {
    "headline": "new headline",
    "technical score crossed": "signal crossing",
    "price shock": "price shock",
    "volume shock": "volume shock",
}


def trigger_kinds(triggers: pd.DataFrame) -> dict[str, int]:
    """How many triggered ticker-minutes each kind of trigger fired in (a minute may have two)."""
    reasons = triggers.loc[triggers["triggered"], "reasons"].map(json.loads)
    return {
        label: int(reasons.map(lambda rs, k=key: any(k in r for r in rs)).sum())
        for key, label in TRIGGER_KINDS.items()
    }


def calls_per_ticker_day(
    triggers: pd.DataFrame, rounds: int, headlines: int = 0, analysts: int = 4
) -> dict[str, float]:
    """Model calls a ticker-day costs with and without gating (for metadata and the README).

    With a model, each debated ticker-minute costs the analysts' reports, 2 x rounds arguments
    and a verdict; each new headline one score. Without gating every ticker-minute would.
    """
    per_minute = analysts + 2 * rounds + 1
    ticker_days = max(
        triggers.assign(day=triggers["minute"].dt.date).groupby(["ticker", "day"]).ngroups, 1
    )
    debated = int(triggers["debated"].sum())
    return {
        "debates_per_ticker_day": round(debated / ticker_days, 2),
        "model_calls_per_ticker_day_gated": round(
            (debated * per_minute + headlines) / ticker_days, 1
        ),
        "model_calls_per_ticker_day_ungated": round(
            (len(triggers) * per_minute + headlines) / ticker_days, 1
        ),
    }
