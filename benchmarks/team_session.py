"""One bundled session through the analyst team and the debate, as one run.

    .venv/bin/python benchmarks/team_session.py [--session 2026-03-23] [--skip-model]

1. the `rules` backend (the default): wall-clock seconds for the session;
2. the same session with a model over HTTP: the real `openai` client against the local
   OpenAI-compatible test server (answers instantly, so the time is ours, not a model's):
   model calls and prompt/answer sizes per ticker-day with gating, what they would be without
   it, and a second materialization of the same partitions (cache: zero calls).

Token figures count the characters actually sent and received / 4 (the usual rule of thumb for
English with GPT tokenizers); cost uses gpt-4o-mini's list price (USD 0.15 / 0.60 per million
input / output tokens). GX's ~13 s import is paid before timing.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from dagster import DagsterInstance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers

from tests.fakes.openai_server import FakeOpenAIServer
from tests.graph.test_research_job import desk_answer, graph_with, model_llm
from trading_assets.checks.expectations import _context

PRICE_IN, PRICE_OUT = 0.15, 0.60  # USD per million tokens (gpt-4o-mini list price)


def run(graph, instance, session: str) -> tuple[float, object]:
    started = time.perf_counter()
    result = graph.run(instance, f"{session}|09:30", f"{session}|15:59", job="research_job")
    elapsed = time.perf_counter() - started
    assert result.success
    return elapsed, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--session", default="2026-03-23")
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()
    _context()

    with tempfile.TemporaryDirectory() as tmp, DagsterInstance.ephemeral() as instance:
        graph = graph_with(Path(tmp))
        seconds, _ = run(graph, instance, args.session)
        triggers = graph.query("SELECT * FROM trading.debate_triggers")
        ticker_days = triggers["ticker"].nunique()
        debated = int(triggers["debated"].sum())
        print(f"rules backend: session {args.session} through the debate in {seconds:.1f} s")
        print(
            f"  {len(triggers)} ticker-minutes, {int(triggers['triggered'].sum())} triggered, "
            f"{debated} debated ({debated / ticker_days:.1f} a ticker-day)"
        )
    if args.skip_model:
        return

    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeOpenAIServer(answer=desk_answer, api_key="sk-test-secret") as server,
        DagsterInstance.ephemeral() as instance,
    ):
        graph = graph_with(Path(tmp), model_llm(server, Path(tmp) / "warehouse.duckdb"))
        first_s, _ = run(graph, instance, args.session)
        bodies = server.chat_requests()
        sent = sum(len(json.dumps(b["messages"])) for b in bodies) / 4
        answered = sum(len(json.dumps(desk_answer(b))) for b in bodies) / 4
        calls = len(bodies)
        by_kind: dict[str, int] = {}
        for b in bodies:
            name = b["response_format"]["json_schema"]["name"]
            by_kind[name] = by_kind.get(name, 0) + 1
        triggers = graph.query("SELECT * FROM trading.debate_triggers")
        ticker_days = triggers["ticker"].nunique()
        per_call = calls and (sent / calls, answered / calls)
        ungated = len(triggers) * (4 + 5)  # 4 analysts + 2 rounds x 2 sides + judge, every minute
        second_s, _ = run(graph, instance, args.session)
        rerun_calls = len(server.chat_requests()) - calls
        cost = (sent * PRICE_IN + answered * PRICE_OUT) / 1e6
        print(f"model over HTTP (local server): first run {first_s:.1f} s, rerun {second_s:.1f} s")
        print(f"  calls: {calls} ({json.dumps(by_kind)}); rerun made {rerun_calls} calls")
        print(
            f"  per ticker-day with gating: {calls / ticker_days:.0f} calls, "
            f"~{sent / ticker_days:,.0f} input + ~{answered / ticker_days:,.0f} output tokens, "
            f"~USD {cost / ticker_days:.3f} at gpt-4o-mini prices"
        )
        call_usd = (per_call[0] * PRICE_IN + per_call[1] * PRICE_OUT) / 1e6
        print(
            f"  per call ~{per_call[0]:,.0f} input / ~{per_call[1]:,.0f} output tokens; "
            f"without gating: {ungated / ticker_days:,.0f} calls a ticker-day "
            f"(~USD {ungated / ticker_days * call_usd:.2f})"
        )


if __name__ == "__main__":
    main()
