"""The one LLM resource every agent uses: any OpenAI-compatible server, validated and cached.

Why it looks like this:

* One client library (`openai`) for OpenAI, vLLM, Ollama and llama.cpp: only `base_url`,
  `model` and the key differ.
* Every answer is parsed and validated against the agent's pydantic schema. A bad answer gets
  one repair call; a second bad answer becomes the request's fallback (neutral / HOLD) with the
  reason in the answer, so the row and the metadata say so. Nothing fails silently.
* Retries, backoff and Retry-After are the openai client's own (it retries 408, 409, 429, 5xx,
  timeouts and connection errors); errors left after them become fallbacks that are NOT cached,
  so the next run tries again. A rejected key (401/403) or a bad request (400/404/422) is a
  configuration error and raises `LLMConfigError`: retrying or falling back cannot fix it.
* A content-addressed cache in the warehouse (`trading.llm_cache`, key = sha256 of model,
  parameters, schema and messages) makes a re-materialized partition cost zero calls and give
  identical output; `cache_mode="replay_only"` turns a miss into `LLMCacheMiss` for backtests
  that must be reproducible.
* The cache connection is opened per cache operation (with backoff on DuckDB's file lock), not
  held for the client's lifetime: Dagster's multiprocess executor runs the analysts and the
  DuckDB IO manager in separate processes, and DuckDB lets only one process open the file at once.
* The API key never leaves `LLMResource`/the openai client: not in answers, metadata, cache rows,
  `describe()`, error messages or reprs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import dagster as dg
import duckdb
import numpy as np
import pydantic

from resources.errors import ProviderConfigError
from resources.warehouse import SCHEMA, warehouse_path, warehouse_resource

if TYPE_CHECKING:  # imported where a model is called: the rules backend never loads it (0.8 s)
    import openai

CACHE_TABLE = f"{SCHEMA}.llm_cache"
CACHE_MODES = ("read_write", "replay_only", "off")
RESPONSE_FORMATS = ("json_schema", "json_object")
PROVIDERS = ("rules", "openai")

# Keywords strict structured outputs reject (Azure OpenAI names maxLength as the example);
# the prompt still shows the full schema and pydantic still enforces them here.
_UNSUPPORTED_STRICT_KEYWORDS = frozenset({"minLength", "maxLength", "default"})
_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
_REASON_CHARS = 400


def token_cost(tokens_in: int, tokens_out: int, in_per_mtok: float, out_per_mtok: float) -> float:
    """USD for a call (or a sum of calls) at per-million-token prices: one rule for the live
    accounting and the backtest's cost line."""
    return round((tokens_in * in_per_mtok + tokens_out * out_per_mtok) / 1_000_000, 8)


class LLMCacheMiss(Exception):
    """replay_only and the request is not in the cache: the backtest would not be reproducible."""


class LLMConfigError(ProviderConfigError):
    """The provider is not configured or rejects the configuration: retrying cannot help."""


@dataclass(frozen=True)
class LLMRequest:
    """One structured question: chat messages, the answer's schema and what to use if it fails."""

    messages: list[dict[str, str]]
    schema: type[pydantic.BaseModel]
    fallback: pydantic.BaseModel
    purpose: str  # for logs and the cache row, e.g. "technical AAPL 2026-03-23 10:31"


@dataclass(frozen=True)
class LLMAnswer:
    """A validated answer (or the fallback) and what it cost."""

    value: pydantic.BaseModel
    model: str
    prompt_hash: str  # the cache key, 64 hex chars
    cached: bool
    fallback: bool
    fallback_reason: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float
    calls: int  # HTTP requests made for this answer, retries included (0 on a cache hit)


def _percentile(values: Sequence[float], q: float) -> float:
    """numpy's linear-interpolated percentile, 0.0 for no values."""
    return float(np.percentile(values, q * 100)) if values else 0.0


class LLMStats:
    """Thread-safe totals for one asset materialization, as Dagster metadata.

    Tokens and cost of new calls and of cache hits are kept apart: a re-run backfill reports
    zero spend (`llm_cost_usd`) yet still shows what its answers originally cost.
    """

    def __init__(self, model: str = "") -> None:
        self.model = model
        self._lock = threading.Lock()
        self._answers: list[LLMAnswer] = []

    def record(self, answer: LLMAnswer) -> None:
        with self._lock:
            self._answers.append(answer)

    @property
    def answers(self) -> list[LLMAnswer]:
        with self._lock:
            return list(self._answers)

    def as_metadata(self) -> dict[str, int | float | str]:
        answers = self.answers
        new = [a for a in answers if not a.cached]
        hits = [a for a in answers if a.cached]
        latencies = [a.latency_ms for a in new if a.calls > 0]
        fallbacks = [a for a in answers if a.fallback]
        reasons = Counter(a.fallback_reason for a in fallbacks)
        reason_text = "; ".join(f"{r} (x{n})" for r, n in sorted(reasons.items()))
        return {
            "llm_model": self.model or (answers[0].model if answers else ""),
            "llm_requests": len(answers),
            "llm_calls": sum(a.calls for a in answers),
            "llm_cache_hits": len(hits),
            "llm_input_tokens": sum(a.input_tokens for a in new),
            "llm_output_tokens": sum(a.output_tokens for a in new),
            "llm_cost_usd": round(float(sum(a.cost_usd for a in new)), 6),
            "llm_cached_input_tokens": sum(a.input_tokens for a in hits),
            "llm_cached_output_tokens": sum(a.output_tokens for a in hits),
            "llm_cached_cost_usd": round(float(sum(a.cost_usd for a in hits)), 6),
            "llm_latency_p50_ms": round(_percentile(latencies, 0.50), 1),
            "llm_latency_p95_ms": round(_percentile(latencies, 0.95), 1),
            "llm_fallbacks": len(fallbacks),
            "llm_fallback_rate": round(len(fallbacks) / len(answers), 4) if answers else 0.0,
            "llm_fallback_reasons": reason_text[:2000],
        }


# --- process-wide locks -------------------------------------------------------------------------

_REGISTRY_LOCK = threading.Lock()
_SEMAPHORES: dict[tuple[str, int], threading.BoundedSemaphore] = {}
# One lock per cache file for the whole process: the analysts' clients run in parallel threads,
# and DuckDB answers two concurrent transactions that create or insert into the same table with
# a write-write conflict instead of waiting.
_CACHE_LOCKS: dict[str, threading.Lock] = {}


def _semaphore(base_url: str, limit: int) -> threading.BoundedSemaphore:
    """One semaphore per (server, limit) in this process, shared by every client of it."""
    with _REGISTRY_LOCK:
        key = (base_url, limit)
        if key not in _SEMAPHORES:
            _SEMAPHORES[key] = threading.BoundedSemaphore(limit)
        return _SEMAPHORES[key]


def _cache_lock(database: str) -> threading.Lock:
    with _REGISTRY_LOCK:
        return _CACHE_LOCKS.setdefault(str(Path(database).resolve()), threading.Lock())


# --- helpers --------------------------------------------------------------------------------------


def _canonical(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _drop_unsupported_keywords(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop unsupported keywords but never a property that happens to be called e.g. "default"."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: _drop_unsupported_keywords(sub) for name, sub in value.items()}
        elif key in _UNSUPPORTED_STRICT_KEYWORDS:
            continue
        elif isinstance(value, dict):
            out[key] = _drop_unsupported_keywords(value)
        elif isinstance(value, list):
            out[key] = [_drop_unsupported_keywords(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out


def _response_format(schema: type[pydantic.BaseModel], mode: str) -> dict[str, Any]:
    # what client.chat.completions.parse uses
    from openai.lib._pydantic import to_strict_json_schema

    if mode == "json_object":
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {
            "name": re.sub(r"[^a-zA-Z0-9_-]", "_", schema.__name__)[:64],
            "schema": _drop_unsupported_keywords(to_strict_json_schema(schema)),
            "strict": True,
        },
    }


def _strip_fences(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1).strip() if match else text.strip()


def _validate(
    schema: type[pydantic.BaseModel], content: str | None
) -> tuple[pydantic.BaseModel | None, str, str]:
    """(value, "", "") if `content` is a valid `schema` instance, else (None, kind, details)."""
    if content is None or not content.strip():
        return None, "empty answer", "the answer had no content"
    try:
        data = json.loads(_strip_fences(content))
    except json.JSONDecodeError as exc:
        return None, "invalid JSON", f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except ValueError as exc:  # e.g. an integer literal past Python's 4,300-digit limit
        return None, "invalid JSON", f"unreadable number: {str(exc)[:200]}"
    except RecursionError:  # arrays or objects nested deeper than the parser's stack
        return None, "invalid JSON", "nested too deeply to parse"
    try:
        return schema.model_validate(data), "", ""
    except pydantic.ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        return None, "schema violation", details


def max_tokens_param(host: str) -> str:
    """OpenAI itself wants max_completion_tokens (reasoning models reject max_tokens);
    compatible servers (llama.cpp, older Ollama/vLLM) only know max_tokens."""
    return "max_completion_tokens" if host == "api.openai.com" else "max_tokens"


def _host(base_url: str) -> str:
    if not base_url:
        return "api.openai.com"
    return urlsplit(base_url).netloc or base_url


@dataclass(frozen=True)
class _Settings:
    """What a client needs; the key is kept out of repr."""

    model: str
    base_url: str
    api_key: str = field(repr=False)
    temperature: float
    max_output_tokens: int
    timeout_s: float
    max_retries: int
    max_concurrency: int
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    cache_mode: str
    response_format: str
    cache_database: str


@dataclass
class _Call:
    """One chat completion: its content plus what it cost."""

    content: str | None
    input_tokens: int
    output_tokens: int
    requests: int
    latency_ms: float


class _TransportFailure(Exception):
    """The server could not be reached or kept failing after the client's retries."""

    def __init__(self, reason: str, requests: int, latency_ms: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.requests = requests
        self.latency_ms = latency_ms


class LLMClient:
    """One per asset materialization: answers requests, keeps the cache and the stats.

    Use as a context manager; `close()` releases the HTTP connection pool.
    """

    def __init__(self, settings: _Settings) -> None:
        self._s = settings
        self.model = settings.model
        self.stats = LLMStats(settings.model)
        self._cache_lock = _cache_lock(self._s.cache_database)
        self._warehouse = warehouse_resource(Path(self._s.cache_database))
        self._cache_ready = False
        self._local = threading.local()
        import openai

        self._http = openai.DefaultHttpxClient(event_hooks={"request": [self._count_request]})
        self._openai = openai.OpenAI(
            api_key=settings.api_key,
            base_url=settings.base_url or None,
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
            http_client=self._http,
        )
        # The URL the client really uses ("" resolves to OPENAI_BASE_URL or OpenAI's own).
        self.host = self._openai.base_url.netloc.decode()
        self._semaphore = _semaphore(str(self._openai.base_url), settings.max_concurrency)
        self._max_tokens_param = max_tokens_param(self._openai.base_url.host)

    def __repr__(self) -> str:
        return f"LLMClient(model={self.model!r}, host={self.host!r})"

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._openai.close()

    # --- public ---------------------------------------------------------------------------------

    def cache_key(self, request: LLMRequest) -> str:
        """sha256 of everything that shapes the answer; never the key or the server URL."""
        payload = {
            "model": self._s.model,
            "temperature": self._s.temperature,
            "max_output_tokens": self._s.max_output_tokens,
            "response_format": self._s.response_format,
            "schema": {"name": request.schema.__name__, "json": request.schema.model_json_schema()},
            "messages": request.messages,
        }
        return hashlib.sha256(_canonical(payload).encode()).hexdigest()

    def complete(self, request: LLMRequest) -> LLMAnswer:
        """The answer to one request: from the cache, the model, or the recorded fallback."""
        return self.complete_many([request])[0]

    def complete_many(self, requests: Sequence[LLMRequest]) -> list[LLMAnswer]:
        """Answers in request order; misses run in parallel, at most `max_concurrency` in flight.

        Cache hits are looked up in one query first, so replay_only fails before any call;
        identical requests in one batch are asked once.
        """
        keys = [self.cache_key(r) for r in requests]
        rows = self._lookup(keys)
        answers: dict[str, LLMAnswer] = {}
        cacheable: dict[str, bool] = {}
        for request, key in zip(requests, keys, strict=True):
            if key in rows and key not in answers:
                cacheable[key] = True
                answers[key] = self._from_row(request, key, rows[key])
        first: dict[str, LLMRequest] = {}
        for request, key in zip(requests, keys, strict=True):
            if key not in answers:
                first.setdefault(key, request)
        if first and self._s.cache_mode == "replay_only":
            key, request = next(iter(first.items()))
            raise LLMCacheMiss(
                f"replay_only: {len(first)} of {len(set(keys))} requests are not cached, e.g. "
                f"{request.purpose!r} (key {key}, model {self._s.model}); run once with "
                "cache_mode='read_write' to record them"
            )
        if first:
            workers = max(1, min(self._s.max_concurrency, len(first)))
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm")
            try:
                futures = {k: pool.submit(self._ask, r, k) for k, r in first.items()}
                for key, future in futures.items():
                    answers[key], cacheable[key] = future.result()
            finally:  # on a configuration error, do not send the queued requests
                pool.shutdown(wait=True, cancel_futures=True)
        out: list[LLMAnswer] = []
        seen: set[str] = set()
        for key in keys:
            answer = answers[key]
            if key in seen:  # a duplicate in this batch: answered once, no extra cost
                answer = replace(answer, cached=cacheable[key], calls=0, latency_ms=0.0)
                if not cacheable[key]:  # a transport fallback cost nothing the second time
                    answer = replace(answer, input_tokens=0, output_tokens=0, cost_usd=0.0)
            seen.add(key)
            self.stats.record(answer)
            out.append(answer)
        return out

    # --- answering ------------------------------------------------------------------------------

    def _ask(self, request: LLMRequest, key: str) -> tuple[LLMAnswer, bool]:
        """Ask the model (with one repair), write the result through; (answer, cacheable)."""
        tokens_in = tokens_out = requests = 0
        latency = 0.0
        messages = list(request.messages)
        problems: list[tuple[str, str]] = []
        value: pydantic.BaseModel | None = None
        transport = ""  # why the server could not answer: such fallbacks are never cached
        try:
            for attempt in range(2):
                call = self._chat(messages, request.schema)
                tokens_in += call.input_tokens
                tokens_out += call.output_tokens
                requests += call.requests
                latency += call.latency_ms
                value, kind, details = _validate(request.schema, call.content)
                if value is not None:
                    break
                problems.append((kind, details))
                if attempt == 0:
                    messages = [*messages, *self._repair_messages(call.content, kind, details)]
        except _TransportFailure as failure:
            requests += failure.requests
            latency += failure.latency_ms
            transport = f"repair call failed: {failure.reason}" if problems else failure.reason
        if transport:
            reason = transport
        elif value is None:
            (kind1, _), (kind2, details2) = problems
            label = f"{kind1} twice" if kind1 == kind2 else f"{kind1}, then {kind2}"
            reason = f"{label}: {details2}"
        else:
            reason = ""
        answer = LLMAnswer(
            value=value if value is not None else request.fallback,
            model=self._s.model,
            prompt_hash=key,
            cached=False,
            fallback=value is None,
            fallback_reason=reason[:_REASON_CHARS],
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=self._cost(tokens_in, tokens_out),
            latency_ms=round(latency, 3),
            calls=requests,
        )
        cacheable = not transport
        if cacheable:
            self._store(request, answer)
        return answer, cacheable

    @staticmethod
    def _repair_messages(content: str | None, kind: str, details: str) -> list[dict[str, str]]:
        return [
            {"role": "assistant", "content": content or ""},
            {
                "role": "user",
                "content": (
                    f"Your answer is not valid ({kind}): {details[:1500]}\n"
                    "Reply with only the corrected JSON object that matches the schema: "
                    "no prose, no code fences."
                ),
            },
        ]

    def _cost(self, tokens_in: int, tokens_out: int) -> float:
        return token_cost(
            tokens_in, tokens_out, self._s.input_usd_per_mtok, self._s.output_usd_per_mtok
        )

    def _count_request(self, _request: Any) -> None:
        """httpx event hook: counts every HTTP request of the calling thread, retries included."""
        self._local.requests = getattr(self._local, "requests", 0) + 1

    def _redact(self, text: str) -> str:
        key = self._s.api_key
        return text.replace(key, "***") if key else text

    def _chat(self, messages: list[dict[str, str]], schema: type[pydantic.BaseModel]) -> _Call:
        """One chat completion through the openai client (its retries, backoff and timeout)."""
        s = self._s
        kwargs: dict[str, Any] = {
            "model": s.model,
            "messages": messages,
            "temperature": s.temperature,
            "response_format": _response_format(schema, s.response_format),
        }
        kwargs[self._max_tokens_param] = s.max_output_tokens
        import openai

        self._local.requests = 0
        error: openai.OpenAIError | None = None
        with self._semaphore:
            started = time.perf_counter()
            try:
                completion = self._openai.chat.completions.create(**kwargs)
            except openai.OpenAIError as exc:
                error = exc
            latency_ms = (time.perf_counter() - started) * 1000
        if error is not None:
            # Classified outside the except block so no exception chain (whose server message
            # may quote the key) travels with what we raise.
            raise self._classify(error, latency_ms)
        usage = completion.usage
        content: str | None = None
        if completion.choices:
            message = completion.choices[0].message
            content = message.content
            if content is None and getattr(message, "refusal", None):
                content = f"REFUSAL: {message.refusal}"
        return _Call(
            content=content,
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            requests=self._local.requests,
            latency_ms=latency_ms,
        )

    def _classify(self, error: openai.OpenAIError, latency_ms: float) -> Exception:
        """The openai client's final error as a fallback reason or a configuration error."""
        import openai

        s = self._s
        host = self.host
        requests = self._local.requests
        retries = max(requests - 1, 0)
        if isinstance(error, openai.APITimeoutError):
            return _TransportFailure(
                f"timeout ({s.timeout_s:g}s) after {retries} retries", requests, latency_ms
            )
        if isinstance(error, openai.APIConnectionError):
            cause = type(error.__cause__ or error).__name__
            return _TransportFailure(
                f"connection error to {host} after {retries} retries: {cause}", requests, latency_ms
            )
        if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
            return LLMConfigError(
                f"{host} rejected the API key (HTTP {error.status_code}) for model {s.model}: "
                "set OPENAI_API_KEY (or LLMResource.api_key) to a valid key"
            )
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            if status in (408, 409, 429) or status >= 500:  # what the client retries
                return _TransportFailure(
                    f"HTTP {status} after {retries} retries", requests, latency_ms
                )
            return LLMConfigError(
                f"HTTP {status} from {host} for model {s.model} "
                f"(response_format={s.response_format}): {self._redact(error.message)[:500]}"
            )
        return LLMConfigError(f"openai client error: {self._redact(str(error))[:500]}")

    # --- cache ----------------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; DuckDBResource retries while another process holds the
        file lock (as the warehouse IO manager does)."""
        with self._warehouse.get_connection() as conn, closing(conn):
            if not self._cache_ready:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                conn.execute(
                    f"""CREATE TABLE IF NOT EXISTS {CACHE_TABLE} (
                        key VARCHAR PRIMARY KEY,
                        model VARCHAR,
                        purpose VARCHAR,
                        response_json VARCHAR,
                        fallback BOOLEAN,
                        fallback_reason VARCHAR,
                        input_tokens BIGINT,
                        output_tokens BIGINT,
                        cost_usd DOUBLE,
                        latency_ms DOUBLE,
                        created_at TIMESTAMP
                    )"""
                )
                self._cache_ready = True
            yield conn

    def _lookup(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        if self._s.cache_mode == "off" or not keys:
            return {}
        wanted = sorted(set(keys))
        with self._cache_lock, self._connection() as conn:
            cursor = conn.execute(
                f"SELECT key, response_json, fallback, fallback_reason, input_tokens, "
                f"output_tokens, cost_usd, latency_ms FROM {CACHE_TABLE} "
                f"WHERE key IN (SELECT unnest(?::VARCHAR[]))",
                [wanted],
            )
            names = [d[0] for d in cursor.description]
            return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}

    def _store(self, request: LLMRequest, answer: LLMAnswer) -> None:
        """Write-through, first writer wins: a crashed run keeps what it paid for."""
        if self._s.cache_mode != "read_write":
            return
        with self._cache_lock, self._connection() as conn:
            conn.execute(
                f"INSERT OR IGNORE INTO {CACHE_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    answer.prompt_hash,
                    answer.model,
                    request.purpose,
                    answer.value.model_dump_json(),
                    answer.fallback,
                    answer.fallback_reason,
                    answer.input_tokens,
                    answer.output_tokens,
                    answer.cost_usd,
                    answer.latency_ms,
                    datetime.now(UTC).replace(tzinfo=None),
                ],
            )

    def _from_row(self, request: LLMRequest, key: str, row: dict[str, Any]) -> LLMAnswer:
        fallback = bool(row["fallback"])
        cls = type(request.fallback) if fallback else request.schema
        try:
            value = cls.model_validate_json(row["response_json"])
        except pydantic.ValidationError:
            if not fallback:
                raise
            value = request.fallback  # the fallback's class changed; its content is ours anyway
        return LLMAnswer(
            value=value,
            model=self._s.model,
            prompt_hash=key,
            cached=True,
            fallback=fallback,
            fallback_reason=row["fallback_reason"] or "",
            input_tokens=int(row["input_tokens"] or 0),
            output_tokens=int(row["output_tokens"] or 0),
            cost_usd=float(row["cost_usd"] or 0.0),
            latency_ms=0.0,
            calls=0,
        )


class LLMResource(dg.ConfigurableResource):
    """Which model answers the agents, and how (see the module docstring for why).

    `provider="rules"` (the offline default) means no model: agents use their deterministic
    rules and `client()` refuses. `provider="openai"` is any OpenAI-compatible server.
    """

    provider: str = "rules"
    base_url: str = ""
    model: str = "gpt-4o-mini"
    api_key: str = ""
    temperature: float = 0.0
    max_output_tokens: int = 700
    timeout_s: float = 30.0
    max_retries: int = 3
    max_concurrency: int = 4
    input_usd_per_mtok: float = 0.15
    output_usd_per_mtok: float = 0.60
    cache_mode: str = "read_write"
    response_format: str = "json_schema"
    cache_database: str = ""

    def __repr__(self) -> str:
        return f"LLMResource({', '.join(f'{k}={v!r}' for k, v in self.describe().items())})"

    __str__ = __repr__

    @property
    def is_rules(self) -> bool:
        return self.provider.strip().lower() == "rules"

    def describe(self) -> dict[str, str]:
        """What metadata may show about the model: never the key."""
        if self.is_rules:
            return {"provider": "rules", "model": "rules", "base_url": "", "cache_mode": "off"}
        return {
            "provider": self.provider,
            "model": self.model,
            "base_url": _host(self.base_url or os.environ.get("OPENAI_BASE_URL", "")),
            "cache_mode": self.cache_mode,
        }

    def client(self) -> LLMClient:
        """A new client for one materialization; raises LLMConfigError if misconfigured."""
        if self.is_rules:
            raise LLMConfigError(
                "LLMResource(provider='rules') has no model: agents use their deterministic "
                "rules. To use a model set provider='openai', model=..., and either "
                "api_key=EnvVar('OPENAI_API_KEY') for OpenAI or base_url='http://host:port/v1' "
                "for an OpenAI-compatible server (vLLM, Ollama, llama.cpp)."
            )
        problems = []
        if self.provider.strip().lower() not in PROVIDERS:
            problems.append(f"provider must be one of {PROVIDERS}, not {self.provider!r}")
        if self.cache_mode not in CACHE_MODES:
            problems.append(f"cache_mode must be one of {CACHE_MODES}, not {self.cache_mode!r}")
        if self.response_format not in RESPONSE_FORMATS:
            problems.append(
                f"response_format must be one of {RESPONSE_FORMATS}, not {self.response_format!r}"
            )
        if self.max_concurrency < 1 or self.max_retries < 0 or self.timeout_s <= 0:
            problems.append("need max_concurrency >= 1, max_retries >= 0 and timeout_s > 0")
        if not self.model:
            problems.append("model is empty")
        if not self.api_key and not self.base_url:
            problems.append(
                "no API key for OpenAI: set the OPENAI_API_KEY environment variable "
                "(definitions pass EnvVar('OPENAI_API_KEY')), or set base_url to a local server"
            )
        if problems:
            raise LLMConfigError("LLMResource misconfigured: " + "; ".join(problems))
        cache_db = ""
        if self.cache_mode != "off":
            cache_db = self.cache_database or str(warehouse_path())
        return LLMClient(
            _Settings(
                model=self.model,
                base_url=self.base_url.rstrip("/"),
                api_key=self.api_key or "local",
                temperature=self.temperature,
                max_output_tokens=self.max_output_tokens,
                timeout_s=self.timeout_s,
                max_retries=self.max_retries,
                max_concurrency=self.max_concurrency,
                input_usd_per_mtok=self.input_usd_per_mtok,
                output_usd_per_mtok=self.output_usd_per_mtok,
                cache_mode=self.cache_mode,
                response_format=self.response_format,
                cache_database=cache_db,
            )
        )
