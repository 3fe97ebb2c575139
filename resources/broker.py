"""The broker the execution op trades through: Alpaca's trading API via alpaca-py.

One client for three targets that speak the same API: the embedded paper broker
(`resources.paper_broker`, the default), Alpaca paper, and Alpaca live (refused unless opted in).

Why it looks like this:

* alpaca-py is tamed as in `resources.providers.alpaca`: its own blocking, fixed-3 s 429 retry
  is switched off and its session gets a default timeout, so one policy (`call_with_backoff`:
  capped exponential backoff with jitter, honouring Retry-After) retries every call.
* Orders are placed **exactly once** per client order id. A POST whose answer is lost (timeout,
  dropped connection, 5xx) may still have been booked, so the id is looked up before every
  POST, the first included, and again before giving up; Alpaca's 422 "client_order_id must be
  unique" also resolves to the existing order. A re-run of the step therefore never doubles up.
* Errors say what to do: `BrokerConfigError` (keys, URL, live opt-in: fix the configuration),
  `BrokerRejected` (the broker refused this order: change the order), `BrokerUnavailable`
  (still failing after the last attempt: re-run later; safe, see above). They subclass the
  provider errors, so the asset layer's ProviderConfigError / TransientProviderError handling
  applies to them too.
* Keys never appear in messages, reprs or `describe()`; alpaca-py sends them only as headers.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import pandas as pd
import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockLatestQuoteRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    GetOrdersRequest,
    MarketOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)

from resources.errors import ProviderConfigError, TransientProviderError
from resources.providers.alpaca import api_message, is_retryable_error, tame_client
from resources.rate_limit import call_with_backoff
from resources.secrets import env_secret

logger = logging.getLogger(__name__)

T = TypeVar("T")
SubmitOutcome = Literal["submitted", "already_existed"]
MODES = ("embedded", "paper", "live")
EMBEDDED_URL = "http://127.0.0.1:8765"
PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
MAX_PAGE = 500  # Alpaca's maximum `limit` for GET /v2/orders
_EMBEDDED_CREDENTIALS = ("embedded", "embedded")  # the embedded broker takes any non-empty pair
_KEY_HINT = (
    "check ALPACA_API_KEY and ALPACA_SECRET_KEY, and that they belong to this endpoint "
    "(paper keys for paper-api, live keys for api)"
)
_ORDER_REFUSED_CODE = 40310000  # Alpaca's 403 for an order it refuses (buying power, held qty)


# --- errors -------------------------------------------------------------------------------------


class BrokerError(Exception):
    """Base class for broker failures."""


class BrokerConfigError(BrokerError, ProviderConfigError):
    """Missing or rejected keys, a bad URL, live without opt-in: retrying cannot help."""


class BrokerUnavailable(BrokerError, TransientProviderError):
    """429/5xx/timeouts/dropped connections still failing after the last attempt."""


class BrokerRejected(BrokerError):
    """The broker refused the request itself (e.g. insufficient buying power, bad prices).

    `status` is the HTTP status, `message` the broker's own words. Keyword defaults keep the
    exception picklable (unpickling calls the class with the message only).
    """

    def __init__(self, text: str, *, status: int | None = None, message: str = "") -> None:
        super().__init__(text)
        self.status = status
        self.message = message


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerClock:
    now: pd.Timestamp  # UTC
    is_open: bool
    next_open: pd.Timestamp
    next_close: pd.Timestamp


@dataclass(frozen=True)
class BrokerAccount:
    equity: float
    cash: float
    buying_power: float
    last_equity: float
    trading_blocked: bool
    status: str


@dataclass(frozen=True)
class BrokerPosition:
    symbol: str
    qty: float  # signed: negative = short
    avg_entry_price: float
    current_price: float | None


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: float
    ask: float
    timestamp: pd.Timestamp  # UTC

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0

    @property
    def spread_pct(self) -> float:
        """(ask - bid) / mid; inf for a one-sided or empty book, so spread limits refuse it."""
        mid = self.mid
        return (self.ask - self.bid) / mid if mid > 0 else math.inf


@dataclass(frozen=True)
class OrderState:
    """An order as the broker reports it; a bracket's exit legs are nested in `legs`."""

    id: str
    client_order_id: str
    symbol: str
    side: str  # "buy" | "sell"
    qty: float
    status: str  # alpaca's lowercase status: new, accepted, held, filled, canceled, ...
    type: str  # market | limit | stop | stop_limit | ...
    order_class: str  # simple | bracket | oco | oto
    filled_qty: float
    filled_avg_price: float | None
    submitted_at: pd.Timestamp | None
    filled_at: pd.Timestamp | None
    limit_price: float | None
    stop_price: float | None
    legs: tuple[OrderState, ...] = ()

    @property
    def take_profit_leg(self) -> OrderState | None:
        """The bracket's limit leg."""
        return next((leg for leg in self.legs if leg.type == "limit"), None)

    @property
    def stop_loss_leg(self) -> OrderState | None:
        """The bracket's stop (or stop-limit) leg."""
        return next((leg for leg in self.legs if leg.type in ("stop", "stop_limit")), None)


@dataclass(frozen=True)
class SubmitResult:
    """`submitted`: a POST of this call placed the order (confirmed by its answer, or found by
    look-up after an answer was lost); `already_existed`: the broker had it before this call's
    POSTs could have placed it. `attempts` counts POSTs (0 when it already existed)."""

    order: OrderState
    outcome: SubmitOutcome
    attempts: int


# --- conversions --------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """An alpaca-py enum's value, or the string itself ("" for None)."""
    if value is None:
        return ""
    return str(value.value) if isinstance(value, Enum) else str(value)


def _float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _ts(value: datetime | None) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _utc(value: datetime | None) -> pd.Timestamp:
    ts = _ts(value)
    assert ts is not None
    return ts


def _order_state(order: Order) -> OrderState:
    filled_qty = _float(order.filled_qty) or 0.0
    price = _float(order.filled_avg_price)
    return OrderState(
        id=str(order.id),
        client_order_id=order.client_order_id,
        symbol=order.symbol or "",
        side=_text(order.side),
        qty=_float(order.qty) or 0.0,
        status=_text(order.status),
        type=_text(order.type or order.order_type),
        order_class=_text(order.order_class) or "simple",
        filled_qty=filled_qty,
        # Alpaca may report "0" before anything filled; no real fill happens at 0.
        filled_avg_price=price if price else None,
        submitted_at=_ts(order.submitted_at),
        filled_at=_ts(order.filled_at),
        limit_price=_float(order.limit_price),
        stop_price=_float(order.stop_price),
        legs=tuple(_order_state(leg) for leg in order.legs or ()),
    )


def _api_code(exc: APIError) -> int | None:
    try:
        return int(exc.code)
    except (ValueError, KeyError, TypeError):
        return None


def _is_duplicate_id(exc: APIError) -> bool:
    """Alpaca's answer to a reused client order id: 422 "client_order_id must be unique"."""
    text = api_message(exc).lower()
    return (
        exc.status_code == 422
        and "client_order_id" in text
        and any(word in text for word in ("unique", "duplicate", "already"))
    )


def _is_ambiguous(exc: BaseException) -> bool:
    """A failure after which the broker may still have booked the request (unlike a 429)."""
    return not (isinstance(exc, APIError) and exc.status_code == 429)


def _error_text(exc: BaseException) -> str:
    """An error for a message: "HTTP 500: internal server error" rather than a JSON body."""
    if isinstance(exc, APIError):
        return f"HTTP {exc.status_code}: {api_message(exc)}"
    return f"{type(exc).__name__}: {exc}"


def _translate(exc: APIError, what: str) -> BrokerError:
    """A non-retryable answer as the error a user can act on."""
    status = exc.status_code
    message = api_message(exc)
    detail = f"HTTP {status}: {message}"
    refused_order = _api_code(exc) == _ORDER_REFUSED_CODE or any(
        word in message.lower() for word in ("buying power", "insufficient", "not sufficient")
    )
    if status == 401 or (status == 403 and not refused_order):
        return BrokerConfigError(
            f"the broker refused the credentials for {what} ({detail}); {_KEY_HINT}"
        )
    return BrokerRejected(
        f"the broker rejected {what} ({detail}); retrying will not help: change the request "
        "(size, prices, symbol) or the account",
        status=status,
        message=message,
    )


def _safe_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


# --- client -------------------------------------------------------------------------------------


class BrokerClient:
    """Typed, retried access to one broker account; `submit_bracket` places orders exactly once.

    Both alpaca-py clients are tamed here (no built-in 429 retry, a default timeout), whoever
    built them. `label` names the broker in messages (e.g. "Alpaca paper (https://...)").
    """

    def __init__(
        self,
        trading: TradingClient,
        data: StockHistoricalDataClient,
        *,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        feed: str = "iex",
        timeout_s: float = 10.0,
        page_size: int = MAX_PAGE,
        label: str = "the broker",
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be in 1..{MAX_PAGE}, got {page_size}")
        try:
            self.feed = DataFeed(feed)
        except ValueError:
            choices = ", ".join(f.value for f in DataFeed)
            raise BrokerConfigError(f"unknown Alpaca feed {feed!r}; one of: {choices}") from None
        self._trading = trading
        self._data = data
        tame_client(trading, timeout_s)
        tame_client(data, timeout_s)
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.page_size = page_size
        self.label = label

    def __repr__(self) -> str:
        return f"BrokerClient({self.label})"

    def close(self) -> None:
        self._trading._session.close()
        self._data._session.close()

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the retry policy -----------------------------------------------------------------------

    def _backoff(self, fn: Callable[[], T], what: str) -> T:
        """`fn` under the one retry policy; exhaustion becomes BrokerUnavailable, other API
        errors pass through for the caller to translate (404 means different things)."""
        try:
            return call_with_backoff(
                fn,
                max_attempts=self.max_attempts,
                base_delay_s=self.backoff_s,
                max_delay_s=self.max_backoff_s,
                is_retryable=is_retryable_error,
                what=f"{self.label}: {what}",
            )
        except BrokerError:
            raise  # from a nested call (a look-up inside a submit), already explained
        except TransientProviderError as exc:
            raise BrokerUnavailable(
                f"{exc}; the broker is unreachable or rate-limiting: check its status and "
                "TRADING_BROKER_URL, then re-run the step"
            ) from exc
        except requests.exceptions.RequestException as exc:  # bad URL, redirect, non-JSON body
            raise BrokerConfigError(
                f"{self.label}: {what} failed ({type(exc).__name__}: {exc}); check "
                "TRADING_BROKER_URL / TRADING_BROKER_DATA_URL (scheme, host, port)"
            ) from exc

    def _read(self, fn: Callable[[], T], what: str) -> T:
        try:
            return self._backoff(fn, what)
        except APIError as exc:
            raise _translate(exc, what) from exc

    # --- reads ----------------------------------------------------------------------------------

    def clock(self) -> BrokerClock:
        clock = self._read(self._trading.get_clock, "clock")
        return BrokerClock(
            now=_utc(clock.timestamp),
            is_open=bool(clock.is_open),
            next_open=_utc(clock.next_open),
            next_close=_utc(clock.next_close),
        )

    def account(self) -> BrokerAccount:
        acct = self._read(self._trading.get_account, "account")
        return BrokerAccount(
            equity=_float(acct.equity) or 0.0,
            cash=_float(acct.cash) or 0.0,
            buying_power=_float(acct.buying_power) or 0.0,
            last_equity=_float(acct.last_equity) or 0.0,
            trading_blocked=bool(acct.trading_blocked),
            status=_text(acct.status),
        )

    def positions(self) -> list[BrokerPosition]:
        """Open positions by symbol; qty is signed from `side` (Alpaca's qty sign varies)."""
        rows = self._read(self._trading.get_all_positions, "positions")
        out = [
            BrokerPosition(
                symbol=p.symbol,
                qty=abs(float(p.qty)) * (-1.0 if _text(p.side) == "short" else 1.0),
                avg_entry_price=float(p.avg_entry_price),
                current_price=_float(p.current_price),
            )
            for p in rows
        ]
        return sorted(out, key=lambda p: p.symbol)

    def latest_quote(self, symbol: str) -> Quote | None:
        """The latest quote on the configured feed, or None when the broker has none."""
        symbol = symbol.upper()
        request = StockLatestQuoteRequest(symbol_or_symbols=symbol, feed=self.feed)
        try:
            quotes = self._backoff(
                lambda: self._data.get_stock_latest_quote(request), f"quote {symbol}"
            )
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise _translate(exc, f"quote {symbol}") from exc
        quote = quotes.get(symbol)
        if quote is None:
            return None
        return Quote(
            symbol=symbol,
            bid=float(quote.bid_price),
            ask=float(quote.ask_price),
            timestamp=_utc(quote.timestamp),
        )

    def order_by_client_id(self, client_order_id: str) -> OrderState | None:
        what = f"order look-up {client_order_id!r}"
        try:
            order = self._backoff(
                lambda: self._trading.get_order_by_client_id(client_order_id), what
            )
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise _translate(exc, what) from exc
        return _order_state(order)

    def orders_since(self, after: pd.Timestamp) -> list[OrderState]:
        """Orders of any status submitted strictly after `after`, bracket legs nested, oldest
        first. Pages by moving `after` to just before the last page's newest submission (ids
        seen twice are dropped), since Alpaca has no page token for orders."""
        cursor = pd.Timestamp(after)
        if cursor.tzinfo is None:
            raise ValueError(f"after must be tz-aware, got naive {after}")
        cursor = cursor.tz_convert("UTC").floor("us")
        seen: dict[str, OrderState] = {}
        while True:
            request = GetOrdersRequest(
                status=QueryOrderStatus.ALL,
                after=cursor.to_pydatetime(),
                direction=Sort.ASC,
                nested=True,
                limit=self.page_size,
            )
            page = self._read(lambda r=request: self._trading.get_orders(r), "order list")
            new = [o for o in map(_order_state, page) if o.id not in seen]
            seen.update((o.id, o) for o in new)
            if len(page) < self.page_size:
                break
            stamps = [o.submitted_at for o in new if o.submitted_at is not None]
            if not stamps:
                raise BrokerError(
                    f"{self.label}: more than {self.page_size} orders were submitted at "
                    f"{cursor.isoformat()}, which the orders API cannot page through"
                )
            cursor = (max(stamps) - pd.Timedelta(microseconds=1)).floor("us")
        floor = pd.Timestamp.min.tz_localize("UTC")
        return sorted(seen.values(), key=lambda o: o.submitted_at or floor)

    # --- orders ---------------------------------------------------------------------------------

    def submit_bracket(
        self,
        *,
        client_order_id: str,
        symbol: str,
        side: Literal["buy", "sell"],
        qty: int,
        take_profit: float,
        stop_loss: float,
        time_in_force: str = "day",
    ) -> SubmitResult:
        """A market entry with take-profit and stop-loss legs, placed exactly once per id.

        Look up, POST; on a retryable failure back off (Retry-After honoured) and look up again
        before the next POST, because a lost answer may hide a booked order. Raises
        BrokerRejected / BrokerConfigError for refusals, BrokerUnavailable when every attempt
        failed and the order is not at the broker (re-running is then safe).
        """
        if not client_order_id:
            raise ValueError("client_order_id is required: it is what makes a retry safe")
        if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
            raise ValueError(f"qty must be a positive whole number of shares, got {qty!r}")
        request = MarketOrderRequest(
            symbol=symbol.upper(),
            qty=qty,
            side=OrderSide(side),
            time_in_force=TimeInForce(time_in_force),
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=take_profit),
            stop_loss=StopLossRequest(stop_price=stop_loss),
            client_order_id=client_order_id,
        )
        what = f"order {client_order_id!r} ({side} {qty} {symbol.upper()})"
        posts = 0
        maybe_placed = False  # a POST of ours may have been booked with its answer lost

        def found(order: OrderState) -> SubmitResult:
            return SubmitResult(order, "submitted" if maybe_placed else "already_existed", posts)

        def attempt() -> SubmitResult:
            nonlocal posts, maybe_placed
            existing = self.order_by_client_id(client_order_id)
            if existing is not None:
                return found(existing)
            posts += 1
            try:
                order = self._trading.submit_order(request)
            except APIError as exc:
                if _is_duplicate_id(exc):
                    again = self.order_by_client_id(client_order_id)
                    if again is not None:
                        return SubmitResult(again, "already_existed", posts)
                if is_retryable_error(exc):
                    maybe_placed = maybe_placed or _is_ambiguous(exc)
                    logger.warning(
                        "%s: POST %d failed (%s); will look up, then retry",
                        what,
                        posts,
                        _error_text(exc),
                    )
                raise
            except requests.exceptions.RequestException as exc:
                if is_retryable_error(exc):
                    maybe_placed = True
                    logger.warning(
                        "%s: POST %d got no answer (%s); will look up, then retry",
                        what,
                        posts,
                        type(exc).__name__,
                    )
                raise
            return SubmitResult(_order_state(order), "submitted", posts)

        try:
            return self._backoff(attempt, what)
        except APIError as exc:
            raise _translate(exc, what) from exc
        except BrokerUnavailable as exc:
            if posts == 0:
                raise  # the look-up itself failed; nothing was sent
            # The last POST's answer may have been lost after the broker booked it.
            cause = exc.__cause__.__cause__ if exc.__cause__ is not None else None
            failed = f"{posts} POST attempt(s) failed (last error: {_error_text(cause or exc)})"
            try:
                existing = self.order_by_client_id(client_order_id)
            except BrokerUnavailable:
                raise BrokerUnavailable(
                    f"{self.label}: {what}: {failed}, and the broker could not be asked whether "
                    "one was booked; re-running the step is safe (it looks the id up first)"
                ) from exc
            if existing is not None:
                return found(existing)
            raise BrokerUnavailable(
                f"{self.label}: {what} was not placed: {failed}; no order with this "
                "client_order_id is at the broker, so re-running the step is safe"
            ) from exc

    def cancel_all_orders(self) -> int:
        """Cancel every open order (bracket legs go with their parent); returns how many."""
        answers = self._read(self._trading.cancel_orders, "cancel all orders")
        return sum(1 for a in answers if a.status is None or 200 <= int(a.status) < 300)

    def close_all_positions(self) -> list[OrderState]:
        """Cancel open orders, then send a market order closing each position.

        A retry after a lost answer is harmless: cancelling first withdraws any closing orders
        still working, and positions already closed are not sent again. Raises BrokerRejected
        naming the symbols the broker refused to close.
        """
        answers = self._read(
            lambda: self._trading.close_all_positions(cancel_orders=True), "close all positions"
        )
        orders, refused = [], []
        for answer in answers:
            if isinstance(answer.body, Order):
                orders.append(_order_state(answer.body))
            else:
                message = getattr(answer.body, "message", "") or ""
                refused.append(f"{answer.symbol} (HTTP {answer.status}: {message})")
        if refused:
            raise BrokerRejected(
                f"{self.label} refused to close {', '.join(refused)} "
                f"({len(orders)} other positions are being closed); check the account and "
                "close them by hand if needed",
                status=None,
                message="; ".join(refused),
            )
        return orders


# --- resource -----------------------------------------------------------------------------------


def _resolved(value: str) -> str:
    """An EnvVar field's value: Dagster resolves it inside a run, but outside one (scripts,
    tests) the field still holds the EnvVar, whose text is the variable's *name*."""
    if isinstance(value, dg.EnvVar):
        return value.get_value() or ""
    return value or ""


class BrokerResource(dg.ConfigurableResource):
    """Which broker the execution op trades on (see the module docstring for why).

    mode: "embedded" (the local paper broker; placeholder keys unless given), "paper"
    (Alpaca paper; needs keys) or "live" (real money; needs keys and `allow_live=True`).
    `base_url` / `data_url` override the trading / market-data endpoints.
    """

    mode: str = "embedded"
    base_url: str = ""
    data_url: str = ""
    api_key: str = ""
    secret_key: str = ""
    allow_live: bool = False
    feed: str = "iex"
    timeout_s: float = 10.0
    max_attempts: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def __repr__(self) -> str:
        return f"BrokerResource({self.describe()})"

    __str__ = __repr__

    @property
    def normalized_mode(self) -> str:
        return self.mode.strip().lower()

    @property
    def trading_url(self) -> str:
        defaults = {"embedded": EMBEDDED_URL, "paper": PAPER_URL, "live": LIVE_URL}
        return (self.base_url or defaults.get(self.normalized_mode, "")).rstrip("/")

    def _data_url(self) -> str | None:
        """None = alpaca-py's default market-data endpoint."""
        if self.data_url:
            return self.data_url.rstrip("/")
        return self.trading_url if self.normalized_mode == "embedded" else None

    def describe(self) -> str:
        """Where orders go, for logs and metadata: never a key."""
        url = _safe_url(self.trading_url)
        mode = self.normalized_mode
        if mode == "embedded":
            return f"embedded paper broker at {url}"
        if mode == "paper":
            return f"Alpaca paper ({url})"
        if mode == "live":
            opt_in = "" if self.allow_live else ", refused without TRADING_ALLOW_LIVE"
            return f"Alpaca LIVE, real money ({url}{opt_in})"
        return f"unknown broker mode {self.mode!r}"

    def client(self) -> BrokerClient:
        """A client for one step; raises BrokerConfigError saying what to set if misconfigured."""
        mode = self.normalized_mode
        key, secret = _resolved(self.api_key), _resolved(self.secret_key)
        problems = []
        if mode not in MODES:
            problems.append(
                f"mode must be one of {', '.join(MODES)} (TRADING_BROKER_MODE), not {self.mode!r}"
            )
        if mode in ("paper", "live"):
            missing = [
                name
                for name, value in (("ALPACA_API_KEY", key), ("ALPACA_SECRET_KEY", secret))
                if not value
            ]
            if missing:
                problems.append(
                    f"Alpaca {mode} trading needs {' and '.join(missing)}: set them in the "
                    "environment, or use TRADING_BROKER_MODE=embedded for the local paper broker"
                )
        if mode == "live" and not self.allow_live:
            problems.append(
                "mode 'live' trades real money and is refused unless allowed: set "
                "TRADING_ALLOW_LIVE=true (allow_live=True) if that is really meant, otherwise "
                "use TRADING_BROKER_MODE=paper"
            )
        for name, url in (("base_url", self.trading_url), ("data_url", self._data_url())):
            if url is not None and urlsplit(url).scheme not in ("http", "https"):
                problems.append(f"{name} must be an http(s) URL, not {_safe_url(url)!r}")
        if self.timeout_s <= 0 or self.max_attempts < 1 or self.backoff_s < 0:
            problems.append("need timeout_s > 0, max_attempts >= 1 and backoff_s >= 0")
        if self.feed not in {f.value for f in DataFeed}:
            problems.append(f"unknown Alpaca feed {self.feed!r}")
        if problems:
            raise BrokerConfigError("BrokerResource misconfigured: " + "; ".join(problems))
        if mode == "embedded" and not (key and secret):
            key, secret = _EMBEDDED_CREDENTIALS
        trading = TradingClient(key, secret, paper=mode != "live", url_override=self.trading_url)
        data = StockHistoricalDataClient(key, secret, url_override=self._data_url())
        return BrokerClient(
            trading,
            data,
            max_attempts=self.max_attempts,
            backoff_s=self.backoff_s,
            max_backoff_s=self.max_backoff_s,
            feed=self.feed,
            timeout_s=self.timeout_s,
            label=self.describe(),
        )


def broker_from_env() -> BrokerResource:
    """The wiring's broker: embedded unless TRADING_BROKER_MODE says otherwise."""
    env = os.environ.get
    return BrokerResource(
        mode=env("TRADING_BROKER_MODE", "") or "embedded",
        base_url=env("TRADING_BROKER_URL", ""),
        data_url=env("TRADING_BROKER_DATA_URL", ""),
        api_key=env_secret("ALPACA_API_KEY"),
        secret_key=env_secret("ALPACA_SECRET_KEY"),
        allow_live=env("TRADING_ALLOW_LIVE", "").strip().lower() in ("true", "1", "yes"),
        feed=env("ALPACA_DATA_FEED", "") or "iex",
    )
