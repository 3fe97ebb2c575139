"""The code location: `dagster dev` in the repository root loads this through workspace.yaml."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import Definitions, in_process_executor, mem_io_manager

from jobs.backtest import backtest_job, backtest_report_job
from jobs.ingest import ingest_job
from jobs.research import research_job
from jobs.schedules import CLOSE_SCHEDULES, intraday_schedule
from jobs.trading import close_all_positions, decision_job, execute_signals, intraday_job
from resources.broker import BrokerResource, broker_from_env
from resources.llm import LLMResource
from resources.market_data import MarketDataResource
from resources.secrets import env_secret
from resources.trading_controls import TradingControls, controls_from_env
from resources.warehouse import warehouse_io_manager, warehouse_resource
from sensors.failures import run_failure_alert
from sensors.signals import trade_signal_sensor
from trading_assets.assets.analysts import analyst_team, debate_triggers
from trading_assets.assets.backtest import backtest_fills, backtest_performance, baseline_fills
from trading_assets.assets.dbt import dbt_resource, warehouse_marts
from trading_assets.assets.decision import trade_signals
from trading_assets.assets.events import event_context, market_events
from trading_assets.assets.execution import MEMORY, broker_orders
from trading_assets.assets.ingest import bars, fundamentals, news
from trading_assets.assets.research import debate, researchers
from trading_assets.checks.agents import AGENT_CHECKS
from trading_assets.checks.backtest import BACKTEST_CHECKS
from trading_assets.checks.decision import DECISION_CHECKS
from trading_assets.checks.events import EVENT_CHECKS
from trading_assets.checks.ingest import INGEST_CHECKS


def market_data_from_env() -> MarketDataResource:
    env = os.environ.get
    return MarketDataResource(
        bars_provider=env("TRADING_BARS_PROVIDER", "replay"),
        news_providers=env("TRADING_NEWS_PROVIDERS", "replay"),
        fundamentals_provider=env("TRADING_FUNDAMENTALS_PROVIDER", "replay"),
        tickers=env("TRADING_UNIVERSE", ""),
        replay_dir=env("TRADING_REPLAY_DIR", ""),
        alpaca_api_key=env_secret("ALPACA_API_KEY"),
        alpaca_secret_key=env_secret("ALPACA_SECRET_KEY"),
        alpaca_feed=env("ALPACA_DATA_FEED", "iex"),
        alpaca_data_url=env("ALPACA_DATA_URL", ""),
        finnhub_api_key=env_secret("FINNHUB_API_KEY"),
        finnhub_base_url=env("FINNHUB_BASE_URL", ""),
    )


def _float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


def llm_from_env(warehouse: Path | None = None) -> LLMResource:
    """TRADING_LLM_PROVIDER=rules (default: no model, no key) or openai (any OpenAI-compatible
    server at OPENAI_BASE_URL with TRADING_LLM_MODEL); the key only ever as EnvVar."""
    env = os.environ.get
    return LLMResource(
        provider=env("TRADING_LLM_PROVIDER", "rules"),
        base_url=env("OPENAI_BASE_URL", ""),
        model=env("TRADING_LLM_MODEL", "gpt-4o-mini"),
        api_key=env_secret("OPENAI_API_KEY"),
        timeout_s=_float("TRADING_LLM_TIMEOUT_S", 30.0),
        max_concurrency=int(_float("TRADING_LLM_CONCURRENCY", 4)),
        input_usd_per_mtok=_float("TRADING_LLM_INPUT_USD_PER_MTOK", 0.15),
        output_usd_per_mtok=_float("TRADING_LLM_OUTPUT_USD_PER_MTOK", 0.60),
        cache_mode=env("TRADING_LLM_CACHE", "read_write"),
        response_format=env("TRADING_LLM_RESPONSE_FORMAT", "json_schema"),
        cache_database=str(warehouse) if warehouse else "",
    )


def build_definitions(
    warehouse: Path | None = None,
    market_data: MarketDataResource | None = None,
    llm: LLMResource | None = None,
    broker: BrokerResource | None = None,
    controls: TradingControls | None = None,
) -> Definitions:
    # One process per run: the steps share the DuckDB file (one writer at a time) and the
    # imports (GX alone is ~13 s), which a subprocess per step would pay again each time.
    return Definitions(
        assets=[
            *(bars, news, fundamentals, debate_triggers, analyst_team, researchers, debate),
            *(market_events, event_context),
            trade_signals,
            broker_orders,
            backtest_fills,
            baseline_fills,
            backtest_performance,
            warehouse_marts,
        ],
        asset_checks=[
            *INGEST_CHECKS,
            *AGENT_CHECKS,
            *DECISION_CHECKS,
            *BACKTEST_CHECKS,
            *EVENT_CHECKS,
        ],
        jobs=[
            *(ingest_job, research_job, intraday_job, decision_job),
            *(backtest_job, backtest_report_job),
            *(execute_signals, close_all_positions),
        ],
        schedules=[intraday_schedule, *CLOSE_SCHEDULES],
        sensors=[trade_signal_sensor, run_failure_alert],
        resources={
            "io_manager": warehouse_io_manager(warehouse),
            "warehouse": warehouse_resource(warehouse),
            "market_data": market_data or market_data_from_env(),
            "llm": llm or llm_from_env(warehouse),
            "broker": broker or broker_from_env(),
            "controls": controls or controls_from_env(),
            "dbt": dbt_resource(),
            MEMORY: mem_io_manager,
        },
        executor=in_process_executor,
    )


defs = build_definitions()
