"""The backtest graph's computation without Dagster's machinery, for the throughput ratio.

Each asset's body is invoked directly, in the graph's order, on frames held in memory: the
domain functions plus the assets' thin wiring, with no executor, instance, event log, IO
manager or checks. Used by `backfill_throughput.py` to print how much of a backfill is the
computation itself.
"""

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pandas as pd
from dagster import Definitions, Output, PartitionKeyRange

from trading_assets.assets.analysts import AnalystTeamConfig, GateConfig
from trading_assets.assets.backtest import FillCosts
from trading_assets.assets.events import EventContextConfig, MarketEventsConfig
from trading_assets.assets.ingest import MINUTES
from trading_assets.assets.research import DebateConfig
from trading_assets.partitions import MinuteSpan

RESOURCES = ("market_data", "llm", "warehouse", "broker", "controls")


@dataclass
class PlainContext:
    """What the asset bodies read from their context, for a backfill of one range."""

    first: str
    last: str
    outputs: set[str]
    run_id: str = "plain"
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("plain_graph"))
    has_partition_key: bool = False
    has_partition_key_range: bool = True
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def partition_key_range(self) -> PartitionKeyRange:
        return PartitionKeyRange(self.first, self.last)

    @property
    def partition_keys(self) -> list[str]:
        return MINUTES.get_partition_keys_in_range(self.partition_key_range)

    @property
    def assets_def(self) -> SimpleNamespace:
        return SimpleNamespace(partitions_def=MINUTES)

    @property
    def run(self) -> SimpleNamespace:
        return SimpleNamespace(tags=MinuteSpan.of_keys(self.first, self.last).tags)

    @property
    def selected_output_names(self) -> set[str]:
        return self.outputs

    def add_output_metadata(self, metadata: Mapping[str, object], **_: object) -> None:
        self.metadata.update(metadata)

    def add_asset_metadata(self, metadata: Mapping[str, object], **_: object) -> None:
        self.metadata.update(metadata)


def _outputs(result: Any) -> dict[str, pd.DataFrame]:
    """A multi-asset's yielded Outputs by name (a plain asset returns its frame)."""
    if isinstance(result, Iterator) or hasattr(result, "__next__"):
        return {o.output_name: o.value for o in result if isinstance(o, Output)}
    return {"result": result}


def run_plain(
    defs: Definitions, first: str, last: str
) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """Every backtest_job asset over [first, last] (a range starting at a session open, so
    each history window is everything up to `last`). Returns the frames and seconds per
    asset."""
    res = {name: defs.resources[name] for name in RESOURCES}
    assets = {a.node_def.name: a for a in defs.assets if hasattr(a, "node_def")}
    frames: dict[str, pd.DataFrame] = {}
    spent: dict[str, float] = {}

    def call(name: str, config: object | None, needs: tuple[str, ...], inputs: tuple[str, ...]):
        node = assets[name]
        context = PlainContext(first, last, {o for o in node.node_def.output_dict})
        kwargs = {r: res[r] for r in needs} | {i: frames[i] for i in inputs}
        if config is not None:
            kwargs["config"] = config
        started = time.perf_counter()
        out = _outputs(node.op.compute_fn.decorated_fn(context, **kwargs))
        spent[name] = time.perf_counter() - started
        if list(out) == ["result"]:
            frames[name] = out["result"]
        else:
            frames.update(out)

    call("bars", None, ("market_data",), ())
    call("news", None, ("market_data",), ())
    call("fundamentals", None, ("market_data",), ("bars",))
    call("market_events", MarketEventsConfig(), ("market_data", "llm", "warehouse"), ("news",))
    call("event_context", EventContextConfig(), ("warehouse",), ("market_events", "bars"))
    call("debate_triggers", GateConfig(), ("market_data",), ("bars", "news"))
    events = ("market_events", "event_context")
    call(
        "analyst_team",
        AnalystTeamConfig(),
        ("market_data", "llm"),
        ("bars", "news", "fundamentals", "debate_triggers", *events),
    )
    analyses = tuple(f"{n}_analysis" for n in ("technical", "fundamental", "sentiment", "macro"))
    call(
        "researchers", None, ("market_data", "llm"), (*analyses, "debate_triggers", "news", *events)
    )
    call(
        "debate",
        DebateConfig(),
        ("market_data", "llm"),
        (*analyses, "bull_case", "bear_case", "debate_triggers", "news", *events),
    )
    call(
        "trade_signals",
        None,
        ("market_data", "broker", "controls", "warehouse"),
        ("debate", "technical_analysis", "bars"),
    )
    call("backtest_fills", FillCosts(), (), ("trade_signals", "bars"))
    return frames, spent
