"""The embedded paper broker: an Alpaca-compatible HTTP server filling against bundled real bars.

It speaks the part of Alpaca's trading and market-data APIs that alpaca-py uses here, so the
execution op runs the same client code against it, against Alpaca paper, or (opted in) live:

    GET  /v2/account                      GET  /v2/clock
    POST /v2/orders                       GET  /v2/orders        DELETE /v2/orders
    GET  /v2/orders/{id}                  DELETE /v2/orders/{id}
    GET  /v2/orders:by_client_order_id?client_order_id=...
    GET  /v2/positions                    DELETE /v2/positions   (close all; ?cancel_orders=true)
    GET  /v2/positions/{symbol}           DELETE /v2/positions/{symbol}
    GET  /v2/stocks/bars                  GET  /v2/stocks/quotes/latest   GET /v2/stocks/bars/latest

and, for tests and the backtest-like driver, admin endpoints that are never faulted:

    GET/POST /admin/clock   {"now": ISO} sets, {"advance_seconds": n} advances the simulated time
    POST /admin/faults      {"kind": "500"|"429"|"timeout"|"drop", "times": n, "path": ...,
                             "retry_after": s, "seconds": s, "after_processing": bool}
    DELETE /admin/faults    GET /admin/fills

Time is simulated: it only moves through the admin clock (or `PaperBroker.set_clock`). A bar is
used only once it has closed (start + 1 min <= now), so nothing from the simulated future leaks
into fills, quotes or bars. Market orders submitted at t fill at the open of the first bar
starting at or after t, through `FillModel`, once that bar has closed; bracket legs are created
`held` and become `new` when the parent fills; exits follow `FillModel.bracket_exit` bar by bar
(stop first). Positions are flattened at each session's last bar close (the product's
intraday rule; `flatten_at_close=False` turns it off) and open orders on that symbol cancelled.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from resources.paper_broker.state import (
    OPEN_STATUSES,
    BrokerState,
    DuplicateClientOrderId,
    iso,
    parse_ts,
)
from resources.providers.replay import BUNDLED_REPLAY_DIR, ReplayProvider
from trading_assets.execution.fills import Fill, FillModel, opposite
from trading_assets.partitions import nyse_calendar

MARKET_TZ = "America/New_York"
ONE_MINUTE = pd.Timedelta(minutes=1)
EXCHANGES = {"SPY": "ARCA", "QQQ": "NASDAQ"}


class ApiError(Exception):
    """An error answered in Alpaca's JSON shape: {"code": ..., "message": ...}."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _num(value: float | None) -> str | None:
    """Alpaca sends quantities and prices as strings; whole numbers without a decimal point."""
    if value is None:
        return None
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _et(ts: pd.Timestamp) -> str:
    return ts.tz_convert(MARKET_TZ).isoformat()


def _asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"paper-broker/asset/{symbol}"))


@functools.lru_cache(maxsize=64)
def _schedule(day: str) -> pd.DataFrame:
    """NYSE sessions (UTC open/close) around `day`: enough to answer any clock question there."""
    d = pd.Timestamp(day)
    cal = nyse_calendar(
        (d - pd.Timedelta(days=10)).strftime("%Y-%m-%d"),
        (d + pd.Timedelta(days=20)).strftime("%Y-%m-%d"),
    )
    return cal.schedule[["open", "close"]]


def market_clock(now: pd.Timestamp) -> tuple[bool, pd.Timestamp, pd.Timestamp]:
    """(is_open, next_open, next_close) at `now` from the XNYS calendar (holidays, early closes)."""
    sched = _schedule(now.tz_convert(MARKET_TZ).strftime("%Y-%m-%d"))
    is_open = bool(((sched["open"] <= now) & (now < sched["close"])).any())
    next_open = sched["open"][sched["open"] > now].iloc[0]
    next_close = sched["close"][sched["close"] > now].iloc[0]
    return is_open, next_open, next_close


class BarStore:
    """The replay folder's 1-minute bars, per symbol, with each session's last bar marked."""

    def __init__(self, folder: str | Path) -> None:
        provider = ReplayProvider(folder)
        tickers = provider.default_tickers()
        frame = provider.fetch_bars(
            tickers, pd.Timestamp("1900-01-01", tz="UTC"), pd.Timestamp("2200-01-01", tz="UTC")
        )
        self._bars: dict[str, pd.DataFrame] = {}
        self._starts: dict[str, np.ndarray] = {}
        for symbol, bars in frame.groupby("ticker", sort=True):
            bars = bars.sort_values("timestamp").reset_index(drop=True)
            day = bars["timestamp"].dt.tz_convert(MARKET_TZ).dt.date
            bars["last_of_session"] = day.ne(day.shift(-1))
            self._bars[str(symbol)] = bars
            naive = bars["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
            self._starts[str(symbol)] = naive.to_numpy(dtype="datetime64[ns]")

    @property
    def symbols(self) -> list[str]:
        return list(self._bars)

    @property
    def first_start(self) -> pd.Timestamp:
        return min(b["timestamp"].iloc[0] for b in self._bars.values())

    def _index(self, symbol: str, ts: pd.Timestamp, side: str) -> int:
        key = ts.tz_convert("UTC").tz_localize(None).to_datetime64()
        return int(np.searchsorted(self._starts[symbol], key, side=side))  # type: ignore[call-overload]

    def closed_between(self, symbol: str, start: pd.Timestamp, now: pd.Timestamp) -> pd.DataFrame:
        """Bars starting at or after `start` that have closed by `now`."""
        if symbol not in self._bars:
            return self._bars[next(iter(self._bars))].iloc[0:0]
        lo = self._index(symbol, start, "left")
        hi = self._index(symbol, now - ONE_MINUTE, "right")
        return self._bars[symbol].iloc[lo : max(lo, hi)]

    def latest_closed(self, symbol: str, now: pd.Timestamp) -> pd.Series | None:
        if symbol not in self._bars:
            return None
        hi = self._index(symbol, now - ONE_MINUTE, "right")
        return None if hi == 0 else self._bars[symbol].iloc[hi - 1]


@dataclass
class Fault:
    kind: str  # "500" | "429" | "timeout" | "drop"
    remaining: int
    path: str | None = None
    retry_after: int = 1
    seconds: float = 5.0
    after_processing: bool = False


class BrokerEngine:
    """Orders, fills and clock over `BrokerState` and `BarStore`; no HTTP here."""

    def __init__(
        self,
        state: BrokerState,
        bars: BarStore,
        *,
        fill_model: FillModel,
        spread_bps: float,
        flatten_at_close: bool,
    ) -> None:
        self.state = state
        self.bars = bars
        self.model = fill_model
        self.spread_bps = spread_bps
        self.flatten_at_close = flatten_at_close
        self.lock = threading.RLock()

    # --- clock ----------------------------------------------------------------------------------

    @property
    def now(self) -> pd.Timestamp:
        return self.state.now

    def set_clock(self, now: pd.Timestamp) -> pd.Timestamp:
        """Move simulated time forward and settle every bar that closed meanwhile."""
        now = pd.Timestamp(now)
        now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
        with self.lock:
            if now < self.now:
                raise ApiError(409, 40910000, f"clock cannot go back from {iso(self.now)}")
            self.state.set_meta("now", iso(now))
            self.settle()
            return now

    def clock_json(self) -> dict[str, Any]:
        now = self.now
        is_open, next_open, next_close = market_clock(now)
        return {
            "timestamp": _et(now),
            "is_open": is_open,
            "next_open": _et(next_open),
            "next_close": _et(next_close),
        }

    # --- prices ---------------------------------------------------------------------------------

    def last_price(self, symbol: str) -> float | None:
        bar = self.bars.latest_closed(symbol, self.now)
        return None if bar is None else float(bar["close"])

    def quote_json(self, symbol: str) -> dict[str, Any] | None:
        """Bid/ask around the latest closed bar's close, `spread_bps` wide."""
        bar = self.bars.latest_closed(symbol, self.now)
        if bar is None:
            return None
        close = float(bar["close"])
        half = close * self.spread_bps / 20_000.0
        return {
            "t": iso(bar["timestamp"] + ONE_MINUTE),
            "ax": "V",
            "ap": close + half,
            "as": 1,
            "bx": "V",
            "bp": close - half,
            "bs": 1,
            "c": ["R"],
            "z": "C" if symbol in EXCHANGES else "A",
        }

    # --- orders ---------------------------------------------------------------------------------

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v2/orders: validate like Alpaca, book the order (and legs); fills come later."""
        with self.lock:
            now = self.now
            symbol = str(body.get("symbol") or "").upper()
            if symbol not in self.bars.symbols:
                raise ApiError(422, 40010001, f'asset "{symbol}" not found')
            if body.get("notional") is not None:
                raise ApiError(
                    422, 40010001, "notional orders are not supported by the paper broker"
                )
            try:
                qty = float(body.get("qty"))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ApiError(422, 40010001, "qty is required") from None
            if not math.isfinite(qty) or qty <= 0:
                raise ApiError(422, 40010001, "qty must be > 0")
            side = body.get("side")
            if side not in ("buy", "sell"):
                raise ApiError(422, 40010001, "side must be buy or sell")
            if body.get("type") != "market":
                raise ApiError(
                    422, 40010001, "only market orders are supported by the paper broker"
                )
            tif = body.get("time_in_force")
            if tif not in ("day", "gtc"):
                raise ApiError(422, 40010001, "time_in_force must be day or gtc")
            order_class = body.get("order_class") or "simple"
            if order_class not in ("simple", "bracket"):
                raise ApiError(422, 40010001, f"order_class {order_class} is not supported")
            client_order_id = str(body.get("client_order_id") or uuid.uuid4())
            if len(client_order_id) > 128:
                raise ApiError(422, 40010001, "client_order_id must be at most 128 characters")
            if self.state.order_by_client_id(client_order_id) is not None:
                raise ApiError(422, 40010001, "client_order_id must be unique")
            base = self.last_price(symbol)
            take_profit = stop = stop_limit = None
            if order_class == "bracket":
                try:
                    take_profit = float(body["take_profit"]["limit_price"])
                    stop = float(body["stop_loss"]["stop_price"])
                except (KeyError, TypeError, ValueError):
                    raise ApiError(
                        422,
                        40010001,
                        "bracket orders need take_profit.limit_price and stop_loss.stop_price",
                    ) from None
                stop_limit = body["stop_loss"].get("limit_price")
                self._check_bracket(side, base, take_profit, stop)
            if side == "buy" and base is not None:
                cost = qty * base + self._reserved_for_buys()
                if cost > self.state.cash:
                    raise ApiError(403, 40310000, "insufficient buying power")
            status = "new" if market_clock(now)[0] else "accepted"
            order_id = str(uuid.uuid4())
            stamp = iso(now)
            common = {
                "symbol": symbol,
                "time_in_force": tif,
                "created_at": stamp,
                "updated_at": stamp,
                "submitted_at": stamp,
                "extended_hours": int(bool(body.get("extended_hours"))),
                "order_class": order_class,
            }
            intent = body.get("position_intent") or self._intent(symbol, side)
            with self.state.transaction():
                if not self._active(symbol):
                    self.state.set_cursor(symbol, now)
                try:
                    self.state.insert_order(
                        dict(
                            common,
                            id=order_id,
                            client_order_id=client_order_id,
                            side=side,
                            type="market",
                            qty=qty,
                            status=status,
                            position_intent=intent,
                        )
                    )
                except DuplicateClientOrderId:  # lost a race with a concurrent retry
                    raise ApiError(422, 40010001, "client_order_id must be unique") from None
                if order_class == "bracket":
                    exit_side = opposite(side)
                    exit_intent = "sell_to_close" if side == "buy" else "buy_to_close"
                    legs = [
                        ("take_profit", "limit", take_profit, None),
                        ("stop_loss", "stop_limit" if stop_limit else "stop", stop_limit, stop),
                    ]
                    for leg, kind, limit_price, stop_price in legs:
                        self.state.insert_order(
                            dict(
                                common,
                                id=str(uuid.uuid4()),
                                client_order_id=str(uuid.uuid4()),
                                parent_id=order_id,
                                leg=leg,
                                side=exit_side,
                                type=kind,
                                qty=qty,
                                limit_price=limit_price,
                                stop_price=stop_price,
                                status="held",
                                position_intent=exit_intent,
                            )
                        )
            order = self.state.order(order_id)
            assert order is not None
            return self.order_json(order)

    @staticmethod
    def _check_bracket(side: str, base: float | None, take_profit: float, stop: float) -> None:
        """Alpaca's bracket sanity rules, with the latest close as base price."""
        if side == "buy":
            if take_profit <= stop:
                raise ApiError(
                    422, 42210000, "take_profit.limit_price must be > stop_loss.stop_price"
                )
            if base is not None and take_profit < base + 0.01:
                raise ApiError(
                    422, 42210000, f"take_profit.limit_price must be >= base_price + 0.01 ({base})"
                )
            if base is not None and stop > base - 0.01:
                raise ApiError(
                    422, 42210000, f"stop_loss.stop_price must be <= base_price - 0.01 ({base})"
                )
        else:
            if take_profit >= stop:
                raise ApiError(
                    422, 42210000, "take_profit.limit_price must be < stop_loss.stop_price"
                )
            if base is not None and take_profit > base - 0.01:
                raise ApiError(
                    422, 42210000, f"take_profit.limit_price must be <= base_price - 0.01 ({base})"
                )
            if base is not None and stop < base + 0.01:
                raise ApiError(
                    422, 42210000, f"stop_loss.stop_price must be >= base_price + 0.01 ({base})"
                )

    def _reserved_for_buys(self) -> float:
        total = 0.0
        for order in self.state.orders(open_only=True):
            if order["side"] == "buy" and order["parent_id"] is None:
                price = self.last_price(order["symbol"]) or 0.0
                total += (float(order["qty"]) - float(order["filled_qty"])) * price
        return total

    def _intent(self, symbol: str, side: str) -> str:
        position = self.state.position(symbol)
        qty = 0.0 if position is None else float(position["qty"])
        if side == "buy":
            return "buy_to_close" if qty < 0 else "buy_to_open"
        return "sell_to_close" if qty > 0 else "sell_to_open"

    def _active(self, symbol: str) -> bool:
        return bool(self.state.orders(open_only=True, symbol=symbol)) or (
            self.state.position(symbol) is not None
        )

    def get_order(self, order_id: str) -> dict[str, Any]:
        order = self.state.order(order_id)
        if order is None:
            raise ApiError(404, 40410000, "order not found")
        return self.order_json(order)

    def get_order_by_client_id(self, client_order_id: str) -> dict[str, Any]:
        order = self.state.order_by_client_id(client_order_id)
        if order is None:
            raise ApiError(404, 40410000, "order not found")
        return self.order_json(order)

    def list_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """GET /v2/orders: status open|closed|all (default open), limit (50), after, until,
        direction (desc), nested, symbols, side."""
        status = params.get("status", "open")
        nested = params.get("nested", "false").lower() == "true"
        symbols = {s.upper() for s in params.get("symbols", "").split(",") if s}
        after = pd.Timestamp(params["after"]) if params.get("after") else None
        until = pd.Timestamp(params["until"]) if params.get("until") else None
        rows = []
        for order in self.state.orders():
            is_open = order["status"] in OPEN_STATUSES
            if (status == "open" and not is_open) or (status == "closed" and is_open):
                continue
            if nested and order["parent_id"] is not None:
                continue
            if symbols and order["symbol"] not in symbols:
                continue
            if params.get("side") and order["side"] != params["side"]:
                continue
            submitted = parse_ts(order["submitted_at"])
            if after is not None and submitted is not None and submitted <= _utc(after):
                continue
            if until is not None and submitted is not None and submitted >= _utc(until):
                continue
            rows.append(self.order_json(order, with_legs=nested))
        if params.get("direction", "desc") == "desc":
            rows.reverse()
        return rows[: int(params.get("limit") or 50)]

    def cancel(self, order_id: str) -> None:
        with self.lock:
            order = self.state.order(order_id)
            if order is None:
                raise ApiError(404, 40410000, "order not found")
            if order["status"] not in OPEN_STATUSES:
                raise ApiError(422, 42210000, f"order is not cancelable (status {order['status']})")
            self._cancel_tree(order, "canceled")

    def cancel_all(self) -> list[dict[str, Any]]:
        with self.lock:
            out = []
            for listed in self.state.orders(open_only=True):
                order = self.state.order(listed["id"]) or listed
                if order["status"] not in OPEN_STATUSES:
                    continue  # already cancelled with its parent
                self._cancel_tree(order, "canceled")
                out.append({"id": order["id"], "status": 200})
            return out

    def _cancel_tree(self, order: dict[str, Any], status: str) -> None:
        stamp = iso(self.now)
        stamp_field = "expired_at" if status == "expired" else "canceled_at"
        with self.state.transaction():
            for row in [order, *self.state.legs(order["id"])]:
                if row["status"] in OPEN_STATUSES:
                    self.state.update_order(
                        row["id"], status=status, updated_at=stamp, **{stamp_field: stamp}
                    )

    # --- positions ------------------------------------------------------------------------------

    def positions_json(self) -> list[dict[str, Any]]:
        return [self.position_json(p) for p in self.state.positions()]

    def position(self, symbol: str) -> dict[str, Any]:
        row = self.state.position(symbol.upper())
        if row is None:
            raise ApiError(404, 40410000, "position does not exist")
        return self.position_json(row)

    def close_position(self, symbol: str) -> dict[str, Any]:
        with self.lock:
            row = self.state.position(symbol.upper())
            if row is None:
                raise ApiError(404, 40410000, "position does not exist")
            return self._close(row)

    def close_all(self, cancel_orders: bool) -> list[dict[str, Any]]:
        """DELETE /v2/positions: one market order per position (held shares refuse, as Alpaca)."""
        with self.lock:
            if cancel_orders:
                self.cancel_all()
            out = []
            for row in self.state.positions():
                try:
                    order = self._close(row)
                    out.append({"symbol": row["symbol"], "status": 200, "body": order})
                except ApiError as exc:
                    body = {"code": exc.code, "message": exc.message, "symbol": row["symbol"]}
                    out.append({"symbol": row["symbol"], "status": exc.status, "body": body})
            return out

    def _close(self, row: dict[str, Any]) -> dict[str, Any]:
        qty = float(row["qty"])
        held = sum(
            float(o["qty"]) - float(o["filled_qty"])
            for o in self.state.orders(open_only=True, symbol=row["symbol"])
            if o["leg"] == "stop_loss" and o["status"] == "new"
        )
        available = abs(qty) - held
        if available <= 1e-9:
            raise ApiError(
                403,
                40310000,
                f"insufficient qty available for order (requested: {_num(abs(qty))}, "
                f"available: {_num(max(available, 0.0))})",
            )
        return self.submit(
            {
                "symbol": row["symbol"],
                "qty": available,
                "side": "sell" if qty > 0 else "buy",
                "type": "market",
                "time_in_force": "day",
            }
        )

    # --- settlement -----------------------------------------------------------------------------

    def settle(self) -> None:
        """Walk every closed bar since each active symbol's cursor; then expire stale day orders."""
        with self.lock:
            now = self.now
            symbols = {o["symbol"] for o in self.state.orders(open_only=True)}
            symbols |= {p["symbol"] for p in self.state.positions()}
            for symbol in sorted(symbols):
                cursor = self.state.cursor(symbol) or now
                for bar in self.bars.closed_between(symbol, cursor, now).itertuples(index=False):
                    with self.state.transaction():
                        self._process_bar(symbol, bar)
                        self.state.set_cursor(symbol, bar.timestamp + ONE_MINUTE)
                    if not self._active(symbol):
                        break  # nothing left to watch; the next order resets the cursor
            for order in self.state.orders(open_only=True):
                if order["parent_id"] is None and order["time_in_force"] == "day":
                    submitted = parse_ts(order["submitted_at"])
                    assert submitted is not None
                    if now >= market_clock(submitted)[2] and not self._bracket_holding(order):
                        self._cancel_tree(order, "expired")

    def _bracket_holding(self, order: dict[str, Any]) -> bool:
        """A filled-enough bracket whose legs still protect a position stays alive (legs are
        GTC-like in the paper broker until flattened)."""
        return float(order["filled_qty"]) > 0 and any(
            leg["status"] in OPEN_STATUSES for leg in self.state.legs(order["id"])
        )

    def _process_bar(self, symbol: str, bar: Any) -> None:
        start = bar.timestamp
        stamp = start + ONE_MINUTE  # when the broker learns of the fill: the bar's close
        # 1. exits of filled brackets, on bars after their last entry fill
        for parent in self.state.orders(symbol=symbol):
            if parent["order_class"] != "bracket" or parent["parent_id"] is not None:
                continue
            legs = {leg["leg"]: leg for leg in self.state.legs(parent["id"])}
            active = [leg for leg in legs.values() if leg["status"] == "new"]
            if not active or parse_ts(parent["last_fill_bar"]) >= start:  # type: ignore[operator]
                continue
            take = legs.get("take_profit")
            stop = legs.get("stop_loss")
            fill = self.model.bracket_exit(
                parent["side"],
                None if stop is None else float(stop["stop_price"]),
                None if take is None else float(take["limit_price"]),
                [bar],
                qty=float(active[0]["qty"]),
            )
            if fill is None:
                continue
            hit = stop if fill.reason == "stop" else take
            assert hit is not None
            self.state.record_fill(hit["id"], symbol, fill, stamp)
            for leg in legs.values():
                if leg["id"] != hit["id"] and leg["status"] in OPEN_STATUSES:
                    self.state.update_order(
                        leg["id"], status="canceled", canceled_at=iso(stamp), updated_at=iso(stamp)
                    )
            if parent["status"] in OPEN_STATUSES:  # the rest of a partly filled entry
                self.state.update_order(
                    parent["id"], status="canceled", canceled_at=iso(stamp), updated_at=iso(stamp)
                )
        # 2. working market orders, sharing the bar's volume cap in submission order
        used = 0.0
        for order in self.state.orders(open_only=True, symbol=symbol):
            if order["type"] != "market" or parse_ts(order["submitted_at"]) > start:  # type: ignore[operator]
                continue
            left = float(bar.volume) - used / self.model.max_volume_fraction
            remaining = float(order["qty"]) - float(order["filled_qty"])
            fill = self.model.entry_fill(
                order["side"],
                remaining,
                {"open": bar.open, "volume": max(left, 0.0), "timestamp": start},
            )
            if fill is None:
                continue
            used += fill.qty
            self.state.record_fill(order["id"], symbol, fill, stamp)
            if order["order_class"] == "bracket":
                filled = float(order["filled_qty"]) + fill.qty
                for leg in self.state.legs(order["id"]):
                    if leg["status"] in ("held", "new"):
                        self.state.update_order(
                            leg["id"], status="new", qty=filled, updated_at=iso(stamp)
                        )
        # 3. flat at the close
        if self.flatten_at_close and bool(bar.last_of_session):
            for order in self.state.orders(open_only=True, symbol=symbol):
                self._cancel_tree(order, "canceled")  # entries and legs alike
            position = self.state.position(symbol)
            if position is not None:
                qty = float(position["qty"])
                fill = self.model.close_fill(
                    "buy" if qty > 0 else "sell",
                    abs(qty),
                    {"close": bar.close, "timestamp": start},
                )
                self._book_flatten(symbol, fill, stamp)

    def _book_flatten(self, symbol: str, fill: Fill, at: pd.Timestamp) -> None:
        order_id = str(uuid.uuid4())
        stamp = iso(at)
        self.state.insert_order(
            {
                "id": order_id,
                "client_order_id": f"flatten-{order_id}",
                "symbol": symbol,
                "side": fill.side,
                "type": "market",
                "order_class": "simple",
                "time_in_force": "day",
                "qty": fill.qty,
                "status": "new",
                "position_intent": "sell_to_close" if fill.side == "sell" else "buy_to_close",
                "created_at": stamp,
                "updated_at": stamp,
                "submitted_at": stamp,
            }
        )
        self.state.record_fill(order_id, symbol, fill, at)

    # --- wire formats ---------------------------------------------------------------------------

    def order_json(self, order: dict[str, Any], *, with_legs: bool = True) -> dict[str, Any]:
        legs = None
        if with_legs and order["order_class"] == "bracket" and order["parent_id"] is None:
            legs = [self.order_json(leg, with_legs=False) for leg in self.state.legs(order["id"])]
        return {
            "id": order["id"],
            "client_order_id": order["client_order_id"],
            "created_at": order["created_at"],
            "updated_at": order["updated_at"],
            "submitted_at": order["submitted_at"],
            "filled_at": order["filled_at"],
            "expired_at": order["expired_at"],
            "canceled_at": order["canceled_at"],
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": _asset_id(order["symbol"]),
            "symbol": order["symbol"],
            "asset_class": "us_equity",
            "notional": None,
            "qty": _num(order["qty"]),
            "filled_qty": _num(order["filled_qty"]),
            "filled_avg_price": _num(order["filled_avg_price"]),
            "order_class": order["order_class"],
            "order_type": order["type"],
            "type": order["type"],
            "side": order["side"],
            "time_in_force": order["time_in_force"],
            "limit_price": _num(order["limit_price"]),
            "stop_price": _num(order["stop_price"]),
            "status": order["status"],
            "extended_hours": bool(order["extended_hours"]),
            "legs": legs,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "position_intent": order["position_intent"],
            "commission": order["commission"],
        }

    def position_json(self, row: dict[str, Any]) -> dict[str, Any]:
        symbol = row["symbol"]
        qty = float(row["qty"])
        avg = float(row["avg_entry_price"])
        price = self.last_price(symbol) or avg
        market_value = qty * price
        cost_basis = qty * avg
        pl = market_value - cost_basis
        held = sum(
            float(o["qty"]) - float(o["filled_qty"])
            for o in self.state.orders(open_only=True, symbol=symbol)
            if o["leg"] == "stop_loss" and o["status"] == "new"
        )
        values = {
            "avg_entry_price": _num(avg),
            "market_value": _num(market_value),
            "cost_basis": _num(cost_basis),
            "unrealized_pl": _num(pl),
            "unrealized_plpc": _num(pl / abs(cost_basis) if cost_basis else 0.0),
            "unrealized_intraday_pl": _num(pl),
            "unrealized_intraday_plpc": _num(pl / abs(cost_basis) if cost_basis else 0.0),
            "current_price": _num(price),
            "lastday_price": _num(price),
            "change_today": "0",
        }
        return {
            "asset_id": _asset_id(symbol),
            "symbol": symbol,
            "exchange": EXCHANGES.get(symbol, "NASDAQ"),
            "asset_class": "us_equity",
            "asset_marginable": True,
            "qty": _num(qty),
            "side": "long" if qty > 0 else "short",
            "qty_available": _num(max(abs(qty) - held, 0.0) * (1 if qty > 0 else -1)),
            **values,
        }

    def account_json(self) -> dict[str, Any]:
        cash = self.state.cash
        long_value = short_value = 0.0
        for row in self.state.positions():
            value = float(row["qty"]) * (self.last_price(row["symbol"]) or row["avg_entry_price"])
            if value >= 0:
                long_value += value
            else:
                short_value += value
        equity = cash + long_value + short_value
        buying_power = max(0.0, equity - long_value + short_value)
        initial = float(self.state.meta("initial_cash") or cash)
        return {
            "id": self.state.meta("account_id"),
            "account_number": self.state.meta("account_number"),
            "status": "ACTIVE",
            "currency": "USD",
            "cash": _num(cash),
            "buying_power": _num(buying_power),
            "regt_buying_power": _num(buying_power),
            "non_marginable_buying_power": _num(buying_power),
            "options_buying_power": "0",
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "pending_transfer_out": "0",
            "portfolio_value": _num(equity),
            "equity": _num(equity),
            "last_equity": _num(initial),
            "long_market_value": _num(long_value),
            "short_market_value": _num(short_value),
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "multiplier": "1",
            "daytrade_count": 0,
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "trade_suspended_by_user": False,
            "shorting_enabled": True,
            "created_at": self.state.meta("created_at"),
        }

    def bars_json(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /v2/stocks/bars for 1Min bars that have closed by now; start/end inclusive."""
        if params.get("timeframe", "1Min") not in ("1Min", "1T"):
            raise ApiError(422, 42210000, "the paper broker serves timeframe=1Min only")
        symbols = [s.upper() for s in params.get("symbols", "").split(",") if s]
        if not symbols:
            raise ApiError(422, 42210000, "symbols is required")
        now = self.now
        start = _utc(pd.Timestamp(params["start"])) if params.get("start") else None
        end = _utc(pd.Timestamp(params["end"])) if params.get("end") else None
        rows: list[tuple[str, Any]] = []
        for symbol in symbols:
            frame = self.bars.closed_between(
                symbol, start or pd.Timestamp("1900-01-01", tz="UTC"), now
            )
            if end is not None:
                frame = frame[frame["timestamp"] <= end]
            rows.extend((symbol, bar) for bar in frame.itertuples(index=False))
        if params.get("sort") == "desc":
            rows.reverse()
        offset = (
            int(base64.b64decode(params["page_token"]).decode()) if params.get("page_token") else 0
        )
        limit = min(int(params.get("limit") or 1000), 10_000)
        page = rows[offset : offset + limit]
        out: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in page:
            out.setdefault(symbol, []).append(
                {
                    "t": bar.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "o": float(bar.open),
                    "h": float(bar.high),
                    "l": float(bar.low),
                    "c": float(bar.close),
                    "v": int(bar.volume),
                    "n": None if pd.isna(bar.trade_count) else int(bar.trade_count),
                    "vw": None if pd.isna(bar.vwap) else float(bar.vwap),
                }
            )
        token = None
        if offset + limit < len(rows):
            token = base64.b64encode(str(offset + limit).encode()).decode()
        return {"bars": out, "next_page_token": token}

    def latest_bars_json(self, params: dict[str, str]) -> dict[str, Any]:
        out = {}
        for symbol in (s.upper() for s in params.get("symbols", "").split(",") if s):
            bar = self.bars.latest_closed(symbol, self.now)
            if bar is not None:
                out[symbol] = {
                    "t": bar["timestamp"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "o": float(bar["open"]),
                    "h": float(bar["high"]),
                    "l": float(bar["low"]),
                    "c": float(bar["close"]),
                    "v": int(bar["volume"]),
                    "n": None,
                    "vw": None,
                }
        return {"bars": out}

    def quotes_json(self, params: dict[str, str]) -> dict[str, Any]:
        out = {}
        for symbol in (s.upper() for s in params.get("symbols", "").split(",") if s):
            quote = self.quote_json(symbol)
            if quote is not None:
                out[symbol] = quote
        return {"quotes": out}


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class PaperBroker:
    """The server: `start()`/`stop()` or a context manager; `url` for `url_override`.

    State lives in `db_path` (SQLite); a new broker on the same file continues where the last
    one stopped, clock included (`start_time` only seeds a new file; default: the first bundled
    bar). Bound to 127.0.0.1 on an ephemeral port unless told otherwise. With `api_key` /
    `secret_key` set, only those credentials are accepted; otherwise any non-empty pair.
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        replay_folder: str | Path = BUNDLED_REPLAY_DIR,
        fill_model: FillModel | None = None,
        start_time: str | pd.Timestamp | None = None,
        initial_cash: float = 100_000.0,
        spread_bps: float = 2.0,
        flatten_at_close: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        self.host, self.port = host, port
        self.api_key, self.secret_key = api_key, secret_key
        self._bars = _bar_store(str(Path(replay_folder).expanduser().resolve()))
        start = _utc(pd.Timestamp(start_time)) if start_time is not None else self._bars.first_start
        self._engine_args = {
            "fill_model": fill_model or FillModel(),
            "spread_bps": spread_bps,
            "flatten_at_close": flatten_at_close,
        }
        self._initial_cash, self._start = initial_cash, start
        self.engine: BrokerEngine | None = None
        self._faults: deque[Fault] = deque()
        self._fault_lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> PaperBroker:
        state = BrokerState(self.db_path, initial_cash=self._initial_cash, start_time=self._start)
        self.engine = BrokerEngine(state, self._bars, **self._engine_args)  # type: ignore[arg-type]
        self._stopping.clear()
        self._httpd = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging fault handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.engine is not None:
            with self.engine.lock:
                self.engine.state.close()
            self.engine = None

    def __enter__(self) -> PaperBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the paper broker is not running; call start()")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def _require_engine(self) -> BrokerEngine:
        if self.engine is None:
            raise RuntimeError("the paper broker is not running; call start()")
        return self.engine

    # --- clock and faults (also reachable over /admin) ------------------------------------------

    @property
    def now(self) -> pd.Timestamp:
        return self._require_engine().now

    def set_clock(self, now: str | pd.Timestamp) -> pd.Timestamp:
        return self._require_engine().set_clock(pd.Timestamp(now))

    def advance(self, delta: str | pd.Timedelta) -> pd.Timestamp:
        return self.set_clock(self.now + pd.Timedelta(delta))

    def inject_fault(
        self,
        kind: str | int,
        times: int = 1,
        *,
        path: str | None = None,
        retry_after: int = 1,
        seconds: float = 5.0,
        after_processing: bool = False,
    ) -> None:
        """Answer the next `times` API requests (to `path` if given) with a fault:
        "500", "429" (with Retry-After), "timeout" (hold the connection `seconds`, then close it
        unanswered) or "drop" (close it unanswered). `after_processing` applies the request
        first, the way a response lost on the way back looks to a client."""
        kind = str(kind)
        if kind not in ("500", "429", "timeout", "drop"):
            raise ValueError(f"unknown fault {kind!r}")
        with self._fault_lock:
            self._faults.append(Fault(kind, times, path, retry_after, seconds, after_processing))

    def clear_faults(self) -> None:
        with self._fault_lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> Fault | None:
        with self._fault_lock:
            for fault in self._faults:
                if fault.path is not None and fault.path != path:
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # --- request handling -----------------------------------------------------------------------

    def _authorized(self, headers: Any) -> bool:
        key, secret = headers.get("APCA-API-KEY-ID"), headers.get("APCA-API-SECRET-KEY")
        if not key or not secret:
            return False
        return (self.api_key is None or key == self.api_key) and (
            self.secret_key is None or secret == self.secret_key
        )

    def _route(self, method: str, path: str, params: dict[str, str], body: Any) -> tuple[int, Any]:
        engine = self._require_engine()
        if path.startswith("/admin/"):
            return self._admin(engine, method, path, body)
        with engine.lock:
            if method == "GET" and path == "/v2/account":
                return 200, engine.account_json()
            if method == "GET" and path == "/v2/clock":
                return 200, engine.clock_json()
            if path == "/v2/orders":
                if method == "POST":
                    return 200, engine.submit(body or {})
                if method == "GET":
                    return 200, engine.list_orders(params)
                if method == "DELETE":
                    return 207, engine.cancel_all()
            if method == "GET" and path == "/v2/orders:by_client_order_id":
                return 200, engine.get_order_by_client_id(params.get("client_order_id", ""))
            if path.startswith("/v2/orders/"):
                order_id = path.removeprefix("/v2/orders/")
                if method == "GET":
                    return 200, engine.get_order(order_id)
                if method == "DELETE":
                    engine.cancel(order_id)
                    return 204, None
            if path == "/v2/positions":
                if method == "GET":
                    return 200, engine.positions_json()
                if method == "DELETE":
                    cancel = params.get("cancel_orders", "false").lower() == "true"
                    return 207, engine.close_all(cancel)
            if path.startswith("/v2/positions/"):
                symbol = path.removeprefix("/v2/positions/")
                if method == "GET":
                    return 200, engine.position(symbol)
                if method == "DELETE":
                    return 200, engine.close_position(symbol)
            if method == "GET" and path == "/v2/stocks/bars":
                return 200, engine.bars_json(params)
            if method == "GET" and path == "/v2/stocks/bars/latest":
                return 200, engine.latest_bars_json(params)
            if method == "GET" and path == "/v2/stocks/quotes/latest":
                return 200, engine.quotes_json(params)
        raise ApiError(404, 40410000, f"endpoint not found: {method} {path}")

    def _admin(self, engine: BrokerEngine, method: str, path: str, body: Any) -> tuple[int, Any]:
        body = body or {}
        if path == "/admin/clock":
            if method == "POST":
                if "now" in body:
                    engine.set_clock(pd.Timestamp(body["now"]))
                elif "advance_seconds" in body:
                    engine.set_clock(
                        engine.now + pd.Timedelta(seconds=float(body["advance_seconds"]))
                    )
            return 200, {"now": iso(engine.now), **engine.clock_json()}
        if path == "/admin/faults":
            if method == "POST":
                try:
                    self.inject_fault(
                        body.get("kind", ""),
                        int(body.get("times", 1)),
                        path=body.get("path"),
                        retry_after=int(body.get("retry_after", 1)),
                        seconds=float(body.get("seconds", 5.0)),
                        after_processing=bool(body.get("after_processing", False)),
                    )
                except ValueError as exc:
                    raise ApiError(422, 42210000, str(exc)) from None
            elif method == "DELETE":
                self.clear_faults()
            with self._fault_lock:
                return 200, [vars(f) for f in self._faults]
        if path == "/admin/fills" and method == "GET":
            return 200, engine.state.fills()
        raise ApiError(404, 40410000, f"endpoint not found: {method} {path}")

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        path = "/" + "/".join(p for p in parts.path.split("/") if p)
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        is_admin = path.startswith("/admin/")
        fault = None if is_admin else self._take_fault(path)

        def run() -> tuple[int, Any, dict[str, str]]:
            if not is_admin and not self._authorized(handler.headers):
                return 401, {"code": 40110000, "message": "request is not authorized"}, {}
            try:
                body = json.loads(raw) if raw else None
                status, payload = self._route(handler.command, path, params, body)
                return status, payload, {}
            except ApiError as exc:
                return exc.status, {"code": exc.code, "message": exc.message}, {}
            except (ValueError, KeyError, TypeError) as exc:
                return 422, {"code": 42210000, "message": f"invalid request: {exc}"}, {}
            except Exception as exc:  # a broker bug must answer 500, never hang the client
                return 500, {"code": 50010000, "message": f"paper broker error: {exc!r}"}, {}

        if fault is None or fault.after_processing:
            status, payload, headers = run()
        if fault is not None:
            if fault.kind == "drop":
                handler.close_connection = True
                return
            if fault.kind == "timeout":
                self._stopping.wait(fault.seconds)
                handler.close_connection = True
                return
            if fault.kind == "429":
                status, headers = 429, {"Retry-After": str(fault.retry_after)}
                payload = {"code": 42910000, "message": "rate limit exceeded"}
            else:
                status, headers = 500, {}
                payload = {"code": 50010000, "message": "internal server error"}
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first


@functools.lru_cache(maxsize=4)
def _bar_store(folder: str) -> BarStore:
    """Bars are read-only and shared by every broker on the same folder (tests start many)."""
    return BarStore(folder)


def _handler_for(broker: PaperBroker) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            broker.handle(self)

        do_POST = do_GET
        do_DELETE = do_GET
        do_PATCH = do_GET
        do_PUT = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    """`python -m resources.paper_broker.app --db paper.sqlite --port 8765` (foreground)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="paper_broker.sqlite")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--start-time", default=None)
    args = parser.parse_args()
    broker = PaperBroker(args.db, host=args.host, port=args.port, start_time=args.start_time)
    broker.start()
    print(f"paper broker at {broker.url} (state {broker.db_path})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        broker.stop()


if __name__ == "__main__":
    main()
