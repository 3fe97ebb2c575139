"""RateLimiter pacing and call_with_backoff retry semantics, on a fake clock (no real waiting)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import pytest

from resources.errors import TransientProviderError
from resources.rate_limit import RateLimiter, call_with_backoff, retry_after_seconds


class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky(Exception):
    """A retryable failure, optionally carrying a response with headers."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        super().__init__("flaky")
        if headers is not None:
            self.response = SimpleNamespace(headers=headers)


class Fatal(Exception):
    pass


def failing(times: int, exc_factory=Flaky, result: str = "ok"):
    """A callable that raises `times` times, then returns `result`; counts its calls."""
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc_factory()
        return result

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def is_flaky(exc: BaseException) -> bool:
    return isinstance(exc, Flaky)


# --- RateLimiter ----------------------------------------------------------------------------------


def test_limiter_spaces_calls_evenly_at_the_quota() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire() for _ in range(5)]
    assert waits == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert clock.now - 100.0 == pytest.approx(4.0)


def test_limiter_does_not_bank_more_than_capacity_while_idle() -> None:
    clock = FakeClock()
    limiter = RateLimiter(30, clock=clock, sleep=clock.sleep, capacity=3)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire() == pytest.approx(2.0)  # 30/min = one token per 2 s
    clock.now += 3600  # a long idle period refills only up to capacity
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire() == pytest.approx(2.0)


def test_limiter_reserves_tokens_atomically_across_threads() -> None:
    # A frozen clock and a no-op sleep: each caller's wait reveals its place in the queue, so
    # lost or duplicated reservations would show up as repeated or missing waits.
    limiter = RateLimiter(60, clock=lambda: 0.0, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(40)

    def worker() -> None:
        barrier.wait()
        wait = limiter.acquire()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == pytest.approx([float(i) for i in range(40)])


@pytest.mark.parametrize(
    "kwargs", [{"calls_per_minute": 0}, {"calls_per_minute": 5, "capacity": 0}]
)
def test_limiter_rejects_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        RateLimiter(**kwargs)


# --- call_with_backoff ----------------------------------------------------------------------------


def test_backoff_doubles_and_caps_the_delay() -> None:
    clock = FakeClock()
    fn = failing(4)
    result = call_with_backoff(
        fn,
        max_attempts=5,
        base_delay_s=1.0,
        max_delay_s=3.0,
        is_retryable=is_flaky,
        sleep=clock.sleep,
        jitter=lambda: 1.0,
    )
    assert result == "ok"
    assert fn.calls["n"] == 5
    assert clock.sleeps == [1.0, 2.0, 3.0, 3.0]


def test_jitter_keeps_each_delay_between_half_and_full_step() -> None:
    low, high = FakeClock(), FakeClock()
    for clock, jitter in ((low, 0.0), (high, 0.999999)):
        call_with_backoff(
            failing(3),
            max_attempts=4,
            base_delay_s=2.0,
            max_delay_s=60.0,
            is_retryable=is_flaky,
            sleep=clock.sleep,
            jitter=lambda j=jitter: j,
        )
    assert low.sleeps == [1.0, 2.0, 4.0]
    assert high.sleeps == pytest.approx([2.0, 4.0, 8.0], rel=1e-5)


def test_retry_after_header_replaces_the_computed_delay() -> None:
    clock = FakeClock()
    call_with_backoff(
        failing(2, lambda: Flaky({"Retry-After": "7"})),
        max_attempts=3,
        base_delay_s=1.0,
        max_delay_s=30.0,
        is_retryable=is_flaky,
        sleep=clock.sleep,
    )
    assert clock.sleeps == [7.0, 7.0]


def test_retry_after_zero_means_retry_at_once_and_huge_hints_are_capped() -> None:
    clock = FakeClock()
    call_with_backoff(
        failing(1, lambda: Flaky({"Retry-After": "0"})),
        max_attempts=2,
        base_delay_s=5.0,
        max_delay_s=30.0,
        is_retryable=is_flaky,
        sleep=clock.sleep,
    )
    assert clock.sleeps == []  # zero delay: no sleep call at all
    call_with_backoff(
        failing(1, lambda: Flaky({"Retry-After": "3600"})),
        max_attempts=2,
        base_delay_s=5.0,
        max_delay_s=30.0,
        is_retryable=is_flaky,
        sleep=clock.sleep,
    )
    assert clock.sleeps == [30.0]


def test_retry_after_parses_http_dates_and_explicit_attributes() -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    hinted = Flaky({"Retry-After": format_datetime(when, usegmt=True)})
    assert 100 < (retry_after_seconds(hinted) or 0) <= 120
    explicit = Flaky()
    explicit.retry_after_s = 4  # type: ignore[attr-defined]
    assert retry_after_seconds(explicit) == 4.0
    assert retry_after_seconds(Flaky({"Retry-After": "soon"})) is None
    assert retry_after_seconds(Flaky()) is None


def test_exhausted_retries_raise_transient_error_chained_to_the_last_failure() -> None:
    clock = FakeClock()
    fn = failing(99)
    with pytest.raises(TransientProviderError, match="after 3 attempts") as info:
        call_with_backoff(
            fn,
            max_attempts=3,
            base_delay_s=0.5,
            max_delay_s=5.0,
            is_retryable=is_flaky,
            sleep=clock.sleep,
            what="test call",
        )
    assert isinstance(info.value.__cause__, Flaky)
    assert "test call" in str(info.value)
    assert fn.calls["n"] == 3
    assert len(clock.sleeps) == 2  # no pointless sleep after the last attempt


def test_non_retryable_errors_propagate_unchanged_without_retry() -> None:
    clock = FakeClock()
    fn = failing(1, Fatal)
    with pytest.raises(Fatal):
        call_with_backoff(
            fn,
            max_attempts=5,
            base_delay_s=1.0,
            max_delay_s=5.0,
            is_retryable=is_flaky,
            sleep=clock.sleep,
        )
    assert fn.calls["n"] == 1
    assert clock.sleeps == []


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        call_with_backoff(
            lambda: None, max_attempts=0, base_delay_s=1, max_delay_s=1, is_retryable=is_flaky
        )
