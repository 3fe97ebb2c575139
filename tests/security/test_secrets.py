"""Keys come only from the environment, reach the APIs, and are stored or logged nowhere.

One short session through the code location built from the environment (`build_definitions()`
with no arguments, as `dagster dev` loads it), with fake, recognisable keys: bars and news from
a local Alpaca-format server, news and fundamentals from a local Finnhub-format server, the
team on a local OpenAI-compatible server (the model, not the rules), trade signals decided on
the embedded paper broker's book (started to accept only these keys) and executed by the runs
the signal sensor asks for, the book flattened, and two runs that fail on a rejected key (one
of the servers echoes the key it refused, as OpenAI's does) with the failure alert posting to
a local Slack-webhook stand-in. The instance is a throw-away database on the local Postgres.

Each server must have received its key (otherwise the scan proves nothing). Then every store
is scanned for each key: every table of the Dagster database (every row as text, compressed
snapshot blobs inflated), every run's config and tags and every event-log entry through the
instance API, every file under DAGSTER_HOME and the data folder (the DuckDB warehouse, its LLM
cache, the paper broker's SQLite), every warehouse and broker table as text, and everything
logged (Python logging at DEBUG, stdout and stderr). A positive control per store proves the
scan reads it.
"""

import json
import sqlite3
import uuid
import zlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import duckdb
import pandas as pd
import psycopg2
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    EnvVar,
    SensorResult,
    build_run_status_sensor_context,
    build_sensor_context,
    serialize_value,
)
from psycopg2 import sql

from resources.paper_broker import PaperBroker
from sensors.failures import WEBHOOK_ENV, run_failure_alert
from sensors.signals import trade_signal_sensor
from tests.fakes.alpaca_server import BARS_PATH, FakeAlpacaServer, make_news_item
from tests.fakes.alpaca_server import NEWS_PATH as ALPACA_NEWS_PATH
from tests.fakes.finnhub_server import METRIC_PATH, FakeFinnhubServer
from tests.fakes.finnhub_server import NEWS_PATH as FINNHUB_NEWS_PATH
from tests.fakes.http_server import FakeHTTPServer, FakeResponse, RecordedRequest
from tests.fakes.openai_server import CHAT_PATH, FakeOpenAIServer, bearer
from tests.graph.conftest import PG, replay_bars_utc, throwaway_postgres_instance
from tests.graph.test_research_job import desk_answer
from trading_assets.definitions import build_definitions

SESSION = "2026-03-23"
UNIVERSE = "AAPL,SPY,QQQ"  # few tickers: Finnhub is paced at one call a second
# Fake, unique per run, recognisable: a hit anywhere is unambiguous. Made here, set only as
# environment variables (monkeypatched), never written in the repository.
KEYS = {
    name: f"canary-{name.lower().replace('_', '-')}-{uuid.uuid4().hex[:10]}"
    for name in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "FINNHUB_API_KEY", "OPENAI_API_KEY")
}
HOOK_TOKEN = f"canaryslackhook{uuid.uuid4().hex[:8]}"
HOOK_PATH = f"/services/T0CANARY/B0CANARY/{HOOK_TOKEN}"
DEBUG = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}
LIVE = {"trading/live": "true"}
# Variables that would change the wiring under test if the machine happened to set them.
UNSET = (
    "TRADING_ALLOW_LIVE",
    "TRADING_KILL_SWITCH",
    "TRADING_PORTFOLIO_SOURCE",
    "TRADING_REPLAY_DIR",
    "TRADING_PARTITIONS_START",
    "TRADING_PARTITIONS_END",
    "TRADING_LLM_CACHE",
    "TRADING_LLM_RESPONSE_FORMAT",
    "ALPACA_DATA_FEED",
)


def ny(hhmm: str) -> pd.Timestamp:
    return pd.Timestamp(f"{SESSION} {hhmm}", tz="America/New_York").tz_convert("UTC")


def key(minute: pd.Timestamp) -> str:
    return minute.strftime("%Y-%m-%d|%H:%M")


def window(first: str, last: str) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": f"{SESSION}|{first}",
        "dagster/asset_partition_range_end": f"{SESSION}|{last}",
    }


def warehouse_query(data: Path, query: str, params: list[object]) -> pd.DataFrame:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(query, params).df()


# --- the scan ------------------------------------------------------------------------------------


def _text(value: object) -> str:
    """A stored value as searchable text; binary values also inflated (Dagster zlib-compresses
    job and execution-plan snapshots, where resource config defaults live)."""
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes):
        try:
            return value.decode("latin-1") + zlib.decompress(value).decode("utf-8", "replace")
        except zlib.error:
            return value.decode("latin-1")
    return str(value)


def postgres_tables(db: str) -> dict[str, str]:
    """Every table of the instance's database, every row and column as text."""
    out = {}
    with closing(psycopg2.connect(dbname=db, **PG)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = %s",
            ["public", "BASE TABLE"],
        )
        for (table,) in cur.fetchall():
            cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            out[f"postgres:{table}"] = "\n".join(
                "\t".join(_text(v) for v in row) for row in cur.fetchall()
            )
    return out


def instance_records(instance: DagsterInstance) -> dict[str, str]:
    """Each run's config and tags, and every event-log entry (message, user message, the
    event with its metadata), read back through Dagster's own API."""
    out = {}
    for run in instance.get_runs():
        out[f"run {run.job_name} {run.run_id[:8]}: config+tags"] = json.dumps(
            [run.run_config, dict(run.tags)], default=str
        )
        out[f"run {run.job_name} {run.run_id[:8]}: event log"] = "\n".join(
            f"{e.message}\n{e.user_message}\n{serialize_value(e)}"
            for e in instance.all_logs(run.run_id)
        )
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duckdb_tables(path: Path) -> dict[str, str]:
    out = {}
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, table in tables:
            frame = conn.execute(f"SELECT * FROM {_quote(schema)}.{_quote(table)}").df()
            out[f"warehouse:{schema}.{table}"] = frame.astype(str).to_csv(index=False)
    return out


def sqlite_tables(path: Path) -> dict[str, str]:
    out = {}
    with closing(sqlite3.connect(path)) as conn:
        names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (table,) in names:
            rows = conn.execute(f"SELECT * FROM {_quote(table)}").fetchall()
            out[f"paper broker:{table}"] = "\n".join("\t".join(map(_text, r)) for r in rows)
    return out


def files_under(root: Path, label: str) -> dict[str, str]:
    return {
        f"{label} file {p.relative_to(root)}": p.read_bytes().decode("latin-1")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def found(places: dict[str, str], needles: dict[str, str]) -> list[str]:
    """'<secret name> in <place>' for every secret value that occurs in a place."""
    return [
        f"{name} in {place}"
        for place, text in places.items()
        for name, value in needles.items()
        if value in text
    ]


def test_the_wiring_configures_every_key_by_its_variable_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What Dagster stores and shows of a resource is its config: for a key, only the name."""
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    resources = build_definitions().resources
    fields = {
        ("market_data", "alpaca_api_key"): "ALPACA_API_KEY",
        ("market_data", "alpaca_secret_key"): "ALPACA_SECRET_KEY",
        ("market_data", "finnhub_api_key"): "FINNHUB_API_KEY",
        ("llm", "api_key"): "OPENAI_API_KEY",
        ("broker", "api_key"): "ALPACA_API_KEY",
        ("broker", "secret_key"): "ALPACA_SECRET_KEY",
    }
    for (resource, field_name), variable in fields.items():
        value = getattr(resources[resource], field_name)
        assert isinstance(value, EnvVar) and value.env_var_name == variable, (resource, field_name)
    shown = repr(resources) + "".join(repr(r) for r in resources.values())
    assert found({"resources": shown}, KEYS) == []


# --- the session ---------------------------------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[tuple[FakeAlpacaServer, FakeFinnhubServer, FakeOpenAIServer]]:
    bars = replay_bars_utc()
    bars = bars[bars["symbol"].isin(UNIVERSE.split(",")) & (bars["timestamp"] >= ny("00:00"))]
    news = [
        make_news_item(id=9101, headline="Apple (AAPL) opens its developer conference early",
                       created_at=ny("09:31").tz_localize(None) + pd.Timedelta(seconds=5),
                       symbols=["AAPL"], summary="Apple said it moves the date.",
                       url="https://example.invalid/aapl"),
        make_news_item(id=9102, headline="Apple (AAPL) wins a large cloud contract",
                       created_at=ny("09:46").tz_localize(None) + pd.Timedelta(seconds=5),
                       symbols=["AAPL"], url="https://example.invalid/aapl-2"),
    ]  # fmt: skip
    with (
        FakeAlpacaServer(
            bars, news, api_key=KEYS["ALPACA_API_KEY"], secret_key=KEYS["ALPACA_SECRET_KEY"]
        ) as alpaca,
        FakeFinnhubServer(api_key=KEYS["FINNHUB_API_KEY"]) as finnhub,
        FakeOpenAIServer(answer=desk_answer, api_key=KEYS["OPENAI_API_KEY"]) as model,
    ):
        yield alpaca, finnhub, model


def test_a_session_with_fake_keys_stores_and_logs_them_nowhere(
    servers: tuple[FakeAlpacaServer, FakeFinnhubServer, FakeOpenAIServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    alpaca, finnhub, model = servers
    data, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()

    def ok(_request: RecordedRequest) -> FakeResponse:
        return FakeResponse(200, "ok", content_type="text/plain")

    broker = PaperBroker(
        data / "paper_broker.sqlite",
        start_time=ny("09:30"),
        api_key=KEYS["ALPACA_API_KEY"],
        secret_key=KEYS["ALPACA_SECRET_KEY"],
    ).start()
    broker_url = broker.url
    hook = FakeHTTPServer({("POST", HOOK_PATH): ok}).start()
    secrets = {**KEYS, WEBHOOK_ENV: hook.url + HOOK_PATH, "slack token": HOOK_TOKEN}
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    env = {
        **KEYS,
        WEBHOOK_ENV: hook.url + HOOK_PATH,
        "TRADING_UNIVERSE": UNIVERSE,
        "TRADING_BARS_PROVIDER": "alpaca",
        "ALPACA_DATA_URL": alpaca.url,
        "TRADING_NEWS_PROVIDERS": "alpaca,finnhub",
        "TRADING_FUNDAMENTALS_PROVIDER": "finnhub",
        "FINNHUB_BASE_URL": finnhub.api_url,
        "TRADING_LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": model.base_url,
        "TRADING_LLM_MODEL": "desk-model",
        "TRADING_LLM_TIMEOUT_S": "5",
        "TRADING_BROKER_MODE": "paper",  # Alpaca paper's wire, keys required
        "TRADING_BROKER_URL": broker.url,
        "TRADING_BROKER_DATA_URL": broker.url,
        "TRADING_DATA_DIR": str(data),
        "TRADING_WAREHOUSE": str(data / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    caplog.set_level("DEBUG")  # every library's debug logging (urllib3, httpx, openai) too
    defs = build_definitions()  # from the environment, as the code location loads

    try:
        with throwaway_postgres_instance(home) as (instance, db):

            def run(job: str, tags: dict[str, str]) -> bool:
                return (
                    defs.resolve_job_def(job)
                    .execute_in_process(
                        instance=instance, tags=tags, run_config=DEBUG, raise_on_error=False
                    )
                    .success
                )

            def alert(run_id: str) -> None:
                dagster_run = instance.get_run_by_id(run_id)
                (record,) = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
                run_failure_alert(
                    build_run_status_sensor_context(
                        sensor_name=run_failure_alert.name,
                        dagster_instance=instance,
                        dagster_run=dagster_run,
                        dagster_event=record.dagster_event,
                    ).for_run_failure()
                )

            # research with the model, then one minute decided on the broker's book, as live
            assert run("research_job", window("09:30", "09:32"))
            verdicts = warehouse_query(
                data,
                "SELECT minute FROM trading.debate WHERE debated AND action = ? ORDER BY 1",
                ["BUY"],
            )
            assert len(verdicts) > 0, "the model's BUY verdicts give something to trade"
            minute = pd.Timestamp(verdicts["minute"].iloc[0])
            started = trade_signal_sensor(build_sensor_context(instance=instance, definitions=defs))
            assert isinstance(started, SensorResult)
            broker.set_clock(ny(minute.strftime("%H:%M")) + pd.Timedelta(minutes=1))
            assert run("decision_job", {**LIVE, "dagster/partition": key(minute)})
            asked = trade_signal_sensor(
                build_sensor_context(instance=instance, cursor=started.cursor, definitions=defs)
            )
            assert isinstance(asked, SensorResult) and asked.run_requests
            for request in asked.run_requests:
                tags = {**request.tags, "dagster/partition": str(request.partition_key)}
                assert run("execute_signals", tags)
            broker.advance("1min")  # the entries fill at the next bar's open
            assert run("close_all_positions", {})

            # two runs that fail on a rejected key, each reported by the failure alert
            finnhub.api_key = "someone-elses-finnhub-key"
            assert not run("ingest_job", {"dagster/partition": f"{SESSION}|09:45"})
            finnhub.api_key = KEYS["FINNHUB_API_KEY"]
            model.api_key = "sk-someone-elses-key"  # its 401 quotes the key it was sent
            assert not run("research_job", window("09:46", "09:47"))
            failed = instance.get_runs()[:2]
            for failed_run in failed:
                alert(failed_run.run_id)

            # the keys did reach the servers: the scan below is not vacuous
            data_requests = alpaca.requests_to(BARS_PATH) + alpaca.requests_to(ALPACA_NEWS_PATH)
            assert data_requests and all(
                (r.headers["APCA-API-KEY-ID"], r.headers["APCA-API-SECRET-KEY"])
                == (KEYS["ALPACA_API_KEY"], KEYS["ALPACA_SECRET_KEY"])
                for r in data_requests
            )
            finnhub_requests = finnhub.requests_to(FINNHUB_NEWS_PATH) + finnhub.requests_to(
                METRIC_PATH
            )
            assert finnhub_requests
            assert {r.headers.get("X-Finnhub-Token") for r in finnhub_requests} == {
                KEYS["FINNHUB_API_KEY"]
            }
            assert not any("token" in r.query for r in finnhub_requests)  # never in a URL
            chats = model.requests_to(CHAT_PATH)
            assert chats and all(bearer(r) == f"Bearer {KEYS['OPENAI_API_KEY']}" for r in chats)
            assert model.chat_count > 0
            trading = TradingClient(
                KEYS["ALPACA_API_KEY"], KEYS["ALPACA_SECRET_KEY"], url_override=broker.url
            )
            orders = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True))
            signal_ids = set(
                warehouse_query(
                    data, "SELECT signal_id FROM trading.broker_orders WHERE attempts > ?", [0]
                )["signal_id"]
            )
            assert signal_ids & {o.client_order_id for o in orders}, (
                "execute_signals placed orders with the keys the broker accepts"
            )
            posts = [r.json()["text"] for r in hook.requests]
            assert [r.path for r in hook.requests] == [HOOK_PATH, HOOK_PATH]
            assert any("FINNHUB_API_KEY" in t for t in posts)
            assert any("rejected the API key" in t for t in posts)

            places = {
                **postgres_tables(db),
                **instance_records(instance),
            }
        broker.stop()
        places |= files_under(home, "DAGSTER_HOME")
        places |= files_under(data, "data dir")
        places |= duckdb_tables(data / "warehouse.duckdb")
        places |= sqlite_tables(data / "paper_broker.sqlite")
        out, err = capfd.readouterr()
        places |= {"python logging": caplog.text, "stdout": out, "stderr": err}
        places["logs"] = caplog.text + out + err
    finally:
        broker.stop()
        hook.stop()

    # positive controls: each kind of store is read, and holds what this session wrote there
    order_id = next(o.client_order_id for o in orders if o.client_order_id in signal_ids)
    controls = {
        "postgres:snapshots": "OPENAI_API_KEY",  # resources configured by variable name
        "postgres:event_logs": f"Alpaca paper ({broker_url})",  # close_positions' log line
        "warehouse:trading.llm_cache": "desk-model",
        "warehouse:trading.broker_orders": order_id,
        "paper broker:orders": order_id,
        "data dir file paper_broker.sqlite": order_id,
        "stderr": "execute_signals",
        "logs": "failure posted to Slack (HTTP 200)",
    }
    assert found(places, secrets) == []
    missing = [f"{n!r} not in {p}" for p, n in controls.items() if n not in places.get(p, "")]
    assert missing == [], "positive controls: the scan must see what this session stored"
    assert any("run close_all_positions" in p for p in places)
    compute_logs = {
        p: t for p, t in places.items() if p.startswith("DAGSTER_HOME") and p.endswith(".err")
    }
    assert any("close_all_positions" in t for t in compute_logs.values()), (
        "the runs' captured stderr (compute logs) was scanned"
    )
