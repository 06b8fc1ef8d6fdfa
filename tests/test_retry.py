"""Retries: full-jitter exponential backoff, and what each kind of Failure gets (Retry-After itself is read by the
backend: test_backend.py)."""

from __future__ import annotations

import asyncio

import pytest

from longwriter_data.backends.base import (BAD_ANSWER, FATAL_ENDPOINT, FATAL_RUN, RATE_LIMITED, REFUSED, RETRYABLE,
                                           ChatRequest, Failure, RequestFailed)
from longwriter_data.backends.dummy import DummyBackend
from longwriter_data.backends.retry import RetryPolicy, complete_with_retries
from longwriter_data.errors import FatalBackendError


def test_backoff_is_jittered_exponential_and_honours_retry_after():
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0)
    delays = [policy.delay(attempt, None) for attempt in range(6) for _ in range(50)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert max(delays[:50]) <= 1.0 and max(delays[-50:]) > 1.0  # the cap grows with the attempt
    assert all(policy.delay(0, 5.0) >= 5.0 for _ in range(20))  # Retry-After is a floor
    assert policy.delay(0, 10_000) == 600.0  # but an absurd one is capped


def _outcome(script: list, policy: RetryPolicy, answered: bool | None = None) -> tuple[str, int]:
    """Send one request to a backend answering from `script` (a Failure or text per attempt): what came of it,
    and how many attempts it took."""
    answers = iter(script)
    backend = DummyBackend(lambda request: next(answers))

    async def send() -> str:
        try:
            completion = await complete_with_retries(backend.send, ChatRequest("m", "p", 8, 0.0), policy,
                                                     None if answered is None else (lambda: answered))
        except RequestFailed as exc:
            return f"RequestFailed: {exc}"
        except FatalBackendError as exc:
            return f"FatalBackendError: {exc}"
        return completion.text

    return asyncio.run(send()), len(backend.requests)


FAST = RetryPolicy(max_retries=3, base_delay_s=0.001, max_delay_s=0.002)
DOWN = Failure(RETRYABLE, "APIConnectionError: Connection error")


@pytest.mark.parametrize("script, expected, attempts", [
    ([Failure(RETRYABLE, "boom", 500), DOWN, "fine"], "fine", 3),
    ([Failure(RATE_LIMITED, "slow down", 429, retry_after_s=0.001), "fine"], "fine", 2),
    ([Failure(BAD_ANSWER, "unreadable"), "fine"], "fine", 2),  # the next answer may be fine
    ([Failure(REFUSED, "too large", 413), "fine"], "RequestFailed: HTTP 413: too large", 1),
    ([Failure(FATAL_ENDPOINT, "no such model", 404, "model_not_found"), "fine"],
     "RequestFailed: HTTP 404: no such model", 1),
    ([Failure(FATAL_RUN, "the backend rejected the API key (401)", 401), "fine"],
     "FatalBackendError: the backend rejected the API key (401)", 1),
    ([Failure(RETRYABLE, "boom", 503)] * 4, "RequestFailed: gave up after 4 attempts: boom", 4),
])
def test_each_kind_of_failure_is_retried_or_not_as_it_says(script, expected, attempts):
    assert _outcome(script, FAST) == (expected, attempts)


@pytest.mark.parametrize("failure, answered, attempts", [
    (DOWN, False, 3),  # no HTTP answer from an endpoint that never answered: unanswered_retries
    (DOWN, True, 4),
    (Failure(RETRYABLE, "boom", 500), False, 4),  # an HTTP answer: the endpoint is there
])
def test_a_request_without_an_answer_is_given_up_on_quickly_until_the_endpoint_has_answered(failure, answered,
                                                                                           attempts):
    result, made = _outcome([failure] * 10, FAST, answered)
    assert (made, result.startswith(f"RequestFailed: gave up after {attempts} attempts")) == (attempts, True)
