"""Load: a replayed session at 10x with 50 tickers through the real daemon, nothing lost.

The driver (trading_assets/load.py) moves the embedded paper broker's clock to the next minute's
close every 6 s and submits the run request `intraday_schedule` makes for it to the run queue of
a throw-away Postgres instance; the real `dagster-daemon` launches each `intraday_job` in its own
process, and its `trade_signal_sensor` launches `execute_signals` for every minute with
actionable signals. The runs overlap, so several processes share the single-writer DuckDB
warehouse and the Postgres instance at once. Bars are the bundled real ones, replicated under
new symbols to 50 tickers (benchmarks/scale.py).

The decisions size on the ledger (`TRADING_PORTFOLIO_SOURCE=ledger`): at 10x the broker-book
guard (3 session minutes = 18 s of wall time behind the broker's clock) would refuse every run
that waited in the queue, by design; what is under test here is that no run is lost.
"""

from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance

from benchmarks.scale import build_replay
from resources.paper_broker import PaperBroker
from tests.graph.conftest import make_graph, throwaway_postgres_instance
from trading_assets.load import load_session

SESSION = "2026-03-23"
FIRST, LAST = "09:33", "09:34"  # 09:34 has BUY/SELL verdicts; 09:30-09:32 are warm-up


@pytest.mark.postgres
def test_a_10x_replay_with_50_tickers_loses_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    symbols = build_replay(tmp_path / "replay", 50)
    assert len(symbols) == 50
    opened = pd.Timestamp(f"{SESSION} 09:30", tz="America/New_York").tz_convert("UTC")
    monkeypatch.delenv("TRADING_REPLAY_CLOCK", raising=False)
    with (
        throwaway_postgres_instance(home) as (_instance, _db),
        PaperBroker(tmp_path / "paper.sqlite", start_time=opened) as broker,
    ):
        for name, value in {
            "DAGSTER_HOME": str(home),
            "TRADING_DATA_DIR": str(tmp_path / "data"),
            "TRADING_REPLAY_DIR": str(tmp_path / "replay"),
            "TRADING_BROKER_MODE": "embedded",
            "TRADING_BROKER_URL": broker.url,
            "TRADING_PORTFOLIO_SOURCE": "ledger",
        }.items():
            monkeypatch.setenv(name, value)
        result = load_session(
            SESSION,
            FIRST,
            LAST,
            speed=10.0,
            set_clock=broker.set_clock,
            broker_orders=lambda: broker._require_engine().state.orders(),
            tickers=len(symbols),
            drain_timeout_s=600.0,
            log=lambda _: None,
        )

    minutes = [t.minute for t in result.ticks]
    assert len(minutes) == 2 and result.drained
    # every ticked minute has exactly one intraday run, and it succeeded
    by_minute = result.intraday_by_minute()
    assert {m: len(runs) for m, runs in by_minute.items()} == dict.fromkeys(minutes, 1)
    assert result.lost == [] and result.failed == []
    assert sorted(result.succeeded) == sorted(minutes)
    # the runs really overlapped: a minute's run outlived its 6 s slot
    assert result.backlog_max >= 1
    # every actionable minute was executed exactly once, by a successful run; no other minute
    actionable = set(result.actionable_minutes)
    assert actionable  # the window has BUY/SELL decisions, so the execution path ran
    executes = result.execute_by_minute()
    assert set(executes) == actionable
    assert all(len(runs) == 1 and runs[0].status == "SUCCESS" for runs in executes.values())
    # one ledger row per signal; every order at the broker is in the ledger, none twice
    assert result.ledger_rows > 0 and result.ledger_duplicates == 0
    assert result.order_duplicates == 0 and result.orders == result.ledger_sent
    # every lock conflict was waited out; none surfaced as a failure; Postgres stayed clean
    _handled, unhandled = result.lock_counts()
    assert unhandled == 0
    assert all(not r.pg_errors for r in [*result.intraday, *result.execute])
    assert not result.daemon_log.get("duckdb lock / IO Error")


def test_a_later_minutes_run_does_not_fail_an_earlier_minutes_check(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    """Overlapping runs: 09:31's run writes bars before 09:30's blocking check reads them. The
    check's "rows written outside the range" are the rows of the run that wrote *its* range,
    not of the asset's latest run (which failed every overlapping minute before)."""
    graph = make_graph(tmp_path)
    assert graph.run(instance, f"{SESSION}|09:30").success
    assert graph.run(instance, f"{SESSION}|09:31").success  # the asset's latest run now
    earlier = graph.recheck(instance, f"{SESSION}|09:30", f"{SESSION}|09:30", "bars_valid")
    assert earlier.passed, earlier.description
    # a row that 09:30's own run leaked past its end still fails it
    graph.execute(
        "INSERT INTO trading.bars SELECT * REPLACE (minute + INTERVAL 30 MINUTE AS minute) "
        "FROM trading.bars WHERE minute = ? AND ticker = 'SPY'",
        [pd.Timestamp(f"{SESSION} 09:30")],
    )
    leaked = graph.recheck(instance, f"{SESSION}|09:30", f"{SESSION}|09:30", "bars_valid")
    assert not leaked.passed and "1 rows written outside the partition range" in (
        leaked.description or ""
    )
