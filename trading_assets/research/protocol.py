"""The debate protocol over many ticker-minutes at once, with the rules agents or a model.

Round 1 (the `bull_case` and `bear_case` assets): each side opens from the bundle, in parallel.
Rounds 2..N (the `debate` asset): the bull answers the bear's last argument, then the bear
answers the bull's. Then the judge. With a model, each step is one batch across every debated
ticker-minute, so the client runs them concurrently; a failed answer becomes the recorded
fallback (an empty argument, or HOLD), never an exception that loses the batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel

from trading_assets.analysts.report import RULES_MODEL, prompt_hash
from trading_assets.research.bundle import Key
from trading_assets.research.debate import (
    AnalystBundle,
    Argument,
    Side,
    Verdict,
    argument_messages,
    fallback_argument,
    hold_verdict,
    rules_argument,
    rules_verdict,
    transcript_json,
    verdict_consistent,
    verdict_messages,
    with_events,
)
from trading_assets.schemas import conform, empty_frame

if TYPE_CHECKING:
    from resources.llm import LLMClient

ACCOUNTING_COLUMNS: dict[str, str] = {
    "model": "string",
    "prompt_hash": "string",
    "input_tokens": "int64",
    "output_tokens": "int64",
    "cached": "bool",
    "fallback": "bool",
    "fallback_reason": "string",
}
ARGUMENT_COLUMNS: dict[str, str] = {
    "minute": "datetime64[ns]",
    "ticker": "string",
    "side": "string",
    "round": "int64",
    "thesis": "string",
    "points": "string",  # JSON list
    "strength": "float64",
    "cited_analysts": "string",  # JSON list
    "cited_events": "string",  # JSON list of the past event ids the prompt cited ("[]" if none)
    "argument": "string",  # the whole Argument as JSON (what the debate reads back)
    **ACCOUNTING_COLUMNS,
}
DEBATE_COLUMNS: dict[str, str] = {
    "minute": "datetime64[ns]",
    "ticker": "string",
    "debated": "bool",
    "action": "string",  # BUY | SELL | HOLD
    "stance": "string",
    "confidence": "float64",
    "horizon_minutes": "int64",
    "consensus": "string",
    "rationale": "string",
    "hold_reason": "string",  # why not debated ("" when debated)
    "trigger_reasons": "string",  # JSON list
    "rounds": "int64",
    "transcript": "string",  # JSON list of arguments, in order (with cited past events)
    "cited_events": "string",  # JSON list: past event ids cited anywhere in the debate
    "consistent": "bool",  # the judge's action agrees with its stated stance
    **ACCOUNTING_COLUMNS,
    "calls": "int64",  # model answers behind the row (arguments of all rounds + the judge)
    "data_as_of": "datetime64[ns]",
}


@dataclass(frozen=True)
class Said:
    """One agent answer with its accounting."""

    value: BaseModel
    model: str
    prompt_hash: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached: bool = False
    fallback: bool = False
    fallback_reason: str = ""


def _ask(
    keys: Sequence[Key],
    messages: Mapping[Key, list[dict[str, str]]],
    schema: type[BaseModel],
    fallbacks: Mapping[Key, BaseModel],
    purpose: str,
    llm: LLMClient,
) -> dict[Key, Said]:
    from resources.llm import LLMRequest

    requests = [
        LLMRequest(
            messages=messages[k],
            schema=schema,
            fallback=fallbacks[k],
            purpose=f"{purpose} {k[0]} {k[1]}",
        )
        for k in keys
    ]
    return {
        k: Said(
            a.value, a.model, a.prompt_hash, a.input_tokens, a.output_tokens, a.cached,
            a.fallback, a.fallback_reason,
        )
        for k, a in zip(keys, llm.complete_many(requests), strict=True)
    }  # fmt: skip


def argue(
    side: Side,
    round_: int,
    bundles: Mapping[Key, AnalystBundle],
    opponent: Mapping[Key, Argument] | None = None,
    llm: LLMClient | None = None,
) -> dict[Key, Said]:
    """One side's argument in one round for every bundle."""
    keys = list(bundles)
    last = {k: (opponent or {}).get(k) for k in keys}
    if llm is None:
        return {
            k: Said(
                rules_argument(side, bundles[k], round_, last[k]),
                RULES_MODEL,
                prompt_hash(
                    {"agent": side.value, "round": round_, "bundle": bundles[k].model_dump(),
                     "opponent": last[k].model_dump() if last[k] else None}
                ),
            )
            for k in keys
        }  # fmt: skip
    messages = {k: argument_messages(side, bundles[k], round_, last[k]) for k in keys}
    fallbacks = {
        k: fallback_argument(side, round_, "no valid model answer; this side concedes the round")
        for k in keys
    }
    said = _ask(keys, messages, Argument, fallbacks, f"{side.value} r{round_}", llm)
    # A model may answer for the wrong side or round: the protocol, not the answer, decides;
    # the cited past events are the prompt's (the bundle's), whatever the model made of them.
    return {
        k: replace(
            s,
            value=with_events(
                s.value.model_copy(update={"side": side, "round": round_}),  # type: ignore[arg-type]
                bundles[k],
            ),
        )
        for k, s in said.items()
    }


def judge(
    bundles: Mapping[Key, AnalystBundle],
    transcripts: Mapping[Key, Sequence[Argument]],
    llm: LLMClient | None = None,
) -> dict[Key, Said]:
    keys = list(bundles)
    if llm is None:
        return {
            k: Said(
                rules_verdict(bundles[k], transcripts[k]),
                RULES_MODEL,
                prompt_hash(
                    {"agent": "judge", "bundle": bundles[k].model_dump(),
                     "transcript": transcript_json(transcripts[k])}
                ),
            )
            for k in keys
        }  # fmt: skip
    messages = {k: verdict_messages(bundles[k], transcripts[k]) for k in keys}
    fallbacks = {k: hold_verdict("no valid judge answer: HOLD") for k in keys}
    said = _ask(keys, messages, Verdict, fallbacks, "judge", llm)
    # An answer whose action contradicts its own stance is not acted on: HOLD, recorded.
    for k, s in said.items():
        verdict = s.value
        assert isinstance(verdict, Verdict)
        if not s.fallback and not verdict_consistent(verdict):
            reason = f"judge said {verdict.action} with a {verdict.stance} stance: held"
            said[k] = Said(
                hold_verdict(reason), s.model, s.prompt_hash, s.input_tokens, s.output_tokens,
                s.cached, True, reason,
            )  # fmt: skip
    return said


def _accounting(said: Sequence[Said]) -> dict[str, object]:
    fallbacks = [s.fallback_reason for s in said if s.fallback]
    return {
        "model": said[-1].model,
        "prompt_hash": said[-1].prompt_hash,
        "input_tokens": sum(s.input_tokens for s in said),
        "output_tokens": sum(s.output_tokens for s in said),
        "cached": all(s.cached for s in said),
        "fallback": bool(fallbacks),
        "fallback_reason": "; ".join(fallbacks),
    }


def argument_frame(said: Mapping[Key, Said]) -> pd.DataFrame:
    rows = []
    for (ticker, minute), s in said.items():
        arg = s.value
        assert isinstance(arg, Argument)
        rows.append(
            {
                "minute": minute,
                "ticker": ticker,
                "side": arg.side.value,
                "round": arg.round,
                "thesis": arg.thesis,
                "points": json.dumps(arg.points),
                "strength": arg.strength,
                "cited_analysts": json.dumps(arg.cited_analysts),
                "cited_events": json.dumps(arg.cited_events),
                "argument": arg.model_dump_json(),
                **_accounting([s]),
            }
        )
    return conform(pd.DataFrame(rows), ARGUMENT_COLUMNS) if rows else empty_frame(ARGUMENT_COLUMNS)


def arguments_from_frame(frame: pd.DataFrame) -> dict[Key, Said]:
    """Stored arguments (the `bull_case` / `bear_case` rows) back as answers with accounting."""
    return {
        (row.ticker, row.minute): Said(
            Argument.model_validate_json(row.argument), row.model, row.prompt_hash,
            int(row.input_tokens), int(row.output_tokens), bool(row.cached), bool(row.fallback),
            row.fallback_reason,
        )
        for row in frame.itertuples()
    }  # fmt: skip


def run_rounds(
    bundles: Mapping[Key, AnalystBundle],
    bull_open: Mapping[Key, Argument],
    bear_open: Mapping[Key, Argument],
    rounds: int,
    llm: LLMClient | None = None,
) -> tuple[dict[Key, list[Argument]], dict[Key, list[Said]]]:
    """Rounds 2..N after the openings: each side answers the other's last argument."""
    transcripts = {k: [bull_open[k], bear_open[k]] for k in bundles}
    said: dict[Key, list[Said]] = {k: [] for k in bundles}
    for round_ in range(2, rounds + 1):
        bear_last = {k: t[-1] for k, t in transcripts.items()}
        bull = argue(Side.BULL, round_, bundles, bear_last, llm)
        bull_last = {k: s.value for k, s in bull.items()}
        bear = argue(Side.BEAR, round_, bundles, bull_last, llm)  # type: ignore[arg-type]
        for k in bundles:
            transcripts[k] += [bull[k].value, bear[k].value]  # type: ignore[list-item]
            said[k] += [bull[k], bear[k]]
    return transcripts, said


# A ticker-minute the gate did not debate: HOLD, its reason (the trigger's hold_reason) aside.
_HOLD_ROW: dict[str, object] = {
    "debated": False,
    "action": "HOLD",
    "stance": "neutral",
    "confidence": 0.0,
    "horizon_minutes": 1,
    "consensus": "split",
    "rounds": 0,
    "transcript": "[]",
    "cited_events": "[]",
    "consistent": True,
    "model": RULES_MODEL,
    "prompt_hash": "",
    "input_tokens": 0,
    "output_tokens": 0,
    "cached": False,
    "fallback": False,
    "fallback_reason": "",
    "calls": 0,
}


def debate_frame(
    triggers: pd.DataFrame,
    transcripts: Mapping[Key, Sequence[Argument]],
    opening: Mapping[Key, Sequence[Said]],
    rounds_said: Mapping[Key, Sequence[Said]],
    verdicts: Mapping[Key, Said],
    rounds: int,
) -> pd.DataFrame:
    """DEBATE_COLUMNS: the verdict per debated ticker-minute; HOLD with the reason elsewhere.

    Built column-wise: every row starts as the HOLD row and only the debated few are filled in
    one by one (a dict per ticker-minute was most of this step's time)."""
    if triggers.empty:
        return empty_frame(DEBATE_COLUMNS)
    keys = list(zip(triggers["ticker"], triggers["minute"], strict=True))
    hold_reason = triggers["hold_reason"].tolist()
    columns: dict[str, list[object]] = {
        "minute": triggers["minute"].tolist(),
        "ticker": triggers["ticker"].tolist(),
        "trigger_reasons": triggers["reasons"].tolist(),
        "data_as_of": triggers["data_as_of"].tolist(),
        "rationale": list(hold_reason),
        "hold_reason": list(hold_reason),
        **{name: [value] * len(keys) for name, value in _HOLD_ROW.items()},
    }
    for i, key in enumerate(keys):
        if key not in verdicts:
            continue
        verdict = verdicts[key].value
        assert isinstance(verdict, Verdict)
        said = [*opening.get(key, ()), *rounds_said.get(key, ()), verdicts[key]]
        debated = {
            "debated": True,
            "action": verdict.action.value,
            "stance": verdict.stance.value,
            "confidence": verdict.confidence,
            "horizon_minutes": verdict.horizon_minutes,
            "consensus": verdict.consensus.value,
            "rationale": verdict.rationale,
            "hold_reason": "",
            "rounds": rounds,
            "transcript": transcript_json(transcripts[key]),
            "cited_events": json.dumps(
                list(dict.fromkeys(e for a in transcripts[key] for e in a.cited_events))
            ),
            "consistent": verdict_consistent(verdict),
            **_accounting(said),
            "calls": sum(0 if s.model == RULES_MODEL else 1 for s in said),
        }
        for name, value in debated.items():
            columns[name][i] = value
    return conform(pd.DataFrame(columns), DEBATE_COLUMNS)
