"""One execution run's signals share the account: an order sent earlier in the run counts
against the buying power and exposure the next one is checked with (paper broker over HTTP)."""

from pathlib import Path

import pandas as pd

from resources.broker import BrokerResource
from resources.paper_broker import PaperBroker
from resources.trading_controls import TradingControls
from trading_assets.execution.send import SendContext, execute_signal

START = "2026-03-12T14:00:30Z"  # 10:00:30 New York: the 09:59 bar has just closed
MINUTE = pd.Timestamp("2026-03-12 09:59")


def signal(ticker: str, qty: int, price: float) -> dict:
    return {
        "minute": MINUTE,
        "signal_id": f"sig-run-{ticker.lower()}",
        "ticker": ticker,
        "action": "BUY",
        "proposed_action": "BUY",
        "status": "approved",
        "qty": qty,
        "entry": price,
        "stop": round(price * 0.99, 2),
        "take_profit": round(price * 1.02, 2),
        "reasons": "[]",
    }


def test_second_order_of_a_run_is_checked_against_the_first(tmp_path: Path) -> None:
    with PaperBroker(tmp_path / "paper.sqlite", start_time=START) as broker:
        client = BrokerResource(mode="embedded", base_url=broker.url, backoff_s=0.01).client()
        quotes = {t: client.latest_quote(t) for t in ("AAPL", "MSFT")}
        equity = client.account().equity
        # each order is 6 % of equity: either alone fits the 10 % gross cap, both do not
        wanted = [signal(t, int(equity * 0.06 / q.ask), round(q.ask, 2)) for t, q in quotes.items()]
        ctx = SendContext(clock=client.clock(), account=client.account(), positions=[])
        controls = TradingControls()
        rows = [execute_signal(client, s, ctx, controls, "embedded", None) for s in wanted]

    assert rows[0]["state"] == "submitted"
    assert rows[1]["state"] == "skipped"
    assert "total exposure at send time" in rows[1]["reason"]
    assert ctx.opened == {"AAPL"}
    assert ctx.committed > 0.05 * equity


def test_a_signal_the_broker_cannot_be_asked_about_is_an_error_then_sent_once(
    tmp_path: Path,
) -> None:
    """The look-up before the send fails on every attempt: the signal is `error` (nothing sent,
    the next pass or run looks again), not an exception that would lose the whole batch."""
    with PaperBroker(tmp_path / "paper.sqlite", start_time=START) as broker:
        client = BrokerResource(mode="embedded", base_url=broker.url, backoff_s=0.01).client()
        quote = client.latest_quote("AAPL")
        wanted = signal("AAPL", 1, round(quote.ask, 2))
        ctx = SendContext(clock=client.clock(), account=client.account(), positions=[])
        broker.inject_fault("500", 4, path="/v2/orders:by_client_order_id")
        failed = execute_signal(client, wanted, ctx, TradingControls(), "embedded", None)
        assert failed["state"] == "error" and failed["attempts"] == 0
        assert "broker unavailable before sending" in failed["reason"]
        assert client.order_by_client_id(wanted["signal_id"]) is None
        # the answer to the POST is lost after the broker booked it: found, not sent twice
        broker.inject_fault("drop", 1, path="/v2/orders", method="POST", after_processing=True)
        sent = execute_signal(client, wanted, ctx, TradingControls(), "embedded", failed)
        again = execute_signal(client, wanted, ctx, TradingControls(), "embedded", sent)
        orders = client.orders_since(pd.Timestamp("2026-03-12", tz="UTC"))
    assert sent["state"] == "submitted" and sent["attempts"] == 1
    assert again["state"] == "submitted" and again["attempts"] == 0
    assert [o.client_order_id for o in orders] == [wanted["signal_id"]]
