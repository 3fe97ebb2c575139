"""The paper broker's books in one SQLite file, so a restart loses nothing.

Account cash, the simulated clock, orders (client_order_id UNIQUE: the database, not a Python
set, is what refuses a duplicate, so it holds across threads and restarts), fills, positions and
a per-symbol cursor of the last bar processed. Every change the engine makes for one event runs
inside `transaction()`: a crash mid-fill leaves the previous consistent state.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from trading_assets.execution.fills import Fill

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    client_order_id TEXT NOT NULL UNIQUE,
    parent_id TEXT REFERENCES orders(id),
    leg TEXT,                      -- take_profit | stop_loss for bracket legs
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    type TEXT NOT NULL,
    order_class TEXT NOT NULL,
    time_in_force TEXT NOT NULL,
    qty REAL NOT NULL,
    filled_qty REAL NOT NULL DEFAULT 0,
    filled_avg_price REAL,
    limit_price REAL,
    stop_price REAL,
    status TEXT NOT NULL,
    position_intent TEXT,
    extended_hours INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    filled_at TEXT,
    canceled_at TEXT,
    expired_at TEXT,
    last_fill_bar TEXT,            -- bar start of the latest fill (exits look at later bars)
    commission REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS orders_status ON orders(status);
CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL REFERENCES orders(id),
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty REAL NOT NULL,
    price REAL NOT NULL,
    reference_price REAL NOT NULL,
    commission REAL NOT NULL,
    reason TEXT NOT NULL,
    bar_start TEXT,
    filled_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    symbol TEXT PRIMARY KEY,
    qty REAL NOT NULL,             -- signed: negative is short
    avg_entry_price REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (symbol TEXT PRIMARY KEY, processed_until TEXT NOT NULL);
"""

OPEN_STATUSES = ("new", "accepted", "held", "partially_filled", "pending_new")


class DuplicateClientOrderId(Exception):
    """A second order with a client_order_id already used (Alpaca answers 422)."""


def iso(ts: pd.Timestamp) -> str:
    """Sortable UTC text, microseconds, trailing Z (also Alpaca's wire spelling)."""
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str | None) -> pd.Timestamp | None:
    return None if text is None else pd.Timestamp(text).tz_convert("UTC")


class BrokerState:
    """The SQLite-backed books. Thread-safe: one connection, one re-entrant lock."""

    def __init__(self, path: str | Path, *, initial_cash: float, start_time: pd.Timestamp) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self._conn.execute(statement)
        with self.transaction():
            if self.meta("account_id") is None:  # a new file: open the account
                self.set_meta("account_id", str(uuid.uuid4()))
                self.set_meta("account_number", "PA" + uuid.uuid4().hex[:10].upper())
                self.set_meta("created_at", iso(start_time))
                self.set_meta("cash", repr(float(initial_cash)))
                self.set_meta("initial_cash", repr(float(initial_cash)))
                self.set_meta("now", iso(start_time))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit; nested calls join the outer transaction."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._depth -= 1
                if outer:
                    self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._conn.execute("COMMIT")

    # --- meta -----------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    @property
    def now(self) -> pd.Timestamp:
        value = parse_ts(self.meta("now"))
        assert value is not None
        return value

    @property
    def cash(self) -> float:
        return float(self.meta("cash") or 0.0)

    # --- orders ---------------------------------------------------------------------------------

    def insert_order(self, order: dict[str, Any]) -> None:
        columns = ", ".join(order)
        marks = ", ".join("?" for _ in order)
        try:
            with self.transaction() as conn:
                conn.execute(
                    f"INSERT INTO orders ({columns}) VALUES ({marks})", tuple(order.values())
                )
        except sqlite3.IntegrityError as exc:
            if "client_order_id" in str(exc):
                raise DuplicateClientOrderId(order["client_order_id"]) from exc
            raise

    def update_order(self, order_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self.transaction() as conn:
            conn.execute(f"UPDATE orders SET {sets} WHERE id = ?", (*fields.values(), order_id))

    def order(self, order_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM orders WHERE id = ?", (order_id,))

    def order_by_client_id(self, client_order_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,))

    def legs(self, parent_id: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM orders WHERE parent_id = ? ORDER BY seq", (parent_id,))

    def orders(self, *, open_only: bool = False, symbol: str | None = None) -> list[dict[str, Any]]:
        """All orders oldest first, optionally only working ones and one symbol."""
        sql, args = "SELECT * FROM orders WHERE 1=1", []
        if open_only:
            sql += f" AND status IN ({', '.join('?' for _ in OPEN_STATUSES)})"
            args.extend(OPEN_STATUSES)
        if symbol is not None:
            sql += " AND symbol = ?"
            args.append(symbol)
        return self._all(sql + " ORDER BY seq", tuple(args))

    # --- fills and positions --------------------------------------------------------------------

    def record_fill(self, order_id: str, symbol: str, fill: Fill, at: pd.Timestamp) -> None:
        """Book one fill: the fill row, the order's cumulative quantity and average price, the
        position and the cash, atomically."""
        with self.transaction() as conn:
            order = self.order(order_id)
            assert order is not None
            conn.execute(
                "INSERT INTO fills(order_id, symbol, side, qty, price, reference_price, "
                "commission, reason, bar_start, filled_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    order_id,
                    symbol,
                    fill.side,
                    fill.qty,
                    fill.price,
                    fill.reference_price,
                    fill.commission,
                    fill.reason,
                    None if fill.timestamp is None else iso(fill.timestamp),
                    iso(at),
                ),
            )
            before = float(order["filled_qty"])
            total = before + fill.qty
            avg = (before * float(order["filled_avg_price"] or 0.0) + fill.qty * fill.price) / total
            status = "filled" if total >= float(order["qty"]) - 1e-9 else "partially_filled"
            self.update_order(
                order_id,
                filled_qty=total,
                filled_avg_price=avg,
                status=status,
                filled_at=iso(at),
                updated_at=iso(at),
                last_fill_bar=None if fill.timestamp is None else iso(fill.timestamp),
                commission=float(order["commission"]) + fill.commission,
            )
            self._apply_to_position(symbol, fill)
            self.set_meta("cash", repr(self.cash + fill.cash_delta))

    def _apply_to_position(self, symbol: str, fill: Fill) -> None:
        current = self.position(symbol)
        qty = 0.0 if current is None else float(current["qty"])
        avg = 0.0 if current is None else float(current["avg_entry_price"])
        delta = fill.qty if fill.side == "buy" else -fill.qty
        new_qty = qty + delta
        if abs(new_qty) < 1e-9:
            self._conn.execute("DELETE FROM positions WHERE symbol = ?", (symbol,))
            return
        if qty == 0 or (qty > 0) != (new_qty > 0):  # opened, or flipped through zero
            avg = fill.price
        elif abs(new_qty) > abs(qty):  # added to the position: weighted average entry
            avg = (abs(qty) * avg + fill.qty * fill.price) / abs(new_qty)
        self._conn.execute(
            "INSERT INTO positions(symbol, qty, avg_entry_price) VALUES (?, ?, ?) "
            "ON CONFLICT(symbol) DO UPDATE SET qty = excluded.qty, "
            "avg_entry_price = excluded.avg_entry_price",
            (symbol, new_qty, avg),
        )

    def fills(self, order_id: str | None = None) -> list[dict[str, Any]]:
        if order_id is None:
            return self._all("SELECT * FROM fills ORDER BY id", ())
        return self._all("SELECT * FROM fills WHERE order_id = ? ORDER BY id", (order_id,))

    def position(self, symbol: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM positions WHERE symbol = ?", (symbol,))

    def positions(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM positions ORDER BY symbol", ())

    # --- bar cursors ----------------------------------------------------------------------------

    def cursor(self, symbol: str) -> pd.Timestamp | None:
        row = self._one("SELECT processed_until FROM cursors WHERE symbol = ?", (symbol,))
        return None if row is None else parse_ts(row["processed_until"])

    def set_cursor(self, symbol: str, until: pd.Timestamp) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO cursors(symbol, processed_until) VALUES (?, ?) "
                "ON CONFLICT(symbol) DO UPDATE SET processed_until = excluded.processed_until",
                (symbol, iso(until)),
            )

    # --- helpers --------------------------------------------------------------------------------

    def _one(self, sql: str, args: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(sql, args).fetchone()
        return None if row is None else dict(row)

    def _all(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self._conn.execute(sql, args).fetchall()]
