"""Request budgets: AIMD concurrency and the token bucket."""

from __future__ import annotations

import asyncio

import pytest

from longwriter_data.backends.limits import AdaptiveConcurrency, TokenBucket


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
