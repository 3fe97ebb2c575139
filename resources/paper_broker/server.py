"""The paper broker's HTTP side: an Alpaca-compatible server over `BrokerEngine`.

It speaks the part of Alpaca's trading and market-data APIs that alpaca-py uses here, so the
execution op runs the same client code against it, against Alpaca paper, or (opted in) live:

    GET  /v2/account                      GET  /v2/clock
    POST /v2/orders                       GET  /v2/orders        DELETE /v2/orders
    GET  /v2/orders/{id}                  DELETE /v2/orders/{id}
    GET  /v2/orders:by_client_order_id?client_order_id=...
    GET  /v2/positions                    DELETE /v2/positions   (close all; ?cancel_orders=true)
    GET  /v2/positions/{symbol}           DELETE /v2/positions/{symbol}
    GET  /v2/stocks/bars                  GET  /v2/stocks/quotes/latest   GET /v2/stocks/bars/latest

and, for tests and drills, admin endpoints that are never faulted and need the same
credentials as the API (a local process without them can neither move the clock nor inject
faults):

    GET/POST /admin/clock   {"now": ISO} sets, {"advance_seconds": n} advances the simulated time
    POST /admin/faults      {"kind": "500"|"429"|"timeout"|"drop", "times": n, "path": ...,
                             "method": ..., "retry_after": s, "seconds": s,
                             "after_processing": bool}
    POST /admin/chaos       {"rate": p, "seed": n, "kinds": [...], "seconds": s}: random faults
    DELETE /admin/faults    (both kinds)   GET /admin/faults/stats   GET /admin/fills

Faults are how the exactly-once claims are tested (RELIABILITY.md): one-off faults for the next
requests, or seeded random faults on a share of every API call. A "lost" random fault is a
dropped answer to a request the broker already applied, the case where a client cannot tell
whether its order was booked.
"""

from __future__ import annotations

import json
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from resources.paper_broker.bars import bar_store
from resources.paper_broker.clock import as_utc
from resources.paper_broker.engine import ApiError, BrokerEngine
from resources.paper_broker.state import BrokerState, iso
from resources.providers.replay import BUNDLED_REPLAY_DIR
from trading_assets.execution.fills import FillModel

FAULT_KINDS = ("500", "429", "timeout", "drop")
CHAOS_KINDS = ("500", "429", "timeout", "drop", "lost")  # lost = drop after applying


@dataclass
class Fault:
    """A fault for the next `remaining` API requests (to `path` / `method` only, if set)."""

    kind: str  # "500" | "429" | "timeout" | "drop"
    remaining: int
    path: str | None = None
    retry_after: int = 1
    seconds: float = 5.0
    after_processing: bool = False
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.path is None or self.path == path) and (
            self.method is None or self.method == method
        )


@dataclass
class Chaos:
    """Seeded random faults: each API request fails with probability `rate`, its kind drawn
    from `kinds` ("lost": the request is applied, then its answer dropped). One generator
    under a lock, so one seed and one sequence of requests give the same faults."""

    rate: float
    seed: int
    kinds: tuple[str, ...] = CHAOS_KINDS
    seconds: float = 1.0  # a "timeout" holds the connection this long (beyond the client's)
    path_prefix: str = "/v2/"

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"chaos rate must be in [0, 1], got {self.rate}")
        unknown = set(self.kinds) - set(CHAOS_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"chaos kinds must be among {CHAOS_KINDS}, got {self.kinds}")
        self._random = random.Random(self.seed)

    def draw(self, path: str) -> Fault | None:
        if not path.startswith(self.path_prefix) or self._random.random() >= self.rate:
            return None
        kind = self._random.choice(self.kinds)
        if kind == "lost":
            return Fault("drop", 1, after_processing=True)
        return Fault(kind, 1, retry_after=0, seconds=self.seconds)


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
        self._bars = bar_store(str(Path(replay_folder).expanduser().resolve()))
        start = (
            as_utc(pd.Timestamp(start_time)) if start_time is not None else self._bars.first_start
        )
        self._engine_args = {
            "fill_model": fill_model or FillModel(),
            "spread_bps": spread_bps,
            "flatten_at_close": flatten_at_close,
        }
        self._initial_cash, self._start = initial_cash, start
        self.engine: BrokerEngine | None = None
        self._faults: deque[Fault] = deque()
        self._chaos: Chaos | None = None
        self._fault_stats: dict[str, int] = {}
        self._fault_lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> PaperBroker:
        state = BrokerState(self.db_path, initial_cash=self._initial_cash, start_time=self._start)
        self.engine = BrokerEngine(state, self._bars, **self._engine_args)  # type: ignore[arg-type]
        self._stopping.clear()
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler_class(self.handle))
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
        method: str | None = None,
    ) -> None:
        """Answer the next `times` API requests (to `path` / with `method` if given) with a
        fault: "500", "429" (with Retry-After), "timeout" (hold the connection `seconds`, then
        close it unanswered) or "drop" (close it unanswered). `after_processing` applies the
        request first, the way a response lost on the way back looks to a client."""
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        fault = Fault(kind, times, path, retry_after, seconds, after_processing, method)
        with self._fault_lock:
            self._faults.append(fault)

    def inject_chaos(
        self,
        rate: float,
        seed: int,
        *,
        kinds: tuple[str, ...] = CHAOS_KINDS,
        seconds: float = 1.0,
    ) -> None:
        """From now on, fail each API request with probability `rate` (see `Chaos`); one-off
        faults from `inject_fault` still come first."""
        chaos = Chaos(rate, seed, tuple(kinds), seconds)
        with self._fault_lock:
            self._chaos = chaos

    def clear_faults(self) -> None:
        """Drop every pending one-off fault and stop random faults (the counts stay)."""
        with self._fault_lock:
            self._faults.clear()
            self._chaos = None

    def fault_stats(self) -> dict[str, int]:
        """API requests served and faults given, by kind ("requests", "500", "lost", ...)."""
        with self._fault_lock:
            return dict(self._fault_stats)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._fault_lock:
            stats = self._fault_stats
            stats["requests"] = stats.get("requests", 0) + 1
            chosen = next((f for f in self._faults if f.matches(method, path)), None)
            if chosen is not None:
                chosen.remaining -= 1
                if chosen.remaining <= 0:
                    self._faults.remove(chosen)
            elif self._chaos is not None:
                chosen = self._chaos.draw(path)
            if chosen is not None:
                name = "lost" if chosen.after_processing else chosen.kind
                stats[name] = stats.get(name, 0) + 1
                stats["faults"] = stats.get("faults", 0) + 1
            return chosen

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
                        method=body.get("method"),
                    )
                except ValueError as exc:
                    raise ApiError(422, 42210000, str(exc)) from None
            elif method == "DELETE":
                self.clear_faults()
            with self._fault_lock:
                return 200, [vars(f) for f in self._faults]
        if path == "/admin/chaos" and method == "POST":
            try:
                self.inject_chaos(
                    float(body.get("rate", 0.0)),
                    int(body.get("seed", 0)),
                    kinds=tuple(body.get("kinds") or CHAOS_KINDS),
                    seconds=float(body.get("seconds", 1.0)),
                )
            except ValueError as exc:
                raise ApiError(422, 42210000, str(exc)) from None
            return 200, {"rate": self._chaos.rate if self._chaos else 0.0}
        if path == "/admin/faults/stats" and method == "GET":
            return 200, self.fault_stats()
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
        fault = None if is_admin else self._take_fault(handler.command, path)

        def run() -> tuple[int, Any, dict[str, str]]:
            if not self._authorized(handler.headers):
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
        send_response(
            handler, status, b"" if payload is None else json.dumps(payload).encode(), headers
        )


def send_response(
    handler: BaseHTTPRequestHandler,
    status: int,
    data: bytes,
    headers: dict[str, str],
    content_type: str = "application/json; charset=utf-8",
) -> None:
    """Write one complete answer; a client that already gave up (timeout tests) is ignored."""
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up first


def handler_class(handle: Callable[[BaseHTTPRequestHandler], None]) -> type[BaseHTTPRequestHandler]:
    """A request handler class that sends every method to `handle`, quietly (no stderr log)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            handle(self)

        do_POST = do_GET
        do_DELETE = do_GET
        do_PATCH = do_GET
        do_PUT = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
