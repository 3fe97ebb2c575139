"""Real-money trading starts only with an explicit opt-in, and the opt-in is the only gate.

The code location is built from the environment, as `dagster dev` builds it, with
TRADING_BROKER_MODE=live, keys set and TRADING_BROKER_URL pointing at a local counting proxy in
front of the embedded paper broker (which accepts only those keys). Every path that talks to
the broker is tried: the schedule's live decision (`trade_signals` on the broker's book),
`execute_signals` (what the signal sensor launches), `close_all_positions` (the flatten
schedule's job) and the replay clock's schedule tick (`TRADING_REPLAY_CLOCK=broker`). Without
TRADING_ALLOW_LIVE each fails with the refusal and not one request reaches the broker; with it,
the same setup trades through the broker.
"""

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pytest
import requests
from dagster import (
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    RunRequest,
    build_schedule_context,
    serialize_value,
)

from jobs.schedules import build_intraday_schedule
from resources.paper_broker import PaperBroker
from tests.graph.conftest import QUIET
from trading_assets.definitions import build_definitions

SESSION = "2026-03-23"
KEY, SECRET = "AKLIVEOPTINTEST", "live-opt-in-secret"
REFUSAL = "refused unless allowed"
LIVE = {"trading/live": "true"}
HOP_BY_HOP = {"connection", "content-length", "content-encoding", "transfer-encoding", "host"}


@dataclass
class CountingProxy:
    """Forwards every request to `target` and records (method, path, headers) first."""

    target: str
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None

    def start(self) -> "CountingProxy":
        proxy = self

        class Forward(BaseHTTPRequestHandler):
            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                proxy.seen.append((self.command, self.path, headers))
                answer = requests.request(
                    self.command, proxy.target + self.path, headers=headers, data=body, timeout=10
                )
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = forward

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


@dataclass
class Desk:
    broker: PaperBroker
    proxy: CountingProxy
    tmp: Path
    instance: DagsterInstance
    minute: pd.Timestamp  # a minute whose rules verdict is a trade

    def env(self, monkeypatch: pytest.MonkeyPatch, allow_live: bool) -> Definitions:
        """The environment of a live deployment; the code location built from it."""
        for name in ("TRADING_BARS_PROVIDER", "TRADING_NEWS_PROVIDERS", "TRADING_LLM_PROVIDER",
                     "TRADING_FUNDAMENTALS_PROVIDER", "TRADING_REPLAY_DIR", "TRADING_KILL_SWITCH",
                     "TRADING_PORTFOLIO_SOURCE", "TRADING_REPLAY_CLOCK", "TRADING_ALLOW_LIVE",
                     "ALPACA_DATA_FEED", "TRADING_UNIVERSE"):  # fmt: skip
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("TRADING_BROKER_MODE", "live")
        monkeypatch.setenv("TRADING_BROKER_URL", self.proxy.url)
        monkeypatch.setenv("TRADING_BROKER_DATA_URL", self.proxy.url)
        monkeypatch.setenv("ALPACA_API_KEY", KEY)
        monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET)
        monkeypatch.setenv("TRADING_DATA_DIR", str(self.tmp))
        monkeypatch.setenv("TRADING_WAREHOUSE", str(self.tmp / "warehouse.duckdb"))
        if allow_live:
            monkeypatch.setenv("TRADING_ALLOW_LIVE", "true")
        return build_definitions()

    def run(self, defs: Definitions, job: str, tags: dict[str, str]) -> ExecuteInProcessResult:
        return defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, tags=tags, run_config=QUIET, raise_on_error=False
        )

    def query(self, sql: str, params: list[object]) -> pd.DataFrame:
        with duckdb.connect(str(self.tmp / "warehouse.duckdb"), read_only=True) as conn:
            return conn.execute(sql, params).df()


def failure_text(result: ExecuteInProcessResult) -> str:
    return "\n".join(serialize_value(e) for e in result.all_events if e.is_step_failure)


def close_of(minute: pd.Timestamp) -> pd.Timestamp:
    return minute.tz_localize("America/New_York").tz_convert("UTC") + pd.Timedelta(minutes=1)


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """Research for the session's first half hour and non-live (backtest-book) signals, so
    the broker runs below have signals to act on; nothing here touches the broker."""
    tmp = tmp_path_factory.mktemp("live")
    opened = pd.Timestamp(f"{SESSION} 09:30", tz="America/New_York").tz_convert("UTC")
    broker = PaperBroker(tmp / "paper.sqlite", start_time=opened, api_key=KEY, secret_key=SECRET)
    broker.start()
    proxy = CountingProxy(broker.url).start()
    try:
        with DagsterInstance.ephemeral() as instance, pytest.MonkeyPatch.context() as mp:
            desk = Desk(broker, proxy, tmp, instance, pd.Timestamp(0))
            defs = desk.env(mp, allow_live=False)
            window = {
                "dagster/asset_partition_range_start": f"{SESSION}|09:30",
                "dagster/asset_partition_range_end": f"{SESSION}|09:44",
            }
            history = {  # the technical analyst's 200 minutes of history: the last session's
                "dagster/asset_partition_range_start": "2026-03-20|12:30",
                "dagster/asset_partition_range_end": "2026-03-20|15:59",
            }
            assert desk.run(defs, "ingest_job", history).success
            assert desk.run(defs, "research_job", window).success
            trades = desk.query(
                "SELECT minute FROM trading.debate WHERE debated AND action <> ? ORDER BY 1",
                ["HOLD"],
            )
            assert len(trades) > 0
            desk.minute = pd.Timestamp(trades["minute"].iloc[0])
            partition = {"dagster/partition": desk.minute.strftime("%Y-%m-%d|%H:%M")}
            assert desk.run(defs, "decision_job", partition).success  # not live: no broker
            assert proxy.seen == []
            yield desk
    finally:
        proxy.stop()
        broker.stop()


def replay_tick() -> RunRequest:
    """The replay clock's intraday schedule (`TRADING_REPLAY_CLOCK=broker`), one tick."""
    schedule = build_intraday_schedule(replay=True)
    now = dt.datetime(2026, 3, 23, 12, 0, tzinfo=ZoneInfo("America/New_York"))
    return schedule(build_schedule_context(scheduled_execution_time=now))


def test_live_without_the_opt_in_is_refused_and_nothing_reaches_the_broker(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = desk.env(monkeypatch, allow_live=False)
    desk.proxy.seen.clear()
    partition = {"dagster/partition": desk.minute.strftime("%Y-%m-%d|%H:%M")}
    desk.broker.set_clock(close_of(desk.minute))
    runs = {
        "decision_job (live tag)": desk.run(defs, "decision_job", {**LIVE, **partition}),
        "execute_signals": desk.run(defs, "execute_signals", partition),
        "close_all_positions": desk.run(defs, "close_all_positions", LIVE),
    }
    for name, result in runs.items():
        assert not result.success, name
        text = failure_text(result)
        assert REFUSAL in text and "TRADING_ALLOW_LIVE=true" in text, name
    with pytest.raises(Exception, match=REFUSAL):
        replay_tick()
    assert desk.proxy.seen == [], "a refused live run must not send a single request"
    # signals are still there to act on: the refusal, not a missing input, stopped execution
    signals = desk.query("SELECT action FROM trading.trade_signals WHERE minute = ?", [desk.minute])
    assert (signals["action"] != "HOLD").any()


def test_with_the_opt_in_the_same_setup_trades_through_the_broker(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = desk.env(monkeypatch, allow_live=True)
    desk.proxy.seen.clear()
    partition = {"dagster/partition": desk.minute.strftime("%Y-%m-%d|%H:%M")}
    desk.broker.set_clock(close_of(desk.minute))
    assert desk.run(defs, "decision_job", {**LIVE, **partition}).success  # the broker's book
    assert desk.run(defs, "execute_signals", partition).success
    sent = desk.query(
        "SELECT signal_id, state FROM trading.broker_orders WHERE minute = ? AND attempts > ?",
        [desk.minute, 0],
    )
    assert len(sent) > 0 and (sent["state"] == "submitted").all()
    orders = [(m, p) for m, p, _ in desk.proxy.seen if m == "POST" and p.startswith("/v2/orders")]
    assert len(orders) == len(sent)
    for _, _, headers in desk.proxy.seen:
        assert (headers.get("APCA-API-KEY-ID"), headers.get("APCA-API-SECRET-KEY")) == (KEY, SECRET)
    desk.broker.advance("1min")  # the entries fill
    before = len(desk.proxy.seen)
    assert desk.run(defs, "close_all_positions", LIVE).success
    assert any(m == "DELETE" and p.startswith("/v2/positions") for m, p, _ in desk.proxy.seen)
    request = replay_tick()
    assert isinstance(request, RunRequest) and request.tags.get("trading/live") == "true"
    assert len(desk.proxy.seen) > before
