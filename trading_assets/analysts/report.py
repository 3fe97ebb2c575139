"""What every analyst says, whoever (rules or a model) says it.

`AnalystReport` is the structured answer an LLM must return (its JSON schema goes into the
request) and what the rules analysts build; `ANALYSIS_COLUMNS` is the row each analyst asset
stores per ticker and minute. Same schema either way, so a backtest can swap one for the other.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

RULES_VERSION = "1"
RULES_MODEL = f"rules-{RULES_VERSION}"

# A score inside +-NEUTRAL_BAND is neutral: the stance follows the score, not the other way round.
NEUTRAL_BAND = 0.15


class Stance(StrEnum):
    BULLISH = "bullish"
    BEARISH = "bearish"
    NEUTRAL = "neutral"


class AnalystReport(BaseModel):
    """One analyst's view of one ticker at one minute."""

    model_config = ConfigDict(extra="forbid")

    stance: Stance
    score: float = Field(ge=-1.0, le=1.0, description="-1 very bearish .. +1 very bullish")
    confidence: float = Field(ge=0.0, le=1.0)
    key_points: list[str] = Field(max_length=6, description="short, factual, most important first")
    narrative: str = Field(max_length=1200)

    @field_validator("key_points")
    @classmethod
    def _short_points(cls, points: list[str]) -> list[str]:
        return [p.strip()[:240] for p in points if p.strip()]


def stance_of(score: float) -> Stance:
    if score > NEUTRAL_BAND:
        return Stance.BULLISH
    if score < -NEUTRAL_BAND:
        return Stance.BEARISH
    return Stance.NEUTRAL


def neutral_report(reason: str) -> AnalystReport:
    """The safe fallback: no view, no confidence, and the reason in plain words."""
    return AnalystReport(
        stance=Stance.NEUTRAL, score=0.0, confidence=0.0, key_points=[reason], narrative=reason
    )


def prompt_hash(payload: Any) -> str:
    """A short content hash of what an agent was shown (messages, or the rules' feature dict)."""
    blob = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# One row per (analyst asset, ticker, minute). Lists and dicts are JSON text: the DuckDB IO
# manager stores them as VARCHAR and every reader (dbt, checks, the UI) can parse them.
ANALYSIS_COLUMNS: dict[str, str] = {
    "minute": "datetime64[ns]",  # partition key, naive NY
    "ticker": "string",
    "analyst": "string",  # technical | fundamental | sentiment | macro
    "stance": "string",  # bullish | bearish | neutral
    "score": "float64",  # [-1, 1]
    "confidence": "float64",  # [0, 1]
    "key_points": "string",  # JSON list of strings
    "narrative": "string",
    "features": "string",  # JSON object: the numbers the view was built from
    "model": "string",  # rules-<version> or the LLM's model name
    "prompt_hash": "string",
    "input_tokens": "int64",
    "output_tokens": "int64",
    "cached": "bool",  # answered from the LLM cache (always False for rules)
    "fallback": "bool",  # the model failed validation twice: the row is the neutral fallback
    "fallback_reason": "string",
    "data_as_of": "datetime64[ns]",  # latest input timestamp used (< minute + 1 min)
    "cited_events": "string",  # JSON list of past event ids the prompt cited ("[]" when none)
}
