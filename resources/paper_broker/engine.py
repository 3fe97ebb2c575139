"""The paper broker's engine: orders, fills and the simulated clock over `BrokerState` and
`BarStore`; no HTTP here.

Time is simulated: it only moves through `set_clock` (the admin clock, `PaperBroker.set_clock`).
A bar is used only once it has closed (start + 1 min <= now), so nothing from the simulated
future leaks into fills, quotes or bars. Market orders submitted at t fill at the open of the
first bar starting at or after t, through the shared `FillModel`, once that bar has closed;
bracket legs are created `held` and become `new` when the parent fills; exits follow
`FillModel.bracket_exit` bar by bar (stop first). Positions are flattened at each session's last
bar close (the product's intraday rule; `flatten_at_close=False` turns it off) and open orders on
that symbol cancelled. Day orders expire at the first session close after their submission,
unless they are brackets whose legs still protect a fill.
"""

from __future__ import annotations

import math
import threading
import uuid
from typing import Any

import pandas as pd

from resources.paper_broker import wire
from resources.paper_broker.bars import ONE_MINUTE, BarStore
from resources.paper_broker.clock import as_utc, market_clock
from resources.paper_broker.state import (
    OPEN_STATUSES,
    BrokerState,
    DuplicateClientOrderId,
    iso,
    parse_ts,
)
from trading_assets.execution.fills import Fill, FillModel, opposite


class ApiError(Exception):
    """An error answered in Alpaca's JSON shape: {"code": ..., "message": ...}."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


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
        now = as_utc(pd.Timestamp(now))
        with self.lock:
            if now < self.now:
                raise ApiError(409, 40910000, f"clock cannot go back from {iso(self.now)}")
            # stop at every session close on the way: its equity is the next day's last_equity
            close = market_clock(self.now)[2]
            while close <= now:
                self.state.set_meta("now", iso(close))
                self.settle()
                self.state.set_meta("last_equity", repr(self._equity()))
                close = market_clock(close)[2]
            self.state.set_meta("now", iso(now))
            self.settle()
            return now

    def clock_json(self) -> dict[str, Any]:
        now = self.now
        return wire.clock_json(now, *market_clock(now))

    # --- prices ---------------------------------------------------------------------------------

    def last_price(self, symbol: str) -> float | None:
        bar = self.bars.latest_closed(symbol, self.now)
        return None if bar is None else float(bar["close"])

    def quote_json(self, symbol: str) -> dict[str, Any] | None:
        """Bid/ask around the latest closed bar's close, `spread_bps` wide."""
        bar = self.bars.latest_closed(symbol, self.now)
        return None if bar is None else wire.quote_json(symbol, bar, self.spread_bps)

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
            if after is not None and submitted is not None and submitted <= as_utc(after):
                continue
            if until is not None and submitted is not None and submitted >= as_utc(until):
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

    def _held(self, symbol: str) -> float:
        """Shares reserved by working stop-loss legs (not available to a closing order)."""
        return sum(
            float(o["qty"]) - float(o["filled_qty"])
            for o in self.state.orders(open_only=True, symbol=symbol)
            if o["leg"] == "stop_loss" and o["status"] == "new"
        )

    def _close(self, row: dict[str, Any]) -> dict[str, Any]:
        qty = float(row["qty"])
        available = abs(qty) - self._held(row["symbol"])
        if available <= 1e-9:
            raise ApiError(
                403,
                40310000,
                f"insufficient qty available for order (requested: {wire.num(abs(qty))}, "
                f"available: {wire.num(max(available, 0.0))})",
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
        # 1. exits of filled brackets, on bars after their last entry fill (one read: parents
        # and their legs; each parent's step below touches only its own rows)
        rows = self.state.orders(symbol=symbol)
        legs_of: dict[str, dict[str, dict[str, Any]]] = {}
        for row in rows:
            if row["parent_id"] is not None:
                legs_of.setdefault(row["parent_id"], {})[row["leg"]] = row
        for parent in rows:
            if parent["order_class"] != "bracket" or parent["parent_id"] is not None:
                continue
            legs = legs_of.get(parent["id"], {})
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

    # --- wire formats (shapes in `wire`; the data they need from here) --------------------------

    def order_json(self, order: dict[str, Any], *, with_legs: bool = True) -> dict[str, Any]:
        legs = None
        if with_legs and order["order_class"] == "bracket" and order["parent_id"] is None:
            legs = [wire.order_json(leg) for leg in self.state.legs(order["id"])]
        return wire.order_json(order, legs)

    def position_json(self, row: dict[str, Any]) -> dict[str, Any]:
        price = self.last_price(row["symbol"]) or float(row["avg_entry_price"])
        return wire.position_json(row, price, self._held(row["symbol"]))

    def _market_values(self) -> tuple[float, float]:
        long_value = short_value = 0.0
        for row in self.state.positions():
            value = float(row["qty"]) * (self.last_price(row["symbol"]) or row["avg_entry_price"])
            if value >= 0:
                long_value += value
            else:
                short_value += value
        return long_value, short_value

    def _equity(self) -> float:
        return self.state.cash + sum(self._market_values())

    def account_json(self) -> dict[str, Any]:
        """Alpaca's account; last_equity is the equity at the previous session's close (the
        opening cash until the first close), the base of the daily-loss limit."""
        cash = self.state.cash
        long_value, short_value = self._market_values()
        return wire.account_json(
            account_id=self.state.meta("account_id"),
            account_number=self.state.meta("account_number"),
            created_at=self.state.meta("created_at"),
            cash=cash,
            long_value=long_value,
            short_value=short_value,
            last_equity=float(
                self.state.meta("last_equity") or self.state.meta("initial_cash") or cash
            ),
        )

    def bars_json(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /v2/stocks/bars for 1Min bars that have closed by now; start/end inclusive."""
        if params.get("timeframe", "1Min") not in ("1Min", "1T"):
            raise ApiError(422, 42210000, "the paper broker serves timeframe=1Min only")
        symbols = [s.upper() for s in params.get("symbols", "").split(",") if s]
        if not symbols:
            raise ApiError(422, 42210000, "symbols is required")
        now = self.now
        start = as_utc(pd.Timestamp(params["start"])) if params.get("start") else None
        end = as_utc(pd.Timestamp(params["end"])) if params.get("end") else None
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
        offset = wire.page_offset(params.get("page_token"))
        limit = min(int(params.get("limit") or 1000), 10_000)
        out: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in rows[offset : offset + limit]:
            out.setdefault(symbol, []).append(wire.bar_json(bar))
        token = wire.page_token(offset + limit) if offset + limit < len(rows) else None
        return {"bars": out, "next_page_token": token}

    def latest_bars_json(self, params: dict[str, str]) -> dict[str, Any]:
        out = {}
        for symbol in (s.upper() for s in params.get("symbols", "").split(",") if s):
            bar = self.bars.latest_closed(symbol, self.now)
            if bar is not None:
                out[symbol] = wire.bar_json(bar, with_counts=False)
        return {"bars": out}

    def quotes_json(self, params: dict[str, str]) -> dict[str, Any]:
        out = {}
        for symbol in (s.upper() for s in params.get("symbols", "").split(",") if s):
            quote = self.quote_json(symbol)
            if quote is not None:
                out[symbol] = quote
        return {"quotes": out}
