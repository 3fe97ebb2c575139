"""The events layer's wiring helpers and check rules, without Dagster runs."""

import json

import pandas as pd

from resources.llm import LLMAnswer
from trading_assets.analysts.report import RULES_MODEL
from trading_assets.assets.events import MARKET_EVENT_COLUMNS, _rules_event, merge_answer
from trading_assets.checks.events import (
    context_problems,
    duplicate_problems,
    embedding_problems,
    event_problems,
)
from trading_assets.events.extract import MarketEvent

MINUTE = pd.Timestamp("2026-03-24 09:56")


def rules_row(**overrides: object) -> dict[str, object]:
    row = {
        "minute": MINUTE,
        "event_id": "e1",
        "tickers": "QQQ",
        "event_type": "macro",
        "urgency": 4,
        "relevant": True,
        "relevance_reason": "no include list",
        "headline": "The Nasdaq Turns Negative As Tech Sells Off",
        "news_ids": json.dumps(["n1"]),
        "sources": "24/7 Wall St.",
        "duplicate_of": "",
        "published_at": MINUTE + pd.Timedelta(seconds=12),
        "model": RULES_MODEL,
        "flagged": False,
        "fallback": False,
        "fallback_reason": "",
        "dropped_tickers": "",
    }
    return row | overrides


def answer(value: MarketEvent, fallback: bool = False, reason: str = "") -> LLMAnswer:
    return LLMAnswer(value, "m", "0" * 64, False, fallback, reason, 1, 1, 0.0, 1.0, 1)


def test_a_model_answer_keeps_identity_and_drops_tickers_outside_the_universe() -> None:
    row = rules_row()
    value = _rules_event(row).model_copy(
        update={
            "tickers": ["QQQ", "NVDA", "ZZZZ"],
            "event_type": "earnings",
            "urgency": 8,
            "minute": MINUTE + pd.Timedelta(hours=1),  # a model cannot move an event in time
            "event_id": "other",
        }
    )
    merged = merge_answer(row, answer(value), frozenset({"QQQ", "NVDA", "SPY"}))
    assert set(merged) == set(MARKET_EVENT_COLUMNS)
    assert merged["tickers"] == "NVDA,QQQ" and merged["dropped_tickers"] == "ZZZZ"
    assert (merged["event_type"], merged["urgency"], merged["model"]) == ("earnings", 8, "m")
    assert merged["minute"] == MINUTE and merged["event_id"] == "e1"


def test_an_invalid_answer_keeps_the_rules_row_and_says_so() -> None:
    row = rules_row()
    merged = merge_answer(row, answer(_rules_event(row), True, "invalid JSON twice"), frozenset())
    assert merged["fallback"] and merged["fallback_reason"] == "invalid JSON twice"
    assert merged["model"] == RULES_MODEL and merged["event_type"] == "macro"


def test_a_model_naming_only_outside_tickers_keeps_the_rules_tickers() -> None:
    row = rules_row()
    value = _rules_event(row).model_copy(update={"tickers": ["ZZZZ"]})
    merged = merge_answer(row, answer(value), frozenset({"QQQ"}))
    assert merged["tickers"] == "QQQ" and merged["dropped_tickers"] == "ZZZZ"


def test_event_problems_flag_tickers_outside_the_universe() -> None:
    frame = pd.DataFrame([rules_row(), rules_row(event_id="e2", tickers="QQQ,ZZZZ")])
    problems = event_problems(frame, {"QQQ"})
    assert len(problems) == 1 and "ZZZZ" in problems[0]


def test_duplicate_problems_find_an_uncollapsed_story_and_a_later_root() -> None:
    frame = pd.DataFrame(
        [
            rules_row(),
            rules_row(event_id="e2", headline="THE NASDAQ turns negative as tech sells off!"),
            rules_row(event_id="e3", duplicate_of="late"),
            rules_row(event_id="e4", duplicate_of="absent"),
        ]
    )
    roots = pd.DataFrame(
        [{"event_id": "late", "minute": MINUTE + pd.Timedelta(minutes=5), "duplicate_of": ""}]
    )
    problems, unresolved = duplicate_problems(frame, roots)
    assert any("several first events" in p for p in problems)
    assert any("arrived later" in p for p in problems)
    assert unresolved == 1


def context_row(**overrides: object) -> dict[str, object]:
    row = {
        "minute": MINUTE,
        "event_id": "e1",
        "ticker": "QQQ",
        "rank": 1,
        "neighbour_event_id": "p1",
        "neighbour_minute": pd.Timestamp("2026-03-23 11:00"),
        "similarity": 0.5,
        "impact_end": pd.Timestamp("2026-03-23 16:00"),
        "embedding_dim": 256,
        "embedding_norm": 1.0,
    }
    return row | overrides


def test_context_problems_catch_a_neighbour_from_the_same_session() -> None:
    ok = pd.DataFrame([context_row()])
    assert context_problems(ok) == []
    same_day = pd.DataFrame(
        [
            context_row(
                neighbour_minute=pd.Timestamp("2026-03-24 09:40"),
                impact_end=pd.Timestamp("2026-03-24 09:50"),  # a wrongly recorded end
            )
        ]
    )
    problems = context_problems(same_day)
    assert any("session closes after" in p for p in problems)


def test_embedding_problems_catch_a_wrong_dimension_and_norm() -> None:
    assert embedding_problems(pd.DataFrame([context_row()])) == []
    bad = pd.DataFrame([context_row(embedding_dim=384, embedding_norm=0.9)])
    problems = embedding_problems(bad)
    assert any("dimensions" in p for p in problems) and any("unit-norm" in p for p in problems)
