"""LLMResource over real HTTP: the openai client against a local OpenAI-compatible server.

Every test goes through the real client (its retries, backoff, timeouts and parsing), so what
is asserted here (request counts, fallbacks, cache rows) is what production does.
"""

import json
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from resources.llm import (
    CACHE_TABLE,
    LLMAnswer,
    LLMCacheMiss,
    LLMConfigError,
    LLMRequest,
    LLMResource,
    LLMStats,
    max_tokens_param,
)
from tests.fakes.openai_server import FakeOpenAIServer, bearer
from trading_assets.analysts.report import AnalystReport, Stance, neutral_report

KEY = f"test-openai-key-{uuid.uuid4().hex[:8]}"  # made per run, never a real key
BULLISH = {
    "stance": "bullish",
    "score": 0.6,
    "confidence": 0.7,
    "key_points": ["higher highs", "volume up"],
    "narrative": "Momentum is strong.",
}


def _request(ticker: str = "AAPL", minute: str = "10:31") -> LLMRequest:
    return LLMRequest(
        messages=[
            {"role": "system", "content": "You are a technical analyst. Answer in JSON."},
            {"role": "user", "content": f"TASK: assess {ticker} at 2026-03-23 {minute}"},
        ],
        schema=AnalystReport,
        fallback=neutral_report("LLM unavailable"),
        purpose=f"technical {ticker} 2026-03-23 {minute}",
    )


def _resource(server: FakeOpenAIServer, db: Path, **overrides: object) -> LLMResource:
    config: dict[str, object] = {
        "provider": "openai",
        "base_url": server.base_url,
        "model": "local-model",
        "api_key": KEY,
        "timeout_s": 5.0,
        "max_retries": 3,
        "cache_database": str(db),
    }
    config.update(overrides)
    return LLMResource(**config)  # type: ignore[arg-type]


@pytest.fixture
def server():
    # retry-after-ms: 1 keeps retry tests fast; the real default backoff has its own test.
    with FakeOpenAIServer(api_key=KEY, fixed=BULLISH, retry_after_ms=1) as srv:
        yield srv


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "llm_cache.duckdb"


def _cache_rows(db: Path) -> list[dict[str, object]]:
    with duckdb.connect(str(db)) as conn:
        cursor = conn.execute(f"SELECT * FROM {CACHE_TABLE} ORDER BY created_at")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# --- answers ----------------------------------------------------------------------------------


def test_valid_answer_over_http(server: FakeOpenAIServer, db: Path) -> None:
    with _resource(server, db).client() as client:
        answer = client.complete(_request())

    assert isinstance(answer.value, AnalystReport)
    assert answer.value.stance is Stance.BULLISH and answer.value.score == 0.6
    assert (answer.fallback, answer.cached, answer.calls) == (False, False, 1)
    assert answer.fallback_reason == ""
    assert answer.model == "local-model" and len(answer.prompt_hash) == 64
    assert answer.input_tokens > 0 and answer.output_tokens > 0
    expected_cost = (answer.input_tokens * 0.15 + answer.output_tokens * 0.60) / 1e6
    assert answer.cost_usd == pytest.approx(expected_cost)

    (body,) = server.chat_requests()
    assert body["model"] == "local-model" and body["temperature"] == 0.0
    assert body["max_tokens"] == 700  # compatible servers get max_tokens
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "AnalystReport"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(AnalystReport.model_fields)
    assert schema["properties"]["score"]["maximum"] == 1.0
    (chat,) = server.requests_to("/v1/chat/completions")
    assert bearer(chat) == f"Bearer {KEY}"


def test_default_answer_is_schema_valid_neutral(db: Path) -> None:
    with FakeOpenAIServer() as srv, _resource(srv, db, api_key="").client() as client:
        answer = client.complete(_request())
        assert not answer.fallback and answer.value.stance is Stance.NEUTRAL
        (chat,) = srv.requests_to("/v1/chat/completions")
        assert bearer(chat) == "Bearer local"  # empty key + base_url


def test_fenced_json_is_accepted(db: Path) -> None:
    fenced = f"```json\n{json.dumps(BULLISH)}\n```"
    with (
        FakeOpenAIServer(answer=lambda _body: fenced) as srv,
        _resource(srv, db, api_key="").client() as client,
    ):
        answer = client.complete(_request())
    assert not answer.fallback and answer.calls == 1 and answer.value.score == 0.6


def test_json_object_mode_for_servers_without_schema_support(server, db) -> None:
    with _resource(server, db, response_format="json_object").client() as client:
        answer = client.complete(_request())
    assert not answer.fallback
    assert server.chat_requests()[0]["response_format"] == {"type": "json_object"}


def test_invalid_json_then_repaired(server: FakeOpenAIServer, db: Path) -> None:
    server.script("invalid_json")
    with _resource(server, db).client() as client:
        answer = client.complete(_request())

    assert not answer.fallback and answer.value.score == 0.6
    assert answer.calls == 2 and server.chat_count == 2
    first, repair = server.chat_requests()
    assert len(repair["messages"]) == len(first["messages"]) + 2
    bad, instruction = repair["messages"][-2:]
    assert bad["role"] == "assistant" and "score" in bad["content"]
    assert instruction["role"] == "user" and "invalid JSON" in instruction["content"]
    assert "only the corrected JSON" in instruction["content"]


def test_invalid_twice_falls_back_with_reason_and_is_cached(server, db) -> None:
    server.script("invalid_json", "invalid_json")
    resource = _resource(server, db)
    with resource.client() as client:
        answer = client.complete(_request())
        meta = client.stats.as_metadata()

    assert answer.fallback and answer.value == neutral_report("LLM unavailable")
    assert answer.fallback_reason.startswith("invalid JSON twice: ")
    assert answer.calls == 2 and answer.input_tokens > 0
    assert meta["llm_fallbacks"] == 1 and meta["llm_fallback_rate"] == 1.0
    assert "invalid JSON twice" in str(meta["llm_fallback_reasons"])
    (row,) = _cache_rows(db)
    assert row["fallback"] is True and row["fallback_reason"] == answer.fallback_reason

    with resource.client() as client:  # a validation fallback is an answer: cached
        again = client.complete(_request())
    assert (again.cached, again.calls, again.fallback) == (True, 0, True)
    assert again.value == answer.value and again.fallback_reason == answer.fallback_reason
    assert server.chat_count == 2


def test_out_of_range_is_repaired(server: FakeOpenAIServer, db: Path) -> None:
    server.script("out_of_range")
    with _resource(server, db).client() as client:
        answer = client.complete(_request())
    assert not answer.fallback and answer.calls == 2 and answer.value.score == 0.6
    repair_text = server.chat_requests()[1]["messages"][-1]["content"]
    assert "schema violation" in repair_text and "score" in repair_text
    assert '"score": 3.0' in server.chat_requests()[1]["messages"][-2]["content"]


def test_out_of_range_twice_falls_back(server: FakeOpenAIServer, db: Path) -> None:
    server.script("out_of_range", "out_of_range")
    with _resource(server, db).client() as client:
        answer = client.complete(_request())
    assert answer.fallback and answer.value.stance is Stance.NEUTRAL
    assert answer.fallback_reason.startswith("schema violation twice: score")


def test_invalid_then_out_of_range_names_both(server: FakeOpenAIServer, db: Path) -> None:
    server.script("invalid_json", "out_of_range")
    with _resource(server, db).client() as client:
        answer = client.complete(_request())
    assert answer.fallback_reason.startswith("invalid JSON, then schema violation: ")


# --- transport ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retryable_status_is_retried_by_the_client(server, db, status: int) -> None:
    server.script(status, status)
    with _resource(server, db).client() as client:
        answer = client.complete(_request())
    assert not answer.fallback and answer.value.score == 0.6
    assert server.chat_count == 3 and answer.calls == 3  # 2 failures + 1 success


def test_429_with_retry_after_zero_uses_the_clients_backoff(db: Path) -> None:
    """The openai client honours only Retry-After > 0; `0` means its own 0.5 s (-25%) backoff."""
    with FakeOpenAIServer(fixed=BULLISH) as srv, _resource(srv, db).client() as client:
        srv.script(429)
        started = time.perf_counter()
        answer = client.complete(_request())
        elapsed = time.perf_counter() - started
        assert srv.chat_count == 2 and answer.calls == 2 and not answer.fallback
    assert elapsed >= 0.37  # a lower bound the client guarantees, not a timing benchmark


def test_persistent_500_falls_back_and_is_not_cached(server, db) -> None:
    server.script(*[500] * 3)
    resource = _resource(server, db, max_retries=2)
    with resource.client() as client:
        answer = client.complete(_request())
        meta = client.stats.as_metadata()
    assert answer.fallback and answer.fallback_reason == "HTTP 500 after 2 retries"
    assert answer.calls == 3 and server.chat_count == 3
    assert meta["llm_calls"] == 3 and meta["llm_fallbacks"] == 1
    assert _cache_rows(db) == []

    with resource.client() as client:  # the next run asks again, and succeeds
        again = client.complete(_request())
    assert not again.fallback and not again.cached and server.chat_count == 4
    assert len(_cache_rows(db)) == 1


def test_500_on_the_repair_call_is_a_transport_fallback(server, db) -> None:
    server.script("invalid_json", 500, 500)
    with _resource(server, db, max_retries=1).client() as client:
        answer = client.complete(_request())
    assert answer.fallback and answer.calls == 3
    assert answer.fallback_reason == "repair call failed: HTTP 500 after 1 retries"
    assert _cache_rows(db) == []


def test_timeout_is_retried_then_falls_back(server, db) -> None:
    server.script("timeout", "timeout")
    with _resource(server, db, timeout_s=0.5, max_retries=1).client() as client:
        answer = client.complete(_request())
    assert answer.fallback and answer.fallback_reason == "timeout (0.5s) after 1 retries"
    assert server.chat_count == 2 and answer.calls == 2
    assert answer.latency_ms >= 1000  # two 0.5 s timeouts
    assert _cache_rows(db) == []


def test_timeout_then_success(server, db) -> None:
    server.script("timeout")
    with _resource(server, db, timeout_s=0.5, max_retries=1).client() as client:
        answer = client.complete(_request())
    assert not answer.fallback and answer.calls == 2


def test_connection_refused_is_a_fallback(db: Path) -> None:
    with FakeOpenAIServer() as srv:
        url = srv.base_url  # a port nobody listens on once the server stops
    resource = LLMResource(provider="openai", base_url=url, timeout_s=1, max_retries=0)
    with resource.model_copy(update={"cache_database": str(db)}).client() as client:
        answer = client.complete(_request())
    assert answer.fallback and answer.fallback_reason.startswith("connection error to 127.0.0.1")


def test_401_raises_and_never_shows_the_key(db: Path) -> None:
    wrong = f"wrong-openai-key-{uuid.uuid4().hex[:8]}"
    with FakeOpenAIServer(api_key=KEY) as srv:
        with (
            _resource(srv, db, api_key=wrong).client() as client,
            pytest.raises(LLMConfigError) as info,
        ):
            client.complete(_request())
        assert srv.chat_count == 1  # 401 is not retried
        assert wrong in json.dumps(srv.requests[0].headers)  # it really was sent...
    text = f"{info.value!s} {info.value!r} {info.value.__cause__!r} {info.value.__context__!r}"
    assert "HTTP 401" in str(info.value) and "OPENAI_API_KEY" in str(info.value)
    assert wrong not in text  # ...and is never repeated


def test_scripted_401_raises(server, db) -> None:
    server.script(401)
    with _resource(server, db).client() as client, pytest.raises(LLMConfigError, match="401"):
        client.complete(_request())


def test_bad_request_is_a_config_error_not_a_fallback(server, db) -> None:
    server.script(400)
    with _resource(server, db).client() as client, pytest.raises(LLMConfigError, match="HTTP 400"):
        client.complete(_request())
    assert server.chat_count == 1 and _cache_rows(db) == []


# --- cache ----------------------------------------------------------------------------------------


def _answers(server: FakeOpenAIServer, db: Path, **overrides: object) -> list[LLMAnswer]:
    with _resource(server, db, **overrides).client() as client:
        return client.complete_many([_request(t) for t in ("AAPL", "MSFT", "NVDA")])


def test_second_run_makes_zero_calls_and_identical_rows(server, db) -> None:
    first = _answers(server, db)
    assert server.chat_count == 3 and not any(a.cached for a in first)
    rows_before = _cache_rows(db)
    assert len(rows_before) == 3
    assert {r["purpose"] for r in rows_before} == {
        f"technical {t} 2026-03-23 10:31" for t in ("AAPL", "MSFT", "NVDA")
    }

    with _resource(server, db).client() as client:
        second = client.complete_many([_request(t) for t in ("AAPL", "MSFT", "NVDA")])
        meta = client.stats.as_metadata()
    assert server.chat_count == 3  # zero new calls
    assert [a.value for a in second] == [a.value for a in first]
    assert [a.prompt_hash for a in second] == [a.prompt_hash for a in first]
    assert all(a.cached and a.calls == 0 for a in second)
    assert [a.input_tokens for a in second] == [a.input_tokens for a in first]
    assert meta["llm_calls"] == 0 and meta["llm_cache_hits"] == 3
    assert meta["llm_cost_usd"] == 0.0
    assert meta["llm_cached_cost_usd"] == pytest.approx(sum(a.cost_usd for a in first), abs=1e-6)
    assert meta["llm_latency_p50_ms"] == 0.0
    assert _cache_rows(db) == rows_before


def test_cache_key_covers_model_and_parameters(server, db) -> None:
    base = _resource(server, db).client()
    keys = {base.cache_key(_request())}
    for change in ({"model": "other"}, {"temperature": 0.2}, {"max_output_tokens": 10}):
        with _resource(server, db, **change).client() as client:
            keys.add(client.cache_key(_request()))
    keys.add(base.cache_key(_request(minute="10:32")))
    with _resource(server, db, api_key="another-key").client() as client:
        same = client.cache_key(_request())
    base.close()
    assert len(keys) == 5 and same in keys  # the key is not part of the cache key


def test_replay_only_raises_on_miss_and_serves_hits(server, db) -> None:
    with (
        _resource(server, db, cache_mode="replay_only").client() as client,
        pytest.raises(LLMCacheMiss) as info,
    ):
        client.complete(_request())
    assert "technical AAPL 2026-03-23 10:31" in str(info.value)
    assert client.cache_key(_request()) in str(info.value)
    assert server.chat_count == 0

    recorded = _answers(server, db)
    with _resource(server, db, cache_mode="replay_only").client() as client:
        replayed = client.complete_many([_request(t) for t in ("AAPL", "MSFT", "NVDA")])
        with pytest.raises(LLMCacheMiss):  # one miss in a batch fails before any call
            client.complete_many([_request("AAPL"), _request("TSLA")])
    assert [a.value for a in replayed] == [a.value for a in recorded]
    assert server.chat_count == 3


def test_cache_off_always_calls_and_writes_nothing(server, db) -> None:
    _answers(server, db, cache_mode="off")
    _answers(server, db, cache_mode="off")
    assert server.chat_count == 6 and not db.exists()


def test_duplicates_in_a_batch_are_asked_once(server, db) -> None:
    with _resource(server, db).client() as client:
        answers = client.complete_many([_request(), _request(), _request("MSFT")])
        meta = client.stats.as_metadata()
    assert server.chat_count == 2 and len(_cache_rows(db)) == 2
    assert answers[0].value == answers[1].value and answers[1].calls == 0
    assert (answers[0].cached, answers[1].cached) == (False, True)
    assert meta["llm_calls"] == 2 and meta["llm_cache_hits"] == 1
    expected = answers[0].cost_usd + answers[2].cost_usd
    assert meta["llm_cost_usd"] == pytest.approx(expected, abs=1e-6)  # rounded to 6 places


def test_duplicate_transport_fallback_costs_nothing_twice(server, db) -> None:
    server.script(500)
    with _resource(server, db, max_retries=0).client() as client:
        first, second = client.complete_many([_request(), _request()])
        meta = client.stats.as_metadata()
    assert first.fallback and second.fallback and server.chat_count == 1
    assert (second.cached, second.calls, second.cost_usd) == (False, 0, 0.0)
    assert meta["llm_calls"] == 1 and meta["llm_fallbacks"] == 2


# --- concurrency ------------------------------------------------------------------------------


def test_concurrency_limit_is_respected(db: Path) -> None:
    with FakeOpenAIServer(fixed=BULLISH, delay_s=0.1) as srv:
        resource = _resource(srv, db, max_concurrency=2)
        with resource.client() as client:
            requests = [_request(t) for t in "ABCDEFGH"]
            answers = client.complete_many(requests)
            assert [a.prompt_hash for a in answers] == [client.cache_key(r) for r in requests]
        assert srv.chat_count == 8 and srv.max_in_flight == 2

        # Two clients in parallel threads share the per-server limit.
        srv.max_in_flight = 0
        results: list[list[LLMAnswer]] = []

        def run(tickers: str) -> None:
            with resource.client() as client:
                results.append(client.complete_many([_request(t, "11:00") for t in tickers]))

        threads = [threading.Thread(target=run, args=(t,)) for t in ("IJKL", "MNOP")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert srv.chat_count == 16 and srv.max_in_flight <= 2
        assert sum(len(r) for r in results) == 8


def test_stats_accounting() -> None:
    stats = LLMStats("m")
    for i, latency in enumerate([10.0, 20.0, 30.0, 40.0, 1000.0]):
        stats.record(
            LLMAnswer(
                value=neutral_report("x"),
                model="m",
                prompt_hash=f"{i:064x}",
                cached=False,
                fallback=i == 4,
                fallback_reason="timeout" if i == 4 else "",
                input_tokens=100,
                output_tokens=10,
                cost_usd=0.001,
                latency_ms=latency,
                calls=1,
            )
        )
    meta = stats.as_metadata()
    assert meta["llm_requests"] == 5 and meta["llm_calls"] == 5
    assert meta["llm_input_tokens"] == 500 and meta["llm_output_tokens"] == 50
    assert meta["llm_latency_p50_ms"] == 30.0
    assert meta["llm_latency_p95_ms"] == pytest.approx(40 + 0.8 * 960, abs=0.1)
    assert meta["llm_fallbacks"] == 1 and meta["llm_fallback_rate"] == 0.2
    assert meta["llm_cost_usd"] == pytest.approx(0.005)
    assert all(isinstance(v, int | float | str) for v in meta.values())


# --- secrets and configuration ----------------------------------------------------------------


def test_key_never_appears_in_outputs(server, db) -> None:
    server.script("invalid_json", "invalid_json", 500, 500, 500, 500)
    resource = _resource(server, db, max_retries=3)
    with resource.client() as client:
        answers = [client.complete(_request(t)) for t in ("AAPL", "MSFT", "NVDA")]
        meta = client.stats.as_metadata()
        client_repr = repr(client)
    with pytest.raises(LLMCacheMiss) as miss:
        _resource(server, db, cache_mode="replay_only").client().complete(_request("TSLA"))
    blobs = [
        json.dumps(meta),
        json.dumps(resource.describe()),
        repr(resource),
        str(resource),
        client_repr,
        str(miss.value),
        *(repr(a) for a in answers),
        json.dumps(_cache_rows(db), default=str),
    ]
    assert [a.fallback for a in answers] == [True, True, False]
    for blob in blobs:
        assert KEY not in blob
    assert resource.describe() == {
        "provider": "openai",
        "model": "local-model",
        "base_url": server.url.removeprefix("http://"),
        "cache_mode": "read_write",
    }


def test_rules_provider_has_no_client() -> None:
    resource = LLMResource()
    assert resource.is_rules
    with pytest.raises(LLMConfigError, match="provider='openai'") as info:
        resource.client()
    assert "OPENAI_API_KEY" in str(info.value) and "base_url" in str(info.value)
    assert resource.describe()["provider"] == "rules"


def test_openai_without_key_or_base_url_is_a_config_error(db: Path) -> None:
    with pytest.raises(LLMConfigError, match="OPENAI_API_KEY"):
        LLMResource(provider="openai", cache_database=str(db)).client()
    with pytest.raises(LLMConfigError, match="cache_mode"):
        LLMResource(provider="openai", api_key="k", cache_mode="sometimes").client()


def test_openai_default_endpoint_uses_max_completion_tokens(db: Path) -> None:
    """No base_url means OpenAI itself, which wants max_completion_tokens (checked offline)."""
    with LLMResource(provider="openai", api_key=KEY, cache_database=str(db)).client() as client:
        assert client.host == "api.openai.com" and KEY not in repr(client)
    assert max_tokens_param("api.openai.com") == "max_completion_tokens"
    assert max_tokens_param("127.0.0.1") == "max_tokens"


def test_empty_base_url_follows_openai_base_url_env(server, db, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    resource = LLMResource(provider="openai", api_key=KEY, cache_database=str(db))
    with resource.client() as client:
        answer = client.complete(_request())
    assert not answer.fallback and server.chat_count == 1
    assert resource.describe()["base_url"] == server.url.removeprefix("http://")


# --- inside Dagster ---------------------------------------------------------------------------


def test_asset_metadata_with_env_var_key(server, db, monkeypatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)

    @dg.asset
    def technical_probe(context: dg.AssetExecutionContext, llm: LLMResource) -> None:
        with llm.client() as client:
            answers = client.complete_many([_request(t) for t in ("AAPL", "MSFT")])
            context.add_output_metadata({**client.stats.as_metadata(), **llm.describe()})
        assert all(not a.fallback for a in answers)

    resource = LLMResource(
        provider="openai",
        base_url=server.base_url,
        model="local-model",
        api_key=dg.EnvVar("TEST_LLM_KEY"),
        cache_database=str(db),
    )
    for expected_calls in (2, 0):
        result = dg.materialize([technical_probe], resources={"llm": resource})
        assert result.success
        (mat,) = result.asset_materializations_for_node("technical_probe")
        meta = {k: v.value for k, v in mat.metadata.items()}
        assert meta["llm_calls"] == expected_calls and meta["llm_requests"] == 2
        assert KEY not in json.dumps(meta, default=str)
    assert server.chat_count == 2
    assert bearer(server.requests[0]) == f"Bearer {KEY}"


def test_config_error_in_a_batch_stops_queued_requests(db: Path) -> None:
    with FakeOpenAIServer(api_key=KEY) as srv:
        resource = _resource(srv, db, api_key="wrong", max_concurrency=1)
        with resource.client() as client, pytest.raises(LLMConfigError, match="401"):
            client.complete_many([_request(t) for t in "ABCDEF"])
        assert srv.chat_count <= 2  # the rest were cancelled, not sent
