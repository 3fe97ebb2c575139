"""A local OpenAI-compatible server, for the `openai` client over real HTTP.

It speaks the subset every OpenAI-compatible server (vLLM, Ollama, llama.cpp) shares:
`POST /v1/chat/completions` answering a real `chat.completion` body with `usage`, and
`GET /v1/models`. The client's own URL building, retries, Retry-After handling and timeouts
run unchanged; only the far end is ours.

* The answer comes from `answer(request_json) -> dict | str` (a dict is sent as JSON text, a
  str verbatim). By default: `fixed` if given, else a schema-valid neutral object built from the
  request's `response_format` JSON schema.
* `script(...)` makes the next requests misbehave, one item per request, in order:
  "invalid_json", "out_of_range" (valid JSON that violates the schema), "timeout" (holds the
  request longer than a short client timeout), or an HTTP status (429 carries `Retry-After: 0`,
  like the base server's faults; 401/500 carry OpenAI's error body).
* Every request body is recorded (`chat_requests`); `max_in_flight` is the largest number of
  completions being served at once (a `delay_s` makes overlap observable).
* With `api_key`, a wrong bearer key gets OpenAI's 401, which echoes the key it was sent
  (OpenAI masks part of it; echoing all of it makes leak tests stricter).

Usage::

    with FakeOpenAIServer(api_key="sk-test") as server:
        server.script("invalid_json", 500)
        OpenAI(base_url=server.base_url, api_key="sk-test").chat.completions.create(...)
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tests.fakes.http_server import FakeHTTPServer, FakeResponse, RecordedRequest

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"

Answer = Callable[[dict[str, Any]], "dict[str, Any] | str"]
ScriptItem = str | int

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


def openai_error(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error body: {"error": {"message", "type", "param", "code"}}."""
    kind, code = _ERROR_TYPES.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def bearer(request: RecordedRequest) -> str:
    """The Authorization header, whatever case the client spelled its name in."""
    return next((v for k, v in request.headers.items() if k.lower() == "authorization"), "")


def _words(text: str) -> int:
    return len(text.split())


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        return _resolve(node, root)
    return schema


def neutral_value(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """The blandest value that satisfies `schema`: "neutral" if allowed, 0 clipped into range."""
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if options:
            chosen = [o for o in options if _resolve(o, root).get("type") != "null"] or options
            return neutral_value(chosen[0], root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        values = schema["enum"]
        return "neutral" if "neutral" in values else values[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {name: neutral_value(sub, root) for name, sub in props.items()}
    if kind == "array":
        item = neutral_value(schema.get("items", {"type": "string"}), root)
        return [item] * int(schema.get("minItems", 0))
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        value: float = 0.0
        if low is not None and value < low:
            value = low
        if high is not None and value > high:
            value = high
        return int(value) if kind == "integer" else float(value)
    if kind == "string":
        return "n/a"[: schema.get("maxLength", 3)].ljust(schema.get("minLength", 0), "x")
    if kind == "boolean":
        return False
    return None


def out_of_range(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """`value` with its first bounded number pushed past the bound (e.g. score 3.0)."""
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name, sub in props.items():
            sub = _resolve(sub, root)
            high = sub.get("maximum", sub.get("exclusiveMaximum"))
            if high is not None and name in value:
                return {**value, name: float(high) + 2.0}
        return {**value, "unexpected_field": 3.0}
    return {"unexpected_field": 3.0}


def request_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a chat request asked for, if it used response_format json_schema."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema")
    return None


class FakeOpenAIServer(FakeHTTPServer):
    """OpenAI-compatible chat completions with a script of faults. A context manager."""

    def __init__(
        self,
        *,
        answer: Answer | None = None,
        fixed: dict[str, Any] | None = None,
        api_key: str | None = None,
        models: tuple[str, ...] = ("gpt-4o-mini", "local-model"),
        delay_s: float = 0.0,
        timeout_hold_s: float = 3.0,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__()
        self.answer: Answer = answer or self._default_answer
        self.fixed = fixed
        self.api_key = api_key
        self.models = models
        self.delay_s = delay_s
        self.timeout_hold_s = timeout_hold_s
        # `retry-after-ms` on faults: the openai client ignores `Retry-After: 0` (it only honours
        # delays > 0) and backs off 0.5 s, 1 s, 2 s...; tests set 1 ms to stay fast.
        self.retry_after_ms = retry_after_ms
        self._script: deque[ScriptItem] = deque()
        self._release = threading.Event()
        self._in_flight = 0
        self.max_in_flight = 0
        self._arrived: list[dict[str, Any]] = []
        self.route("POST", CHAT_PATH, self._chat)
        self.route("GET", MODELS_PATH, self._models)

    # --- configuration --------------------------------------------------------------------------

    def script(self, *items: ScriptItem) -> None:
        """Queue misbehaviour for the next len(items) chat requests, one each, in order."""
        with self._lock:
            self._script.extend(items)

    def fault_body(self, status: int) -> Any:
        return openai_error(status, f"injected fault {status}")

    @property
    def base_url(self) -> str:
        """What `OpenAI(base_url=...)` takes."""
        return f"{self.url}/v1"

    # --- inspection -----------------------------------------------------------------------------

    def chat_requests(self) -> list[dict[str, Any]]:
        """Parsed bodies of chat requests as they arrived (scripted faults and held "timeout"
        requests included, which the base log only records once answered; faults injected
        with the base `fail_next` never reach the route and are only in `requests`)."""
        with self._lock:
            return list(self._arrived)

    @property
    def chat_count(self) -> int:
        with self._lock:
            return len(self._arrived)

    def stop(self) -> None:
        self._release.set()  # let held "timeout" requests finish so shutdown does not wait
        super().stop()

    # --- handlers -------------------------------------------------------------------------------

    def _default_answer(self, body: dict[str, Any]) -> dict[str, Any] | str:
        if self.fixed is not None:
            return self.fixed
        schema = request_schema(body)
        return neutral_value(schema) if schema else {}

    def _auth_failure(self, request: RecordedRequest) -> FakeResponse | None:
        if self.api_key is None:
            return None
        sent = bearer(request).removeprefix("Bearer ")
        if sent == self.api_key:
            return None
        return FakeResponse(401, openai_error(401, f"Incorrect API key provided: {sent}."))

    def _error(self, status: int) -> FakeResponse:
        headers: dict[str, str] = {}
        if status == 429:
            headers["Retry-After"] = "0"
        if self.retry_after_ms is not None and (status == 429 or status >= 500):
            headers["retry-after-ms"] = str(self.retry_after_ms)
        message = "Rate limit reached" if status == 429 else f"scripted error {status}"
        if status == 401:
            message = "Incorrect API key provided."
        return FakeResponse(status, openai_error(status, message), headers)

    def _models(self, request: RecordedRequest) -> FakeResponse:
        denied = self._auth_failure(request)
        if denied is not None:
            return denied
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return FakeResponse(body={"object": "list", "data": data})

    def _chat(self, request: RecordedRequest) -> FakeResponse:
        body = request.json() or {}
        with self._lock:
            self._arrived.append(body)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            item = self._script.popleft() if self._script else None
        try:
            return self._serve(request, body, item)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _serve(
        self, request: RecordedRequest, body: dict[str, Any], item: ScriptItem | None
    ) -> FakeResponse:
        denied = self._auth_failure(request)
        if denied is not None:
            return denied
        if isinstance(item, int):
            return self._error(item)
        if item == "timeout":
            self._release.wait(self.timeout_hold_s)
        elif self.delay_s:
            time.sleep(self.delay_s)
        if item == "invalid_json":
            content = '```json\n{"stance": "bullish", "score": 0.4,,\n```'
        elif item == "out_of_range":
            schema = request_schema(body) or {}
            answer = self.answer(body)
            value = json.loads(answer) if isinstance(answer, str) else answer
            content = json.dumps(out_of_range(value, schema))
        elif item in (None, "timeout"):
            answer = self.answer(body)
            content = answer if isinstance(answer, str) else json.dumps(answer)
        else:
            raise ValueError(f"unknown script item {item!r}")
        prompt_tokens = sum(_words(str(m.get("content", ""))) for m in body.get("messages", []))
        completion_tokens = _words(content)
        n = self.chat_count
        return FakeResponse(
            body={
                "id": f"chatcmpl-fake-{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "unknown"),
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )
