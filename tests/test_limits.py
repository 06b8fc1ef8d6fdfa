"""Request budgets: AIMD concurrency and the token bucket."""

from __future__ import annotations

import asyncio

import pytest

from longwriter_data.backends.base import RATE_LIMITED, REFUSED, RETRYABLE, ChatRequest, Failure, RequestFailed
from longwriter_data.backends.dummy import DummyBackend
from longwriter_data.backends.limits import AdaptiveConcurrency, Limits, TokenBucket
from longwriter_data.config import EngineConfig


def test_aimd_halves_on_throttling_grows_back_and_never_exceeds_the_ceiling():
    limiter = AdaptiveConcurrency(ceiling=64)
    limiter.throttled()
    assert limiter.current == 32
    limiter.throttled()  # the same burst (within one round trip): no second cut
    assert limiter.current == 32
    for _ in range(32 * 10):
        limiter.succeeded(0.01)
    assert 32 < limiter.current <= 64
    for _ in range(10_000):
        limiter.succeeded(0.01)
    assert limiter.current == 64


def test_aimd_holds_waiters_until_the_limit_allows():
    async def scenario() -> list[int]:
        limiter = AdaptiveConcurrency(ceiling=2)
        peak, in_flight = [], 0

        async def request() -> None:
            nonlocal in_flight
            await limiter.acquire()
            in_flight += 1
            peak.append(in_flight)
            await asyncio.sleep(0)
            in_flight -= 1
            limiter.release()

        await asyncio.gather(*(request() for _ in range(20)))
        return peak

    assert max(asyncio.run(scenario())) == 2


def test_token_bucket_reserves_then_settles_with_real_usage():
    async def scenario() -> tuple[float, float]:
        bucket = TokenBucket(per_minute=6000)
        reserved = await bucket.reserve(5000)
        after_reserve = bucket.tokens
        bucket.settle(reserved, used=1000)  # 4000 unused come back
        return after_reserve, bucket.tokens

    after_reserve, after_settle = asyncio.run(scenario())
    assert after_reserve == pytest.approx(1000, abs=5)
    assert after_settle == pytest.approx(5000, abs=5)


@pytest.mark.parametrize("failure, limit, tokens_back", [
    (Failure(RATE_LIMITED, "slow down", 429), 4, False),  # fewer in flight; the provider counted the tokens
    (Failure(REFUSED, "too large", 413), 8, True),  # nothing was generated: the reservation comes back
    (Failure(RETRYABLE, "APIConnectionError: Connection error"), 8, True),
])
def test_a_failed_attempt_cuts_concurrency_only_when_rate_limited(failure, limit, tokens_back):
    async def scenario() -> tuple[int, float]:
        limits = Limits(EngineConfig(max_jobs=8, tokens_per_minute=60_000))
        backend = DummyBackend(lambda request: failure)
        with pytest.raises(RequestFailed):
            await limits.call(backend.send, ChatRequest("m", "p" * 400, 10_000, 0.0))
        return limits.concurrency.current, limits.tokens.tokens

    current, tokens = asyncio.run(scenario())
    assert current == limit
    assert (tokens == pytest.approx(60_000, abs=50)) is tokens_back
