"""Retries: full-jitter exponential backoff, and what each kind of Failure gets (Retry-After itself is read by the
backend: test_backend.py)."""

from __future__ import annotations

from longwriter_data.backends.retry import RetryPolicy


def test_backoff_is_jittered_exponential_and_honours_retry_after():
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0)
    delays = [policy.delay(attempt, None) for attempt in range(6) for _ in range(50)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert max(delays[:50]) <= 1.0 and max(delays[-50:]) > 1.0  # the cap grows with the attempt
    assert all(policy.delay(0, 5.0) >= 5.0 for _ in range(20))  # Retry-After is a floor
    assert policy.delay(0, 10_000) == 600.0  # but an absurd one is capped
