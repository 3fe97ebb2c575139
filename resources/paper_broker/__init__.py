"""The embedded Alpaca-compatible paper broker (the default execution target)."""

from resources.paper_broker.app import BrokerEngine, PaperBroker, market_clock
from resources.paper_broker.state import BrokerState

__all__ = ["BrokerEngine", "BrokerState", "PaperBroker", "market_clock"]
