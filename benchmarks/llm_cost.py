"""LLM cost: calls, tokens and dollars per ticker-day with gating on and off; a warm re-run.

    .venv/bin/python benchmarks/llm_cost.py            # the figures in BENCHMARKS.md
    .venv/bin/python benchmarks/llm_cost.py --quick    # 09:30-10:29 gated, a 10-minute window off

`research_job` (ingest .. events .. gate .. analysts .. researchers .. debate) with the model
backend: the real `openai` client over HTTP to the tests' local OpenAI-compatible server on
127.0.0.1 (no internet, no key; it answers instantly with short schema-valid JSON, so times are
ours, not a model's). Prices are the LLM resource's (`input_usd_per_mtok`/`output_usd_per_mtok`,
gpt-4o-mini list price by default) through `resources.llm.token_cost`.

1. Gating on: the default run config over the whole session (2026-03-23), then the same
   partitions again: the warm cache (`trading.llm_cache`) must answer everything (0 calls).
2. Gating off, by run config: `analyst_team.llm_scope='all'` (every ticker-minute gets the
   four model reports) and `debate_triggers.enabled=False` (every ticker-minute is debated,
   uncapped: the bull/bear openings, the rebuttal rounds and the judge). It
   runs over a window (default 10:00-10:29) after step 1 in the same warehouse (so indicators
   have their history) with a fresh cache file (so every answer is a new call), then again warm.
   Per ticker-day it is scaled from the window's calls per analysed / debated ticker-minute to
   every ticker-minute of the session; the per-headline layers (market events, headline
   scores) do not depend on the gate and are taken from step 1.

Tokens are counted two ways: characters sent (the chat messages as JSON) and received / 4, the
usual rule of thumb for English with GPT tokenizers, which the USD columns use; and what the
LLM resource itself recorded (the server's `usage`; this test server counts words, so that
column is a lower bound). A real server's prompt count also includes the response schema.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from dagster import DagsterInstance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' helpers

from resources.llm import LLMResource, token_cost  # noqa: E402
from tests.fakes.openai_server import FakeOpenAIServer  # noqa: E402
from tests.graph.conftest import QUIET, Graph, make_graph  # noqa: E402
from tests.graph.test_research_job import desk_answer, model_llm  # noqa: E402
from trading_assets.checks.expectations import _context  # noqa: E402
from trading_assets.partitions import MinuteSpan  # noqa: E402

SESSION_MINUTES = 390
GATE_OFF = {"enabled": False}
# layer -> does it scale with the ticker-minutes analysed (else with the headlines)
LAYERS = {
    "market_events: event classification": False,
    "analyst_team: headline scores": False,
    "analyst_team: analyst reports": True,
    "researchers: bull/bear openings": True,
    "debate: rounds 2+": True,
    "debate: judge": True,
}
_ROUND = re.compile(r"Round (\d+): write the")


def layer_of(body: dict[str, Any]) -> str:
    name = body["response_format"]["json_schema"]["name"]
    if name == "MarketEvent":
        return "market_events: event classification"
    if name == "HeadlineScore":
        return "analyst_team: headline scores"
    if name == "AnalystReport":
        return "analyst_team: analyst reports"
    if name == "Argument":
        match = _ROUND.search(body["messages"][-1]["content"])
        first = match is None or match.group(1) == "1"
        return "researchers: bull/bear openings" if first else "debate: rounds 2+"
    if name == "Verdict":
        return "debate: judge"
    return f"other: {name}"


class Recorder:
    """The server's answer function, recording each call's layer and sizes (thread-safe)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []  # (layer, chars sent, chars answered)
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = desk_answer(body)
        sent, answered = len(json.dumps(body["messages"])), len(json.dumps(answer))
        with self._lock:
            self.calls.append((layer_of(body), sent, answered))
        return answer

    def mark(self) -> int:
        with self._lock:
            return len(self.calls)

    def since(self, mark: int) -> dict[str, list[float]]:
        """layer -> [calls, input tokens, output tokens] (chars / 4) since `mark`."""
        with self._lock:
            calls = self.calls[mark:]
        out: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        for layer, sent, answered in calls:
            row = out[layer]
            row[0] += 1
            row[1] += sent / 4
            row[2] += answered / 4
        return dict(out)


def run(graph: Graph, instance: DagsterInstance, first: str, last: str, ops: dict | None = None):
    config = {**QUIET, "ops": ops} if ops else QUIET
    started = time.perf_counter()
    result = graph.defs.resolve_job_def("research_job").execute_in_process(
        instance=instance,
        tags=MinuteSpan.of_keys(first, last).tags,
        raise_on_error=False,
        run_config=config,
    )
    seconds = time.perf_counter() - started
    if not result.success:
        raise SystemExit(f"research_job {first} .. {last} failed")
    return seconds, result


ACCOUNTED = {  # op -> the assets it materializes with a model client each
    "market_events": ("market_events",),
    "analyst_team": tuple(
        f"{a}_analysis" for a in ("technical", "fundamental", "sentiment", "macro")
    ),
    "researchers": ("bull_case", "bear_case"),
    "debate": ("debate",),
}


def resource_accounting(result) -> dict[str, dict[str, float]]:
    """Per asset: the LLM resource's own llm_calls / tokens / cost from the run's metadata."""
    out = {}
    for node, assets in ACCOUNTED.items():
        for mat in result.asset_materializations_for_node(node):
            asset = mat.asset_key.to_user_string()
            md = mat.metadata  # a range run puts it on one partition's materialization
            if asset in assets and "llm_calls" in md:
                out[asset] = {
                    k: float(md[k].value) if k in md else 0.0
                    for k in ("llm_calls", "llm_input_tokens", "llm_output_tokens", "llm_cost_usd")
                }
    return out


def triggers_summary(graph: Graph, first: str, last: str) -> dict[str, int]:
    lo, hi = (f"{k[:10]} {k[11:]}" for k in (first, last))
    row = graph.query(
        "SELECT count(DISTINCT ticker) stocks, count(*) n, sum(triggered::INT) triggered, "
        "sum(debated::INT) debated FROM trading.debate_triggers "
        "WHERE minute BETWEEN ?::TIMESTAMP AND ?::TIMESTAMP",
        [lo, hi],
    ).iloc[0]
    return {k: int(row[k]) for k in ("stocks", "n", "triggered", "debated")}


def table(
    rows: dict[str, list[float]],
    llm: LLMResource,
    per: float,
    per_label: str,
    resource_md: dict[str, dict[str, float]] | None = None,
) -> None:
    """Per layer and total: calls, tokens (chars / 4), USD; and the same divided by `per`."""

    def usd(tin: float, tout: float) -> float:
        return token_cost(round(tin), round(tout), llm.input_usd_per_mtok, llm.output_usd_per_mtok)

    print(
        f"  {'layer':<38}{'calls':>8}{'in tok':>12}{'out tok':>10}{'USD':>10}"
        f"{'calls/' + per_label:>21}{'in tok/' + per_label:>22}{'USD/' + per_label:>19}"
    )
    total = [0, 0.0, 0.0]
    for layer in [*LAYERS, *sorted(set(rows) - set(LAYERS))]:
        calls, tin, tout = rows.get(layer, [0, 0.0, 0.0])
        if not calls:
            continue
        total = [total[0] + calls, total[1] + tin, total[2] + tout]
        print(
            f"  {layer:<38}{calls:>8,.0f}{tin:>12,.0f}{tout:>10,.0f}{usd(tin, tout):>10.4f}"
            f"{calls / per:>21,.1f}{tin / per:>22,.0f}{usd(tin, tout) / per:>19.4f}"
        )
    calls, tin, tout = total
    print(
        f"  {'total':<38}{calls:>8,.0f}{tin:>12,.0f}{tout:>10,.0f}{usd(tin, tout):>10.4f}"
        f"{calls / per:>21,.1f}{tin / per:>22,.0f}{usd(tin, tout) / per:>19.4f}"
    )
    if calls:
        cap = usd(tin, calls * llm.max_output_tokens)
        print(
            f"  per call ~{tin / calls:,.0f} input / ~{tout / calls:,.0f} output tokens; if every "
            f"answer used the {llm.max_output_tokens}-token cap: USD {cap / per:.4f} a {per_label}"
        )
    if resource_md:
        c = sum(m["llm_calls"] for m in resource_md.values())
        i = sum(m["llm_input_tokens"] for m in resource_md.values())
        o = sum(m["llm_output_tokens"] for m in resource_md.values())
        d = sum(m["llm_cost_usd"] for m in resource_md.values())
        print(
            f"  the LLM resource's own accounting (run metadata, server-reported usage): "
            f"{c:,.0f} calls ({'=' if c == calls else '!='} the server's {calls:,.0f}), "
            f"{i:,.0f} in / {o:,.0f} out tokens, USD {d:.4f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--session", default="2026-03-23", help="default %(default)s")
    parser.add_argument(
        "--gated", default="09:30-15:59", help="gating-on range in the session (default all)"
    )
    parser.add_argument(
        "--off-window",
        default="10:00-10:29",
        help="gating-off range, inside the gated one (default %(default)s; slow: ~9 calls a "
        "ticker-minute). '09:30-15:59' measures a whole session off, unscaled",
    )
    parser.add_argument(
        "--quick", action="store_true", help="gated 09:30-10:29, gating off 10:15-10:24"
    )
    args = parser.parse_args()
    gated = "09:30-10:29" if args.quick else args.gated
    off = "10:15-10:24" if args.quick else args.off_window
    s = args.session
    g_first, g_last = (f"{s}|{t}" for t in gated.split("-"))
    o_first, o_last = (f"{s}|{t}" for t in off.split("-"))
    g_minutes = (
        (int(g_last[-5:-3]) * 60 + int(g_last[-2:]))
        - (int(g_first[-5:-3]) * 60 + int(g_first[-2:]))
        + 1
    )
    o_minutes = (
        (int(o_last[-5:-3]) * 60 + int(o_last[-2:]))
        - (int(o_first[-5:-3]) * 60 + int(o_first[-2:]))
        + 1
    )
    _context()  # GX's import, before timing
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average) on {os.cpu_count()} cores")

    recorder = Recorder()
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeOpenAIServer(answer=recorder, api_key="sk-test-secret") as server,
        DagsterInstance.ephemeral() as instance,
    ):
        warehouse = Path(tmp) / "warehouse.duckdb"
        llm = model_llm(server, warehouse)
        graph = make_graph(Path(tmp), llm=llm)

        # 1. gating on
        mark = recorder.mark()
        first_s, result = run(graph, instance, g_first, g_last)
        gated_rows = recorder.since(mark)
        trig = triggers_summary(graph, g_first, g_last)
        ticker_days = trig["stocks"] * g_minutes / SESSION_MINUTES
        full = g_minutes == SESSION_MINUTES
        label = "ticker-day" if full else "ticker-day*"
        print(
            f"\nGATING ON (default run config): research_job {g_first} .. {g_last}, "
            f"first run {first_s:.1f} s"
        )
        print(
            f"  {trig['n']:,} ticker-minutes ({trig['stocks']} stocks), {trig['triggered']} "
            f"triggered, {trig['debated']} debated"
            + ("" if full else f"; * scaled: {g_minutes} of {SESSION_MINUTES} minutes")
        )
        table(gated_rows, llm, ticker_days, label, resource_accounting(result))
        mark = recorder.mark()
        warm_s, _ = run(graph, instance, g_first, g_last)
        warm_calls = recorder.mark() - mark
        print(f"  warm re-run of the same partitions: {warm_calls} calls, {warm_s:.1f} s")

        # 2. gating off: same warehouse (history), a fresh cache file (every answer new)
        cold = model_llm(server, Path(tmp) / "cache_gating_off.duckdb")
        graph_off = make_graph(Path(tmp), llm=cold)
        ops = {
            "debate_triggers": {"config": GATE_OFF},
            "analyst_team": {"config": {"llm_scope": "all"}},
        }
        mark = recorder.mark()
        off_s, off_result = run(graph_off, instance, o_first, o_last, ops)
        off_rows = recorder.since(mark)
        otrig = triggers_summary(graph_off, o_first, o_last)
        print(
            f"\nGATING OFF (run config: llm_scope='all', {GATE_OFF}): research_job "
            f"{o_first} .. {o_last}, first run {off_s:.1f} s"
        )
        print(
            f"  {otrig['n']:,} ticker-minutes, {otrig['triggered']} triggered, "
            f"{otrig['debated']} debated ({otrig['debated'] / max(otrig['n'], 1):.1%})"
        )
        print(f"  measured over the {o_minutes}-minute window (per ticker-window):")
        table(off_rows, cold, otrig["stocks"], "ticker-window", resource_accounting(off_result))
        mark = recorder.mark()
        off_warm_s, _ = run(graph_off, instance, o_first, o_last, ops)
        off_warm_calls = recorder.mark() - mark
        print(f"  warm re-run of the window: {off_warm_calls} calls, {off_warm_s:.1f} s")

        # per ticker-day without gating: per-ticker-minute layers scaled to every ticker-minute
        per_day = trig["n"] / max(trig["stocks"], 1) * SESSION_MINUTES / g_minutes
        scaled: dict[str, list[float]] = {}
        analysed = max(otrig["n"], 1)
        debated = max(otrig["debated"], 1)
        for layer, per_minute in LAYERS.items():
            if per_minute:
                units = analysed if layer.startswith("analyst_team") else debated
                calls, tin, tout = off_rows.get(layer, [0, 0.0, 0.0])
                factor = per_day * otrig["stocks"] / units  # every ticker-minute, not just these
                scaled[layer] = [calls * factor, tin * factor, tout * factor]
            else:  # the gate does not change it: the gated run's, per ticker-day
                calls, tin, tout = gated_rows.get(layer, [0, 0.0, 0.0])
                factor = otrig["stocks"] / ticker_days
                scaled[layer] = [calls * factor, tin * factor, tout * factor]
        print(
            f"  scaled to a ticker-day with every one of its ~{per_day:.0f} ticker-minutes "
            f"analysed and debated (window rate per analysed / debated ticker-minute; market "
            f"events and headline scores from the gated run above):"
        )
        table(scaled, cold, otrig["stocks"], "ticker-day")

        on_calls = sum(r[0] for r in gated_rows.values()) / ticker_days
        off_calls = sum(r[0] for r in scaled.values()) / otrig["stocks"]
        print(
            f"\nSUMMARY per ticker-day: gating on {on_calls:,.0f} calls, gating off "
            f"~{off_calls:,.0f} calls (x{off_calls / on_calls:.0f}); warm re-runs: "
            f"{warm_calls} and {off_warm_calls} calls"
        )
        print(f"  server saw {server.chat_count:,} chat requests in all")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0 if warm_calls == 0 and off_warm_calls == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
