"""End to end, as live: the real `dagster-daemon` on a Postgres-backed instance evaluates the
signal sensor, which launches `execute_signals`, which sends bracket orders to the embedded paper
broker over HTTP. The replay drives a window of the bundled 2026-03-23 session minute by minute.
Then a backfill of the same minutes must give the same trade signals (live/backtest parity).
"""

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from resources.paper_broker import PaperBroker
from tests.graph.conftest import make_graph, throwaway_postgres_instance
from trading_assets.replay import replay

SESSION = "2026-03-23"
DECISION = ["signal_id", "ticker", "action", "status", "qty", "entry", "stop", "take_profit"]


def test_daemon_sensor_sends_exactly_the_orders_the_signals_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    opened = pd.Timestamp(f"{SESSION} 09:30", tz="America/New_York").tz_convert("UTC")
    with (
        throwaway_postgres_instance(home) as (instance, _db),
        PaperBroker(tmp_path / "paper.sqlite", start_time=opened) as broker,
    ):
        for name, value in {
            "DAGSTER_HOME": str(home),
            "TRADING_DATA_DIR": str(tmp_path / "data"),
            "TRADING_BROKER_MODE": "embedded",
            "TRADING_BROKER_URL": broker.url,
            "TRADING_PORTFOLIO_SOURCE": "auto",  # the schedule's runs are tagged live: broker
        }.items():
            monkeypatch.setenv(name, value)
        result = replay(
            SESSION,
            set_clock=broker.set_clock,
            first="09:30",
            last="09:44",
            log=lambda _: None,
        )
        trading = TradingClient("embedded", "embedded", url_override=broker.url)
        orders = trading.get_orders(
            GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True, limit=500)
        )
        runs = instance.get_run_records(
            RunsFilter(
                job_name="execute_signals", tags={"dagster/sensor_name": "trade_signal_sensor"}
            )
        )

    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as conn:
        signals = conn.execute("SELECT * FROM trading.trade_signals").df()
        ledger = conn.execute("SELECT * FROM trading.broker_orders").df()

    actionable = signals[signals["action"] != "HOLD"].set_index("signal_id")
    assert len(actionable) >= 1 and result.execute_runs >= 1
    # every execution was launched by the daemon's sensor and succeeded, one per decided minute
    assert len(runs) == result.execute_runs
    assert {r.dagster_run.status for r in runs} == {DagsterRunStatus.SUCCESS}
    assert {r.dagster_run.tags["dagster/partition"] for r in runs} == {
        m.strftime("%Y-%m-%d|%H:%M") for m in actionable["minute"]
    }

    # the broker holds exactly the orders the signals asked for, each once
    sent = {o.client_order_id: o for o in orders if o.client_order_id.startswith("sig-")}
    assert len(sent) == len([o for o in orders if o.client_order_id.startswith("sig-")])
    assert set(sent) == set(actionable.index)
    for sid, signal in actionable.iterrows():
        order = sent[sid]
        assert float(order.qty) == signal["qty"]
        assert order.side.value == ("buy" if signal["action"] == "BUY" else "sell")
        legs = {leg.order_type.value: leg for leg in order.legs}
        assert float(legs["limit"].limit_price) == pytest.approx(signal["take_profit"])
        assert float(legs["stop"].stop_price) == pytest.approx(signal["stop"])

    # every signal has one ledger row; the sent ones filled at the next bar, the rest not sent
    assert sorted(ledger["signal_id"]) == sorted(signals["signal_id"])
    rows = ledger.set_index("signal_id")
    assert rows.loc[actionable.index, "state"].isin(["open", "closed"]).all()
    filled_at = rows.loc[actionable.index, "entry_filled_at"]
    assert (filled_at == actionable["minute"] + pd.Timedelta(minutes=2)).all()
    rejected = signals[signals["action"] == "HOLD"]["signal_id"]
    assert (rows.loc[rejected, "state"] == "not_sent").all()

    # Parity: a backfill of the same minutes (one run, no broker, sized on the backtest's own
    # book) decides exactly what the schedule + sensor path decided on the paper broker's book,
    # and its simulated entries are the broker's fills.
    graph = make_graph(tmp_path / "backfill")
    monkeypatch.delenv("TRADING_BROKER_URL")
    with DagsterInstance.ephemeral() as ephemeral:
        assert graph.run(ephemeral, "2026-03-20|09:30", "2026-03-20|15:59").success
        assert graph.run(
            ephemeral, f"{SESSION}|09:30", f"{SESSION}|09:44", job="backtest_job"
        ).success
    backfilled = graph.query("SELECT * FROM trading.trade_signals ORDER BY minute, signal_id")
    live = signals.sort_values(["minute", "signal_id"]).reset_index(drop=True)
    assert set(backfilled["portfolio_source"]) == {"backtest"}
    assert set(live["portfolio_source"]) == {"broker"}
    assert (live["open_positions"] > 0).any()  # later minutes were sized on earlier fills
    pd.testing.assert_frame_equal(backfilled[DECISION], live[DECISION], check_dtype=False)
    assert list(backfilled["reasons"]) == list(live["reasons"])
    assert list(backfilled["open_positions"]) == list(live["open_positions"])
    assert backfilled["equity"].to_numpy() == pytest.approx(live["equity"].to_numpy(), abs=0.01)
    fills = graph.query("SELECT * FROM trading.backtest_fills WHERE reason = 'entry'")
    entries = fills.set_index("trade_id")
    assert set(entries.index) == set(actionable.index)
    for sid in actionable.index:
        assert entries.loc[sid, "price"] == pytest.approx(rows.loc[sid, "entry_price"])
        assert (
            entries.loc[sid, "minute"] + pd.Timedelta(minutes=1) == rows.loc[sid, "entry_filled_at"]
        )
