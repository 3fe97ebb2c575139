"""Client-side rate limiting and retry with backoff, shared by the HTTP data providers.

Providers call third-party APIs with per-minute quotas (Finnhub's free tier: 60 calls/minute)
and transient failures (429, 5xx, dropped connections). Pacing our own calls avoids most 429s;
backoff absorbs the rest; whatever is still failing after the last attempt becomes a
`TransientProviderError`, which Dagster's RetryPolicy may re-run later.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from resources.errors import TransientProviderError

T = TypeVar("T")


class RateLimiter:
    """A thread-safe token bucket: at most `calls_per_minute` calls a minute, evenly paced.

    `capacity` is the burst size. It defaults to 1 (strict even spacing) because quotas such as
    Finnhub's are enforced over a rolling minute and additionally per second: a bucket that
    allowed a full minute's burst could spend up to twice the quota inside one rolling minute.
    Callers that wait reserve their token before sleeping, so concurrent callers queue fairly
    instead of all waking at once. `clock` and `sleep` are injectable so tests need not wait.
    """

    def __init__(
        self,
        calls_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
        *,
        capacity: int = 1,
    ) -> None:
        if calls_per_minute <= 0:
            raise ValueError(f"calls_per_minute must be positive, got {calls_per_minute}")
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.calls_per_minute = calls_per_minute
        self.capacity = capacity
        self._rate_per_s = calls_per_minute / 60.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(capacity)
        self._last = clock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is available; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._last)
            self._tokens = min(float(self.capacity), self._tokens + elapsed * self._rate_per_s)
            self._last = now
            # Reserve the token now (the balance may go negative) so the next caller's wait
            # accounts for this one; the sleep happens outside the lock.
            self._tokens -= 1.0
            wait = -self._tokens / self._rate_per_s if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


def retry_after_seconds(exc: BaseException) -> float | None:
    """The server's Retry-After hint carried by `exc`, in seconds, or None.

    Looks at an explicit `retry_after_s` attribute first, then at the `Retry-After` header of
    an attached `response` (requests' HTTPError, alpaca-py's APIError and finnhub-python's
    FinnhubAPIException all carry the requests Response). Accepts delta-seconds and HTTP-dates.
    """
    explicit = getattr(exc, "retry_after_s", None)
    if isinstance(explicit, int | float):
        return max(0.0, float(explicit))
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        raw = headers.get("Retry-After")
    except AttributeError:
        return None
    if raw is None:
        return None
    raw = str(raw).strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def call_with_backoff(
    fn: Callable[[], T],
    *,
    max_attempts: int,
    base_delay_s: float,
    max_delay_s: float,
    is_retryable: Callable[[BaseException], bool],
    sleep: Callable[[float], Any] = time.sleep,
    jitter: Callable[[], float] = random.random,
    what: str = "provider call",
) -> T:
    """Call `fn`, retrying retryable errors with capped exponential backoff and jitter.

    The delay before attempt k+1 is a random value in [d/2, d] with d = base * 2**(k-1) capped at
    `max_delay_s` ("equal jitter": concurrent clients spread out, yet each still waits long
    enough for a rate-limit window to move). A Retry-After hint on the exception replaces the
    computed delay (capped at `max_delay_s` so a step cannot stall for an hour; if that is too
    short the final TransientProviderError lets Dagster retry the step later).

    After `max_attempts` retryable failures a TransientProviderError chained to the last error
    is raised; non-retryable errors propagate unchanged on first sight.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    for attempt in range(1, max_attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            if attempt == max_attempts:
                raise TransientProviderError(
                    f"{what} still failing after {max_attempts} attempts: {exc}"
                ) from exc
            hint = retry_after_seconds(exc)
            if hint is not None:
                delay = min(hint, max_delay_s)
            else:
                ceiling = min(max_delay_s, base_delay_s * 2 ** (attempt - 1))
                delay = ceiling / 2 + jitter() * ceiling / 2
            if delay > 0:
                sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
