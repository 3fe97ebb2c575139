"""Exactly-once orders under faults (RELIABILITY.md): random broker faults over a replayed
window, a killed execution process, op and run retries, a signal batch requested twice.

Real bundled session (2026-03-23), rules analysts, real DuckDB, a Dagster instance on the local
Postgres, the embedded paper broker over HTTP through alpaca-py, and for the kills a separate
Python process running `execute_signals` from the code location, SIGKILLed mid-run.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, DagsterRunStatus

from resources.broker import BrokerResource
from resources.paper_broker import PaperBroker
from resources.paper_broker.server import CHAOS_KINDS
from resources.trading_controls import TradingControls
from tests.graph.conftest import Graph, make_graph, throwaway_postgres_instance
from trading_assets.execution.ledger import FINAL_STATES
from trading_assets.fault_drill import describe, drill_broker, run_fault_drill

pytestmark = pytest.mark.postgres

SESSION = "2026-03-23"
REPO_ROOT = Path(__file__).resolve().parents[2]
LIVE = {"trading/live": "true"}


def open_utc(hhmm: str = "09:30") -> pd.Timestamp:
    return pd.Timestamp(f"{SESSION} {hhmm}", tz="America/New_York").tz_convert("UTC")


def test_random_faults_over_a_replayed_window_lose_and_double_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A quarter of all broker calls fail at random (seeded); every batch is requested twice."""
    (tmp_path / "home").mkdir()
    with (
        PaperBroker(tmp_path / "paper.sqlite", start_time=open_utc()) as broker,
        throwaway_postgres_instance(tmp_path / "home") as (instance, _),
    ):
        graph = make_graph(tmp_path, broker=drill_broker(broker.url), controls=TradingControls())
        counts = run_fault_drill(
            graph.defs,
            instance,
            broker,
            graph.warehouse,
            SESSION,
            first="09:30",
            last="09:44",
            rate=0.25,
            seed=7,
            log=lambda line: None,
        )
    with capsys.disabled():
        print("\nfault drill:\n  " + "\n  ".join(describe(counts)))
    assert counts.fault_share >= 0.20
    assert {k for k in CHAOS_KINDS if counts.faults.get(k)} == set(CHAOS_KINDS)
    # every tick's request was evaluated twice with the same run keys, and launched twice
    assert counts.sensor_repeats_same_keys == counts.duplicate_requests_launched > 0
    assert counts.actionable > 0 and counts.orders_at_broker > 0
    assert counts.orders_doubled == 0
    assert counts.orders_without_signal == 0
    assert counts.ledger_duplicates == 0
    assert counts.signals_without_row == 0
    assert counts.signals_without_final_state == 0
    assert counts.sent_not_at_broker == 0
    assert counts.decision_failures == 0 and counts.execute_failures == 0


# --- a killed execution process -------------------------------------------------------------


@dataclass
class Desk:
    graph: Graph
    instance: DagsterInstance
    broker: PaperBroker
    home: Path
    tmp: Path

    def decide(self, minute: pd.Timestamp) -> list[str]:
        """trade_signals for `minute` with the broker at its close; the actionable ids."""
        close = minute.tz_localize("America/New_York").tz_convert("UTC") + pd.Timedelta(minutes=1)
        self.broker.set_clock(max(self.broker.now, close))
        result = self.graph.defs.resolve_job_def("decision_job").execute_in_process(
            instance=self.instance,
            tags={**LIVE, "dagster/partition": f"{minute:%Y-%m-%d|%H:%M}"},
            raise_on_error=False,
        )
        assert result.success
        signals = self.graph.query(
            "SELECT signal_id FROM trading.trade_signals WHERE minute = ? AND action <> 'HOLD' "
            "AND qty > 0",
            [minute.to_pydatetime()],
        )
        return sorted(signals["signal_id"])

    def orders(self, ids: list[str]) -> list[dict]:
        engine = self.broker.engine
        assert engine is not None
        with engine.lock:
            return [o for o in engine.state.orders() if o["client_order_id"] in ids]

    def ledger(self, minute: pd.Timestamp) -> pd.DataFrame:
        try:
            return self.graph.query(
                "SELECT * FROM trading.broker_orders WHERE minute = ?", [minute.to_pydatetime()]
            )
        except Exception as exc:  # no ledger table yet: nothing was ever recorded
            if "does not exist" in str(exc):
                return pd.DataFrame(columns=["signal_id", "state"])
            raise

    def execute_in_a_process(self, minute: pd.Timestamp) -> subprocess.Popen:
        """execute_signals for `minute` in its own process, from the code location as the run
        launcher would start it (environment: this desk's warehouse, broker and instance)."""
        env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "TRADING_WAREHOUSE": str(self.graph.warehouse),
            "TRADING_BROKER_MODE": "embedded",
            "TRADING_BROKER_URL": self.broker.url,
        }
        code = (
            "from dagster import DagsterInstance\n"
            "from trading_assets.definitions import defs\n"
            "defs.resolve_job_def('execute_signals').execute_in_process(\n"
            "    instance=DagsterInstance.get(),\n"
            f"    tags={{'dagster/partition': '{minute:%Y-%m-%d|%H:%M}'}})\n"
        )
        return subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def execute(self, minute: pd.Timestamp) -> pd.DataFrame:
        result = self.graph.defs.resolve_job_def("execute_signals").execute_in_process(
            instance=self.instance,
            tags={"dagster/partition": f"{minute:%Y-%m-%d|%H:%M}"},
            raise_on_error=False,
        )
        assert result.success
        return self.ledger(minute)


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    tmp = tmp_path_factory.mktemp("kill")
    home = tmp / "home"
    home.mkdir()
    with (
        PaperBroker(tmp / "paper.sqlite", start_time=open_utc()) as broker,
        throwaway_postgres_instance(home) as (instance, _),
    ):
        resource = BrokerResource(mode="embedded", base_url=broker.url, backoff_s=0.01)
        graph = make_graph(tmp, broker=resource, controls=TradingControls())
        warm = graph.run(instance, "2026-03-20|09:30", "2026-03-20|15:59", job="ingest_job")
        research = graph.run(instance, f"{SESSION}|09:30", f"{SESSION}|10:29", "research_job")
        assert warm.success and research.success
        yield Desk(graph, instance, broker, home, tmp)


def proposal_minutes(desk: Desk) -> list[pd.Timestamp]:
    frame = desk.graph.query(
        "SELECT DISTINCT minute FROM trading.debate WHERE debated AND action <> 'HOLD' "
        "ORDER BY minute"
    )
    return [pd.Timestamp(m) for m in frame["minute"]]


def next_tradeable(desk: Desk, after: pd.Timestamp | None) -> tuple[pd.Timestamp, list[str]]:
    """The next minute (after `after`) whose decision has at least one actionable signal."""
    for minute in proposal_minutes(desk):
        if after is not None and minute <= after:
            continue
        ids = desk.decide(minute)
        if ids:
            return minute, ids
    raise AssertionError("no further tradeable minute in the researched window")


def executed_until(desk: Desk) -> pd.Timestamp | None:
    """The last minute an earlier test executed (tests of this module trade later minutes)."""
    engine = desk.broker.engine
    assert engine is not None
    with engine.lock:
        ours = {o["client_order_id"] for o in engine.state.orders()}
    if not ours:
        return None
    signals = desk.graph.query("SELECT signal_id, minute FROM trading.trade_signals")
    return pd.Timestamp(signals[signals["signal_id"].isin(ours)]["minute"].max())


def wait_for(what: str, condition, timeout_s: float = 90.0) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return
        time.sleep(0.1)
    raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_killed_between_the_brokers_accept_and_the_ledger_write(desk: Desk) -> None:
    """The process dies after the broker booked the first order, before it heard back: the
    rerun finds that order by its client order id and sends the rest once."""
    minute, ids = next_tradeable(desk, None)
    desk.broker.inject_fault(
        "timeout", 1, path="/v2/orders", method="POST", after_processing=True, seconds=120
    )
    proc = desk.execute_in_a_process(minute)
    try:
        wait_for("the first order to be booked", lambda: len(desk.orders(ids)) >= 1)
    finally:
        kill(proc)
    desk.broker.clear_faults()
    assert len(desk.orders(ids)) == 1  # booked, never answered, never recorded
    assert desk.ledger(minute).empty
    stuck = desk.instance.get_runs()[0]
    assert stuck.job_name == "execute_signals" and stuck.status == DagsterRunStatus.STARTED

    ledger = desk.execute(minute).set_index("signal_id").loc[ids]
    orders = desk.orders(ids)
    assert sorted(o["client_order_id"] for o in orders if o["parent_id"] is None) == ids
    assert ledger["broker_order_id"].ne("").all()
    assert int(ledger["attempts"].eq(0).sum()) == 1  # the booked one: found, not re-sent
    again = desk.execute(minute).set_index("signal_id").loc[ids]
    assert again["attempts"].eq(0).all() and len(desk.orders(ids)) == len(orders)


def test_killed_after_every_send_before_the_ledger_write(desk: Desk) -> None:
    """The process dies while re-reading the orders for the ledger: every order is at the
    broker, no row was written; the rerun records each one once and sends nothing."""
    minute, ids = next_tradeable(desk, executed_until(desk))
    desk.broker.inject_fault("timeout", 1, path="/v2/orders", method="GET", seconds=120)
    before = desk.broker.fault_stats().get("timeout", 0)
    proc = desk.execute_in_a_process(minute)
    try:
        wait_for(
            "every order to be sent and the ledger refresh to hang",
            lambda: desk.broker.fault_stats().get("timeout", 0) > before,
        )
    finally:
        kill(proc)
    desk.broker.clear_faults()
    entries = [o for o in desk.orders(ids) if o["parent_id"] is None]
    assert sorted(o["client_order_id"] for o in entries) == ids
    assert desk.ledger(minute).empty

    ledger = desk.execute(minute).set_index("signal_id").loc[ids]
    assert ledger["attempts"].eq(0).all()  # every one found by its id
    assert ledger["state"].isin(["submitted", "open", *sorted(FINAL_STATES)]).all()
    assert len([o for o in desk.orders(ids) if o["parent_id"] is None]) == len(ids)


def test_op_retry_and_a_second_request_of_the_batch_send_once(desk: Desk) -> None:
    """The broker fails every read the op starts with (4 attempts): Dagster retries the op,
    which then sends; the same batch executed again sends nothing."""
    minute, ids = next_tradeable(desk, executed_until(desk))
    desk.broker.inject_fault("500", 4, path="/v2/clock")
    result = desk.graph.defs.resolve_job_def("execute_signals").execute_in_process(
        instance=desk.instance,
        tags={"dagster/partition": f"{minute:%Y-%m-%d|%H:%M}"},
        raise_on_error=False,
    )
    assert result.success
    retried = [
        e
        for e in desk.instance.all_logs(result.run_id)
        if e.dagster_event is not None and e.dagster_event.event_type.name == "STEP_UP_FOR_RETRY"
    ]
    assert len(retried) == 1 and "clock still failing" in str(retried[0].dagster_event)
    first = desk.ledger(minute).set_index("signal_id").loc[ids]
    assert first["attempts"].eq(1).all()
    second = desk.execute(minute).set_index("signal_id").loc[ids]
    assert second["attempts"].eq(0).all()
    assert len([o for o in desk.orders(ids) if o["parent_id"] is None]) == len(ids)


def test_the_same_batch_executed_by_two_processes_at_once_is_sent_once(desk: Desk) -> None:
    """Two run workers for one partition at the same time (a manual re-launch racing the
    sensor's run): each signal is one order at the broker and one ledger row."""
    minute, ids = next_tradeable(desk, executed_until(desk))
    procs = [desk.execute_in_a_process(minute) for _ in range(2)]
    try:
        codes = [proc.wait(timeout=180) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                kill(proc)
    assert codes == [0, 0]
    entries = [o for o in desk.orders(ids) if o["parent_id"] is None]
    assert sorted(o["client_order_id"] for o in entries) == ids
    ledger = desk.ledger(minute)
    assert sorted(ledger["signal_id"]) == sorted(set(ledger["signal_id"]))
    assert set(ids) <= set(ledger["signal_id"])
    assert ledger.set_index("signal_id").loc[ids, "broker_order_id"].ne("").all()
