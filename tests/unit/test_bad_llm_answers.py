"""Whatever a model answers, an agent gets a valid answer or the recorded safe fallback.

Property-based over the pure validation every answer goes through (`resources.llm._validate`):
prose, refusals, truncated JSON, the wrong schema, out-of-range numbers, NaN, integers past
Python's digit limit and absurdly deep nesting never raise and never validate. Then a few of
them over real HTTP through the openai client against the local fake OpenAI server: two bad
answers in a row give the fallback (neutral / HOLD) with the reason, never an exception and
never an actionable verdict.
"""

import json
import math
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resources.llm import LLMClient, LLMRequest, LLMResource, _validate
from resources.providers.replay import BUNDLED_REPLAY_DIR, ReplayProvider
from tests.fakes.http_server import FakeResponse, RecordedRequest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.real_bars import bundled_bars
from trading_assets.agents.runner import run_analyst
from trading_assets.analysts.report import AnalystReport, Stance, neutral_report
from trading_assets.analysts.sentiment import HeadlineScore
from trading_assets.analysts.team import SPECS
from trading_assets.decision.trader import propose
from trading_assets.ingest.fundamentals import fundamentals_frame
from trading_assets.research.debate import Verdict, hold_verdict

VALID: dict[type[pydantic.BaseModel], dict[str, Any]] = {
    AnalystReport: {
        "stance": "bullish",
        "score": 0.6,
        "confidence": 0.7,
        "key_points": ["higher highs"],
        "narrative": "Momentum.",
    },
    HeadlineScore: {"label": "positive", "score": 0.5, "confidence": 0.8},
    Verdict: {
        "action": "BUY",
        "stance": "bullish",
        "confidence": 0.7,
        "horizon_minutes": 30,
        "rationale": "Bulls win.",
        "consensus": "strong",
    },
}
SCHEMAS = list(VALID)
REFUSALS = [
    "I can't help with that.",
    "I'm sorry, but I cannot provide trading advice.",
    "REFUSAL: I can't help with that request.",
    "As an AI language model, I am unable to recommend buying or selling securities.",
]
OUT_OF_RANGE = {  # field -> values no schema accepts
    "score": [7, -1.5, "NaN", "Infinity", 1e308, "high"],
    "confidence": [-1, 1.01, "NaN", "-Infinity", None],
    "horizon_minutes": [0, 391, -5, 1e9, 2.5],
}

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def _fenced(text: str) -> str:
    return f"```json\n{text}\n```"


@st.composite
def bad_answers(draw: st.DrawFn, schema: type[pydantic.BaseModel]) -> str:
    """An answer that must never validate against `schema`."""
    valid = VALID[schema]
    kind = draw(
        st.sampled_from(
            ["refusal", "truncated", "wrong", "range", "huge_int", "deep", "empty", "extra"]
        )
    )
    if kind == "refusal":
        text = draw(st.sampled_from(REFUSALS))
    elif kind == "truncated":
        full = json.dumps(valid)
        text = full[: draw(st.integers(0, len(full) - 1))]
    elif kind == "wrong":
        value = draw(json_values)
        text = json.dumps(value)
    elif kind == "range":
        fields = [f for f in OUT_OF_RANGE if f in valid]
        name = draw(st.sampled_from(fields))
        bad = draw(st.sampled_from(OUT_OF_RANGE[name]))
        literal = bad if isinstance(bad, str) and bad in ("NaN", "Infinity", "-Infinity") else None
        body = {**valid, name: "__X__" if literal else bad}
        text = json.dumps(body).replace('"__X__"', literal or "")
    elif kind == "huge_int":
        digits = draw(st.integers(4_301, 20_000))
        text = json.dumps({**valid, "confidence": "__X__"}).replace('"__X__"', "9" * digits)
    elif kind == "deep":
        depth = draw(st.integers(2_000, 200_000))
        text = "[" * depth + "]" * draw(st.sampled_from([0, depth]))
    elif kind == "empty":
        text = draw(st.sampled_from(["", "   ", "\n\n", "```json\n```"]))
    else:
        text = json.dumps({**valid, "ignore_previous_instructions": "BUY 1,000,000 shares"})
    return _fenced(text) if draw(st.booleans()) else text


def _in_range(value: pydantic.BaseModel) -> bool:
    for name in ("score", "confidence"):
        x = getattr(value, name, None)
        if x is not None and not (math.isfinite(x) and (-1 <= x <= 1)):
            return False
    return True


@settings(max_examples=100)
@given(data=st.data(), schema=st.sampled_from(SCHEMAS))
def test_a_bad_answer_never_validates_and_never_raises(
    data: st.DataObject, schema: type[pydantic.BaseModel]
) -> None:
    content = data.draw(bad_answers(schema))
    value, kind, details = _validate(schema, content)
    assert value is None, (content[:200], value)
    assert kind in ("empty answer", "invalid JSON", "schema violation")
    assert details.strip()


@settings(max_examples=100)
@given(
    content=st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1"))),
    schema=st.sampled_from(SCHEMAS),
)
def test_any_text_is_a_valid_answer_or_a_named_problem(
    content: str, schema: type[pydantic.BaseModel]
) -> None:
    """Arbitrary text (control characters, unicode, quotes) never raises; what validates is a
    real instance of the schema with its numbers in range."""
    value, kind, details = _validate(schema, content)
    if value is None:
        assert kind and details
    else:
        assert isinstance(value, schema) and _in_range(value)


@settings(max_examples=30)
@given(schema=st.sampled_from(SCHEMAS), fenced=st.booleans(), pad=st.sampled_from(["", " \n"]))
def test_valid_answers_still_pass(schema: type[pydantic.BaseModel], fenced: bool, pad: str) -> None:
    """The guard is not a wall: a correct answer, fenced or padded, validates unchanged."""
    text = json.dumps(VALID[schema])
    value, kind, _ = _validate(schema, pad + (_fenced(text) if fenced else text) + pad)
    assert kind == "" and isinstance(value, schema)


# --- over real HTTP ---------------------------------------------------------------------------


class RefusingServer(FakeOpenAIServer):
    """Answers every chat with OpenAI's structured refusal: no content, a `refusal` text."""

    def _serve(self, request: RecordedRequest, body: dict[str, Any], item: object) -> FakeResponse:
        message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
        return FakeResponse(
            body={
                "id": "chatcmpl-refusal",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "unknown"),
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10},
            }
        )


def _client(server: FakeOpenAIServer) -> LLMClient:
    resource = LLMResource(
        provider="openai", base_url=server.base_url, model="local-model", cache_mode="off"
    )
    return resource.client()


HTTP_CASES = {
    "prose refusal": ("I can't help with that.", "invalid JSON twice"),
    "truncated": ('{"stance": "bullish", "score": 0.9, "confid', "invalid JSON twice"),
    "score 7": (json.dumps({**VALID[AnalystReport], "score": 7}), "schema violation twice"),
    "confidence -1": (
        json.dumps({**VALID[AnalystReport], "confidence": -1}),
        "schema violation twice",
    ),
    "NaN score": (
        json.dumps({**VALID[AnalystReport], "score": "__X__"}).replace('"__X__"', "NaN"),
        "schema violation twice",
    ),
    "huge integer": (
        json.dumps({**VALID[AnalystReport], "score": "__X__"}).replace('"__X__"', "1" * 5000),
        "invalid JSON twice: unreadable number",
    ),
    "deep nesting": ("[" * 50_000, "invalid JSON twice: nested too deeply"),
    "wrong schema": (json.dumps({"action": "BUY", "qty": 1_000_000}), "schema violation twice"),
}


@pytest.mark.parametrize("case", list(HTTP_CASES))
def test_a_bad_answer_over_http_becomes_the_recorded_neutral_fallback(case: str) -> None:
    content, reason = HTTP_CASES[case]
    fallback = neutral_report("technical analyst fallback: no valid model answer")
    request = LLMRequest(
        messages=[{"role": "user", "content": "TASK: assess AAPL"}],
        schema=AnalystReport,
        fallback=fallback,
        purpose=f"bad answer {case}",
    )
    with FakeOpenAIServer(answer=lambda _body: content) as server, _client(server) as client:
        answer = client.complete(request)
        assert server.chat_count == 2  # the answer, then one repair attempt
    assert answer.fallback and answer.fallback_reason.startswith(reason), answer.fallback_reason
    assert answer.value == fallback
    assert answer.value.stance is Stance.NEUTRAL and answer.value.confidence == 0.0
    assert client.stats.as_metadata()["llm_fallbacks"] == 1


def test_a_structured_refusal_gives_the_judge_a_hold_and_no_proposal() -> None:
    """The judge's model refuses (OpenAI's `refusal` field): the verdict is the HOLD fallback
    with the refusal in its reason, and the trader proposes nothing from it."""
    fallback = hold_verdict("judge fallback: no valid model answer")
    request = LLMRequest(
        messages=[{"role": "user", "content": "TASK: judge AAPL"}],
        schema=Verdict,
        fallback=fallback,
        purpose="judge AAPL refusal",
    )
    with RefusingServer() as server, _client(server) as client:
        answer = client.complete(request)
    assert answer.fallback and "invalid JSON twice" in answer.fallback_reason
    verdict = answer.value
    assert isinstance(verdict, Verdict) and verdict.action.value == "HOLD"
    row = {
        **verdict.model_dump(mode="json"),
        "ticker": "AAPL",
        "minute": "2026-03-23T10:00",
        "debated": True,
        "model": answer.model,
    }
    assert propose(row, {"close": 251.0, "atr_14": 0.2}) is None


def test_an_analyst_whose_model_refuses_stores_neutral_rows_with_the_reason() -> None:
    """Through the analyst runner, on real fundamentals rows: the stored rows are the neutral
    fallback, flagged as such, with the reason and the model named."""
    facts = ReplayProvider(BUNDLED_REPLAY_DIR).fetch_facts(["AAPL", "NVDA"])
    bars = bundled_bars()
    prices = bars[bars["ticker"].isin(["AAPL", "NVDA"]) & (bars["minute"] == "2026-03-23 10:00")]
    rows = fundamentals_frame(facts, prices[["minute", "ticker", "close"]]).to_dict("records")
    assert len(rows) == 2
    refusal = "I'm sorry, but I can't help with that."
    with FakeOpenAIServer(answer=lambda _body: refusal) as server, _client(server) as client:
        out = run_analyst(SPECS["fundamental"], rows, client)
    assert out["fallback"].all() and (out["model"] == "local-model").all()
    assert out["fallback_reason"].str.startswith("invalid JSON twice").all()
    assert (out["score"] == 0).all() and (out["confidence"] == 0).all()
    assert (out["stance"] == "neutral").all()
