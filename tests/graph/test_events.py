"""The events layer on the bundled real data: `market_events` and `event_context` in the graph.

The past is stored first (ingest + events for 2026-03-23, one run), then the
research job runs a few minutes of 2026-03-24 with headlines at 09:55, 09:56 and 10:01 plus an
injected rewrite of the 09:56 story by another source at 09:58.
"""

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    DagsterInstance,
    Definitions,
    define_asset_job,
)

from resources.llm import LLMResource
from resources.market_data import MarketDataResource
from resources.providers.replay import BUNDLED_REPLAY_DIR
from tests.fakes.openai_server import FakeOpenAIServer
from tests.graph.conftest import Graph, check_results, make_graph
from trading_assets.analysts.report import RULES_MODEL
from trading_assets.assets.ingest import MINUTES
from trading_assets.events.context import split_tickers
from trading_assets.partitions import session_bounds

EVENTS_ONLY = define_asset_job(
    "events_only",
    selection=AssetSelection.assets("bars", "news", "market_events"),
    partitions_def=MINUTES,
)
ORIGINAL = "The Nasdaq Turns Negative For March 24th As Tech Sells Off Hard"
REWRITE = "The Nasdaq Turns Negative For March 24th As Tech Sells Off Very Hard"
FIRST, LAST = "2026-03-24|09:54", "2026-03-24|10:02"
EVENT_CHECK_NAMES = (
    "market_events_valid",
    "market_events_deduplicated",
    "event_context_point_in_time",
    "event_context_embeddings",
)


def replay_with_rewrite(tmp: Path) -> Path:
    """The bundled data plus the 09:56 story rewritten by another source at 09:58."""
    folder = tmp / "replay"
    shutil.copytree(BUNDLED_REPLAY_DIR, folder)
    news_csv = next((folder / "news").glob("*.csv"))
    news = pd.read_csv(news_csv)
    row = {c: "" for c in news.columns}
    row.update({"published_utc": "2026-03-24T13:58:05Z", "ticker": "QQQ", "source": "Reuters",
                "headline": REWRITE, "url": "https://example.invalid/rewrite"})  # fmt: skip
    pd.concat([news, pd.DataFrame([row])]).to_csv(news_csv, index=False)
    return folder


def events_graph(tmp: Path, llm: LLMResource | None = None) -> Graph:
    graph = make_graph(tmp, replay_with_rewrite(tmp), llm=llm)
    return Graph(Definitions.merge(graph.defs, Definitions(jobs=[EVENTS_ONLY])), graph.warehouse)


@pytest.fixture(scope="module")
def events_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Graph, Any]]:
    graph = events_graph(tmp_path_factory.mktemp("events"))
    with DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        past = graph.run(instance, "2026-03-23|09:30", "2026-03-23|15:59", job=EVENTS_ONLY.name)
        assert past.success
        middle = time.perf_counter()
        result = graph.run(instance, FIRST, LAST, job="research_job")
        print(f"past {middle - started:.1f}s, research {time.perf_counter() - middle:.1f}s")
        yield graph, result


def window_rows(graph: Graph, table: str) -> pd.DataFrame:
    return graph.query(
        f"SELECT * FROM trading.{table} WHERE minute >= ? AND minute < ? ORDER BY ALL",
        [pd.Timestamp("2026-03-24 09:54"), pd.Timestamp("2026-03-24 10:03")],
    )


def test_research_job_stores_events_and_context_with_green_checks(events_run) -> None:
    graph, result = events_run
    assert result.success
    checks = check_results(result)
    for name in EVENT_CHECK_NAMES:
        assert checks[name].passed, (name, checks[name].description)
    events = window_rows(graph, "market_events")
    assert len(events) >= 4 and (events["model"] == RULES_MODEL).all()
    assert not events["fallback"].any()
    universe = set(MarketDataResource(replay_dir=str(BUNDLED_REPLAY_DIR)).universe())
    assert all(t in universe for v in events["tickers"] for t in split_tickers(v))
    context = window_rows(graph, "event_context")
    assert len(context) > 0 and context["event_id"].isin(events["event_id"]).all()
    metadata = result.asset_materializations_for_node("event_context")[-1].metadata
    assert metadata["embedding_model"].value == "wordllama-l2-supercat-256"
    assert metadata["events_with_context"].value > 0


def test_a_rewrite_by_another_source_is_collapsed_into_the_first_event(events_run) -> None:
    graph, _ = events_run
    events = window_rows(graph, "market_events")
    first = events[events["headline"] == ORIGINAL]
    rewrite = events[events["headline"] == REWRITE]
    assert len(first) == 1 and len(rewrite) == 1
    assert first["duplicate_of"].iloc[0] == ""
    assert rewrite["duplicate_of"].iloc[0] == first["event_id"].iloc[0]
    assert rewrite["sources"].iloc[0] == "Reuters"
    context = window_rows(graph, "event_context")
    assert rewrite["event_id"].iloc[0] not in set(context["event_id"])  # a repeat gets none


def test_context_cites_only_events_whose_impact_window_ended_before_the_partition(
    events_run,
) -> None:
    graph, _ = events_run
    context = window_rows(graph, "event_context")
    assert (context["neighbour_minute"] < pd.Timestamp("2026-03-24")).all()  # not today's
    assert (context["impact_end"] <= context["minute"]).all()
    stored = graph.query("SELECT event_id, minute FROM trading.market_events")
    cited = context.merge(
        stored, left_on="neighbour_event_id", right_on="event_id", suffixes=("", "_n")
    )
    assert len(cited) == len(context)  # every neighbour is a stored event
    for row in cited.itertuples():
        close = session_bounds(pd.Timestamp(row.minute_n).date())[1]
        assert close <= row.minute and row.impact_end == close
    assert context["ret_close"].notna().all()
    assert context.groupby(["event_id", "ticker"])["rank"].max().le(5).all()


def test_lineage_runs_news_to_market_events_to_event_context(events_run) -> None:
    graph, _ = events_run
    repo = graph.defs.get_repository_def()
    graph_view = repo.asset_graph
    assert AssetKey("news") in graph_view.get(AssetKey("market_events")).parent_keys
    assert AssetKey("market_events") in graph_view.get(AssetKey("event_context")).parent_keys
    assert AssetKey("bars") in graph_view.get(AssetKey("event_context")).parent_keys
    checks = {k for k in repo.asset_checks_defs_by_key}
    assert AssetCheckKey(AssetKey("event_context"), "event_context_point_in_time") in checks


# --- a model backend ---------------------------------------------------------------------------


def event_facts(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The FACTS and the quoted headline of a MarketEvent request."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    facts = json.loads(re.search(r"FACTS \(JSON\): (\{.*\})\n", user).group(1))
    headline = json.loads(re.search(r"\[1\] (\".*\")", user).group(1))
    return facts, headline


def event_answer(body: dict[str, Any]) -> Any:
    facts, headline = event_facts(body)
    if "Nasdaq Turns Negative" not in headline:
        return "this is not json"
    return {
        "minute": facts["minute"],
        "event_id": facts["event_id"],
        "tickers": ["QQQ", "ZZZZ"],  # ZZZZ is not in the universe
        "event_type": "analyst_rating",
        "urgency": 9,
        "relevant": True,
        "relevance_reason": "tech selloff",
        "headline": headline,
        "news_ids": facts["news_ids"],
        "sources": facts["sources"],
        "duplicate_of": "",
        "published_at": facts["published_at"],
        "model": "event-model",
        "flagged": False,
    }


def test_a_model_classifies_events_and_invalid_answers_fall_back_to_the_rules(
    tmp_path: Path,
) -> None:
    with FakeOpenAIServer(answer=event_answer, api_key="sk-test-secret") as server:
        llm = LLMResource(
            provider="openai",
            base_url=server.base_url,
            model="event-model",
            api_key="sk-test-secret",
            timeout_s=5.0,
            cache_database=str(tmp_path / "warehouse.duckdb"),
        )
        graph = events_graph(tmp_path, llm)
        with DagsterInstance.ephemeral() as instance:
            result = graph.run(instance, "2026-03-24|09:55", "2026-03-24|09:56", EVENTS_ONLY.name)
        assert result.success
        assert server.chat_count >= 3  # one valid answer, one invalid answered twice (repair)
    events = graph.query("SELECT * FROM trading.market_events ORDER BY minute")
    assert len(events) == 2
    good = events[events["headline"] == ORIGINAL].iloc[0]
    assert good["model"] == "event-model" and not good["fallback"]
    assert good["event_type"] == "analyst_rating" and good["urgency"] == 9
    assert good["tickers"] == "QQQ" and good["dropped_tickers"] == "ZZZZ"
    bad = events[events["headline"] != ORIGINAL].iloc[0]
    assert bad["fallback"] and bad["model"] == RULES_MODEL
    assert re.search("invalid|json", bad["fallback_reason"], re.IGNORECASE)
    assert bad["event_type"] == "macro"  # the rules' answer, kept
    checks = check_results(result)
    assert checks["market_events_valid"].passed
