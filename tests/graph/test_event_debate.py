"""The event brief through Dagster: a news-triggered debate cites similar past events.

A fresh warehouse gets one real session of history (ingest + events for 2026-03-23), then the
research job runs a short real window of 2026-03-24 around the 11:02 META headline ("CoreWeave
Comes With 'Inherent Risks.' Why BofA Upgraded the Stock to Buy."). The debate for that
ticker-minute must cite past events (all from the earlier session, so their impact windows had
closed) with their measured impact, and so must its arguments and the sentiment/fundamental rows.
"""

import json

import pytest
from dagster import AssetSelection, DagsterInstance, Definitions, define_asset_job

from tests.graph.conftest import Graph, make_graph
from trading_assets.assets.ingest import MINUTES

HISTORY_JOB = define_asset_job(
    "event_history_job", selection=AssetSelection.groups("ingest", "events"), partitions_def=MINUTES
)
PAST_SESSION = "2026-03-23"
FIRST, LAST = "2026-03-24|11:00", "2026-03-24|11:04"
TICKER, MINUTE = "META", "2026-03-24 11:02"


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Graph:
    base = make_graph(tmp_path_factory.mktemp("events"))
    graph = Graph(Definitions.merge(base.defs, Definitions(jobs=[HISTORY_JOB])), base.warehouse)
    with DagsterInstance.ephemeral() as instance:
        history = graph.run(
            instance, f"{PAST_SESSION}|09:30", f"{PAST_SESSION}|15:59", job=HISTORY_JOB.name
        )
        assert history.success
        assert graph.run(instance, FIRST, LAST, job="research_job").success
    return graph


def test_a_news_triggered_debate_cites_past_events_with_their_measured_impact(graph) -> None:
    row = graph.query(
        "SELECT * FROM trading.debate WHERE ticker = ? AND minute = ?::TIMESTAMP",
        [TICKER, MINUTE],
    ).iloc[0]
    assert row["debated"] and "headline" in row["trigger_reasons"]
    cited = json.loads(row["cited_events"])
    assert cited
    context = graph.query(
        "SELECT * FROM trading.event_context WHERE ticker = ? AND minute = ?::TIMESTAMP",
        [TICKER, MINUTE],
    )
    assert set(cited) <= set(context["neighbour_event_id"])
    # Every cited precedent ended (its session closed) before the partition started.
    assert (context["impact_end"] <= context["minute"]).all()
    transcript = json.loads(row["transcript"])
    assert len(transcript) == 4
    for turn in transcript:
        assert turn["cited_events"] == cited
        assert len(turn["event_evidence"]) == len(cited)
        for event_id, line in zip(cited, turn["event_evidence"], strict=True):
            assert line.startswith(f"[{event_id}] {PAST_SESSION} ")
            assert " 15m, " in line and " 60m, " in line and " to close, volume " in line
    # The measured numbers are the context rows' own, as percentages.
    first = context.set_index("neighbour_event_id").loc[cited[0]]
    ret_60m = round(first["ret_60m"] * 100, 1) or 0.0
    assert f"{ret_60m:+.1f}% 60m" in transcript[0]["event_evidence"][0]


def test_the_openings_and_the_news_analysts_record_the_same_citations(graph) -> None:
    debate = graph.query(
        "SELECT cited_events FROM trading.debate WHERE ticker = ? AND minute = ?::TIMESTAMP",
        [TICKER, MINUTE],
    )["cited_events"].iloc[0]
    for table in ("bull_case", "bear_case", "sentiment_analysis", "fundamental_analysis"):
        got = graph.query(
            f"SELECT cited_events FROM trading.{table} WHERE ticker = ? AND minute = ?::TIMESTAMP",
            [TICKER, MINUTE],
        )["cited_events"]
        assert got.tolist() == [debate], table
    sentiment = graph.query(
        "SELECT key_points FROM trading.sentiment_analysis WHERE ticker = ? "
        "AND minute = ?::TIMESTAMP",
        [TICKER, MINUTE],
    )["key_points"].iloc[0]
    assert any(p.startswith("events: new ") for p in json.loads(sentiment))
    # Minutes and tickers without a new event cite nothing.
    quiet = graph.query(
        "SELECT DISTINCT cited_events FROM trading.technical_analysis "
        "UNION SELECT DISTINCT cited_events FROM trading.macro_analysis"
    )["cited_events"]
    assert quiet.tolist() == ["[]"]
