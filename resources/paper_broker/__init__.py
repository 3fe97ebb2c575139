"""The embedded Alpaca-compatible paper broker (the default execution target).

clock (XNYS market clock), bars (replayed 1-minute bars), state (SQLite books), engine (orders
and fills), wire (Alpaca JSON shapes), server (HTTP, faults); `python -m resources.paper_broker`.
"""

from resources.paper_broker.clock import market_clock
from resources.paper_broker.engine import BrokerEngine
from resources.paper_broker.server import PaperBroker
from resources.paper_broker.state import BrokerState

__all__ = ["BrokerEngine", "BrokerState", "PaperBroker", "market_clock"]
