"""Retries: Retry-After read from the server's headers, full-jitter exponential backoff."""

from __future__ import annotations

import httpx2
import openai
import pytest

from longwriter_data.backends.retry import RetryPolicy, retry_after_s


def _rate_limit_error(headers: dict) -> openai.RateLimitError:
    request = httpx2.Request("POST", "http://x/v1/chat/completions")
    response = httpx2.Response(429, headers=headers, request=request)
    return openai.RateLimitError("slow down", response=response, body=None)


@pytest.mark.parametrize(
    "headers, expected",
    [({"retry-after-ms": "250"}, 0.25), ({"Retry-After": "3"}, 3.0), ({}, None), ({"Retry-After": "soon"}, None)],
)
def test_retry_after_headers_are_read(headers, expected):
    assert retry_after_s(_rate_limit_error(headers)) == expected


def test_backoff_is_jittered_exponential_and_honours_retry_after():
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0)
    delays = [policy.delay(attempt, None) for attempt in range(6) for _ in range(50)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert max(delays[:50]) <= 1.0 and max(delays[-50:]) > 1.0  # the cap grows with the attempt
    assert all(policy.delay(0, 5.0) >= 5.0 for _ in range(20))  # Retry-After is a floor
    assert policy.delay(0, 10_000) == 600.0  # but an absurd one is capped
