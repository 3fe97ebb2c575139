"""Trade signals, the signal sensor and the execution op on a real instance and the paper broker.

Real bundled session (2026-03-23), rules analysts, real DuckDB, the embedded paper broker over
HTTP through alpaca-py. The decisions are made one minute at a time with the broker's clock at
the minute's close, as live; what is asserted is derived from the stored signals and the bars.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest, StopLossRequest, TakeProfitRequest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context

from resources.broker import BrokerResource
from resources.paper_broker import PaperBroker
from resources.trading_controls import TradingControls
from sensors.signals import trade_signal_sensor
from tests.graph.conftest import Graph, make_graph, replay_bars_utc
from trading_assets.execution.fills import FillModel

SESSION = "2026-03-23"
FIRST, LAST = "09:30", "09:59"
LIVE = {"trading/live": "true"}


def key(minute: pd.Timestamp) -> str:
    return minute.strftime("%Y-%m-%d|%H:%M")


def close_utc(minute: pd.Timestamp) -> pd.Timestamp:
    return minute.tz_localize("America/New_York").tz_convert("UTC") + pd.Timedelta(minutes=1)


@dataclass
class Desk:
    graph: Graph
    instance: DagsterInstance
    broker: PaperBroker
    trading: TradingClient
    tmp: Path

    def decide(self, minute: pd.Timestamp, graph: Graph | None = None) -> pd.DataFrame:
        """trade_signals for `minute` with the broker's clock at its close, as live."""
        self.broker.set_clock(max(self.broker.now, close_utc(minute)))
        result = (
            (graph or self.graph)
            .defs.resolve_job_def("decision_job")
            .execute_in_process(
                instance=self.instance,
                tags={**LIVE, "dagster/partition": key(minute)},
                raise_on_error=False,
            )
        )
        assert result.success
        return self.signals(minute)

    def execute(self, first: pd.Timestamp, last: pd.Timestamp | None = None) -> pd.DataFrame:
        tags = (
            {"dagster/partition": key(first)}
            if last is None
            else {
                "dagster/asset_partition_range_start": key(first),
                "dagster/asset_partition_range_end": key(last),
            }
        )
        result = self.graph.defs.resolve_job_def("execute_signals").execute_in_process(
            instance=self.instance, tags=tags, raise_on_error=False
        )
        assert result.success
        return self.graph.query(
            "SELECT * FROM trading.broker_orders WHERE minute BETWEEN ? AND ?",
            [first.to_pydatetime(), (last or first).to_pydatetime()],
        )

    def signals(self, minute: pd.Timestamp) -> pd.DataFrame:
        return self.graph.query(
            "SELECT * FROM trading.trade_signals WHERE minute = ?", [minute.to_pydatetime()]
        )

    def broker_orders(self) -> list:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        return self.trading.get_orders(
            GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True, limit=500)
        )


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    tmp = tmp_path_factory.mktemp("desk")
    open_utc = pd.Timestamp(f"{SESSION} {FIRST}", tz="America/New_York").tz_convert("UTC")
    broker = PaperBroker(tmp / "paper.sqlite", start_time=open_utc).start()
    resource = BrokerResource(mode="embedded", base_url=broker.url, backoff_s=0.01, timeout_s=2)
    graph = make_graph(tmp, broker=resource, controls=TradingControls())
    (tmp / "home").mkdir()
    with DagsterInstance.local_temp(str(tmp / "home")) as instance:
        warm = graph.run(instance, "2026-03-20|09:30", "2026-03-20|15:59", job="ingest_job")
        research = graph.run(instance, f"{SESSION}|{FIRST}", f"{SESSION}|{LAST}", "research_job")
        assert warm.success and research.success
        trading = TradingClient("embedded", "embedded", url_override=broker.url)
        yield Desk(graph, instance, broker, trading, tmp)
    broker.stop()


def proposal_minutes(desk: Desk) -> list[pd.Timestamp]:
    frame = desk.graph.query(
        "SELECT DISTINCT minute FROM trading.debate WHERE debated AND action <> 'HOLD' "
        "ORDER BY minute"
    )
    return [pd.Timestamp(m) for m in frame["minute"]]


def evaluate(desk: Desk, cursor: str | None) -> SensorResult | SkipReason:
    context = build_sensor_context(
        instance=desk.instance, cursor=cursor, definitions=desk.graph.defs
    )
    return trade_signal_sensor(context)


def test_sensor_one_run_per_actionable_partition_and_never_twice(desk: Desk) -> None:
    decided = proposal_minutes(desk)
    quiet = pd.Timestamp(f"{SESSION} {FIRST}")
    assert quiet not in decided, "the bundled session's first minute has no verdict to trade"
    desk.decide(quiet)
    # a sensor turned on now starts after the newest event: old signals never trade
    start = evaluate(desk, None)
    assert isinstance(start, SensorResult) and not start.run_requests
    assert "first evaluation" in str(start.skip_reason)
    desk.decide(quiet)  # decided again after the sensor started: seen, nothing to execute
    nothing = evaluate(desk, start.cursor)
    assert isinstance(nothing, SensorResult) and not nothing.run_requests
    assert "no actionable signals" in str(nothing.skip_reason)
    first = decided[0]
    signals = desk.decide(first)
    actionable = signals[signals["action"] != "HOLD"]
    assert len(actionable) >= 1  # an empty book at the open: the first verdict is tradeable
    # the same minute decided with the kill switch on: proposals, none actionable
    blocked = make_graph(
        desk.tmp,
        broker=desk.graph.defs.resources["broker"],  # type: ignore[arg-type]
        controls=TradingControls(kill_switch=True),
    )
    killed = blocked.defs.resolve_job_def("decision_job").execute_in_process(
        instance=desk.instance, tags={**LIVE, "dagster/partition": key(first)}
    )
    killed_rows = blocked.query("SELECT * FROM trading.trade_signals")
    assert killed.success and len(killed_rows) == len(signals)
    assert (killed_rows["action"] == "HOLD").all()
    assert killed_rows["reasons"].str.contains("kill switch is on").all()

    result = evaluate(desk, nothing.cursor)
    assert isinstance(result, SensorResult)
    requests = result.run_requests or []
    assert [r.partition_key for r in requests] == [key(first)]  # not the quiet or killed one
    assert requests[0].run_key.startswith(key(first) + "|batch-")

    again = evaluate(desk, result.cursor)
    assert isinstance(again, SkipReason) and "no new" in str(again.skip_message)
    repeat = evaluate(desk, nothing.cursor)  # the same events again: the same keys, run once
    assert isinstance(repeat, SensorResult)
    assert [r.run_key for r in repeat.run_requests or []] == [requests[0].run_key]


def test_execute_signals_sends_each_bracket_exactly_once(desk: Desk) -> None:
    first = proposal_minutes(desk)[0]
    signals = desk.decide(first)
    wanted = signals[signals["action"] != "HOLD"].set_index("signal_id")
    ledger = desk.execute(first)
    sent = ledger.set_index("signal_id").loc[wanted.index]
    assert (sent["state"] == "submitted").all() and (sent["attempts"] == 1).all()

    orders = {o.client_order_id: o for o in desk.broker_orders()}
    assert set(orders) >= set(wanted.index)
    for sid, signal in wanted.iterrows():
        order = orders[sid]
        assert order.order_class == OrderClass.BRACKET
        assert float(order.qty) == signal["qty"]
        assert order.side == (OrderSide.BUY if signal["action"] == "BUY" else OrderSide.SELL)
        legs = {leg.order_type.value: leg for leg in order.legs}
        assert float(legs["limit"].limit_price) == pytest.approx(signal["take_profit"])
        assert float(legs["stop"].stop_price) == pytest.approx(signal["stop"])

    again = desk.execute(first).set_index("signal_id").loc[wanted.index]
    assert (again["attempts"] == 0).all()  # found by its id, not sent again
    assert len([o for o in desk.broker_orders() if o.client_order_id in wanted.index]) == len(
        wanted
    )
    sid = wanted.index[0]
    with pytest.raises(APIError) as refused:  # Alpaca's rule at the broker itself
        desk.trading.submit_order(
            MarketOrderRequest(
                symbol=wanted.loc[sid, "ticker"],
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                order_class=OrderClass.BRACKET,
                client_order_id=sid,
                take_profit=TakeProfitRequest(limit_price=round(wanted.loc[sid, "entry"] * 1.1, 2)),
                stop_loss=StopLossRequest(stop_price=round(wanted.loc[sid, "entry"] * 0.9, 2)),
            )
        )
    assert refused.value.status_code == 422

    # the next bar fills the entry at its open, moved 5 bps against the buyer (FillModel)
    desk.broker.set_clock(close_utc(first) + pd.Timedelta(minutes=1))
    filled = desk.execute(first).set_index("signal_id").loc[wanted.index]
    bars = replay_bars_utc().set_index(["symbol", "timestamp"])
    model = FillModel()
    for _, row in filled.iterrows():
        assert row["state"] in ("open", "closed")
        next_open = bars.loc[(row["ticker"], close_utc(first)), "open"]
        assert row["entry_price"] == pytest.approx(model.slipped(row["side"], next_open))
        assert row["entry_filled_at"] == first + pd.Timedelta(minutes=2)


def test_stale_signal_is_skipped_with_its_reason_and_never_sent_later(desk: Desk) -> None:
    decided = proposal_minutes(desk)
    later = [m for m in decided if m > decided[0]]
    minute = next(m for m in later if (desk.decide(m)["action"] != "HOLD").any())
    signals = desk.signals(minute)
    wanted = signals[signals["action"] != "HOLD"]["signal_id"].tolist()
    desk.broker.set_clock(close_utc(minute) + pd.Timedelta(minutes=3))  # the op ran late
    ledger = desk.execute(minute).set_index("signal_id").loc[wanted]
    assert (ledger["state"] == "skipped").all()
    assert ledger["reason"].str.contains("stale signal").all()
    ids = {o.client_order_id for o in desk.broker_orders()}
    assert not ids & set(wanted)
    again = desk.execute(minute).set_index("signal_id").loc[wanted]
    assert (again["state"] == "skipped").all() and not ids & set(wanted)


def test_broker_faults_still_give_one_order_per_signal(desk: Desk) -> None:
    decided = proposal_minutes(desk)
    done = set(desk.graph.query("SELECT DISTINCT minute FROM trading.broker_orders")["minute"])
    minute = next(
        m
        for m in decided
        if m not in done
        and m
        > desk.broker.now.tz_convert("America/New_York").tz_localize(None) - pd.Timedelta(minutes=1)
        and (desk.decide(m)["action"] != "HOLD").any()
    )
    wanted = desk.signals(minute).query("action != 'HOLD'")["signal_id"].tolist()
    # the first POST is applied but its answer is lost; the next one fails with a 500
    desk.broker.inject_fault("drop", 1, path="/v2/orders", after_processing=True)
    desk.broker.inject_fault("500", 1, path="/v2/orders")
    ledger = desk.execute(minute).set_index("signal_id").loc[wanted]
    assert (ledger["state"] == "submitted").all()
    ids = [o.client_order_id for o in desk.broker_orders()]
    assert all(ids.count(sid) == 1 for sid in wanted)


def test_close_all_positions_flattens_the_book(desk: Desk) -> None:
    desk.trading.submit_order(  # a position of its own, whatever the earlier tests left
        MarketOrderRequest(symbol="NVDA", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    desk.broker.advance("1min")
    held = desk.trading.get_all_positions()
    assert "NVDA" in {p.symbol for p in held}
    result = desk.graph.defs.resolve_job_def("close_all_positions").execute_in_process(
        instance=desk.instance, raise_on_error=False
    )
    assert result.success
    (closing,) = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    assert closing.event_specific_data.metadata["closing_orders"].value == len(held)
    desk.broker.advance("2min")  # the closing market orders fill at the next bar's open
    assert desk.trading.get_all_positions() == []
    open_orders = [o for o in desk.broker_orders() if o.status.value in ("new", "held")]
    assert open_orders == []  # the bracket legs went with their positions
