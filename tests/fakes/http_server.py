"""A tiny threaded HTTP server on 127.0.0.1 for wire-level provider tests.

Real client libraries (alpaca-py, finnhub-python, requests) talk to it over real sockets, so a
test exercises their URL building, query encoding, pagination and error handling exactly as in
production; only the far end is ours. Every request is logged, and a fault queue lets a test
answer the next N requests with 429/500/401 before normal service resumes.

Usage::

    def hello(req: RecordedRequest) -> FakeResponse:
        return FakeResponse(body={"hi": req.param("name")})

    with FakeHTTPServer({("GET", "/hello"): hello}) as server:
        server.fail_next(429, times=2)          # Retry-After: 0 is added for 429
        requests.get(f"{server.url}/hello", params={"name": "x"})
        assert len(server.requests) == 1
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from resources.paper_broker.server import handler_class, send_response


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it. `path` has duplicate slashes collapsed."""

    method: str
    raw_path: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0  # the status the server answered with

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter `name`."""
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body parsed as JSON (None when empty): what POST-based APIs send."""
        return json.loads(self.body) if self.body else None


@dataclass
class FakeResponse:
    """What a route returns. `body` may be bytes, str, or anything JSON-serialisable."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        if self.body is None:
            return b""
        return json.dumps(self.body).encode()


Route = Callable[[RecordedRequest], FakeResponse]


@dataclass
class _Fault:
    status: int
    remaining: int | None  # None: until cleared
    headers: dict[str, str]
    body: Any
    path: str | None


class FakeHTTPServer:
    """Routes keyed by (METHOD, path); unknown paths get 404. A context manager."""

    def __init__(self, routes: Mapping[tuple[str, str], Route] | None = None) -> None:
        self._routes: dict[tuple[str, str], Route] = dict(routes or {})
        self._faults: deque[_Fault] = deque()
        self._log: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- configuration --------------------------------------------------------------------------

    def route(self, method: str, path: str, handler: Route) -> None:
        """Add or replace a route."""
        self._routes[(method.upper(), path)] = handler

    def fault_body(self, status: int) -> Any:
        """The body sent with an injected fault; subclasses speak their API's error format."""
        return {"message": f"injected fault {status}"}

    def fail_next(
        self,
        status: int,
        times: int | None = 1,
        *,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `times` requests (to `path`, if given) with `status`; None = forever.

        Faults queue up in order: `fail_next(429, 2); fail_next(500)` gives 429, 429, 500, then
        normal answers. A 429 carries `Retry-After: 0` unless `headers` says otherwise.
        """
        merged = {"Retry-After": "0"} if status == 429 else {}
        merged.update(headers or {})
        with self._lock:
            self._faults.append(_Fault(status, times, merged, body, path))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # --- inspection -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server is not running; use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeHTTPServer:
        # quiet (no stderr log line per request): the request log is the record
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_class(self._handle))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- request handling -----------------------------------------------------------------------

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path is not None and fault.path != path:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        path = re.sub(r"/{2,}", "/", parts.path)
        request = RecordedRequest(
            method=handler.command,
            raw_path=handler.path,
            path=path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=dict(handler.headers.items()),
            body=body,
        )
        fault = self._take_fault(path)
        if fault is not None:
            response = FakeResponse(
                status=fault.status,
                body=fault.body if fault.body is not None else self.fault_body(fault.status),
                headers=fault.headers,
            )
        else:
            route = self._routes.get((handler.command, path))
            if route is None:
                response = FakeResponse(404, {"message": f"no route for {handler.command} {path}"})
            else:
                try:
                    response = route(request)
                except Exception as exc:  # a bug in a fake must show up as a 500, not a hang
                    response = FakeResponse(500, {"message": f"fake server error: {exc!r}"})
        with self._lock:
            self._log.append(replace(request, status=response.status))
        send_response(
            handler, response.status, response.encoded(), response.headers, response.content_type
        )
