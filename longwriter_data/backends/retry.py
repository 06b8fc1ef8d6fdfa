"""Retrying a request the way providers ask: backoff with full jitter, Retry-After honoured, a bad key fatal.

It decides from the Failure a backend classified (base.py), never from a transport's exception types."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import FatalBackendError
from .base import BAD_ANSWER, FATAL_RUN, RATE_LIMITED, RETRYABLE, ChatRequest, Completion, Failure, RequestFailed

__all__ = ["RequestFailed", "RetryPolicy", "complete_with_retries"]


@dataclass
class RetryPolicy:
    max_retries: int = 6
    timeout_s: float = 600
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    # Retries of a request that got no HTTP answer while the endpoint has answered none yet in this build: a dead
    # address fails in seconds instead of a minute of backoff (see breaker.py).
    unanswered_retries: int = 2

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter (AWS's recipe) on an exponential cap; a server's Retry-After (up to 10 min) is a floor."""
        jitter = random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))
        return max(jitter, min(retry_after or 0.0, 600.0))


_RETRIED = (RETRYABLE, RATE_LIMITED, BAD_ANSWER)  # the others fail at once: asking again would get the same
Attempt = Callable[[ChatRequest], Awaitable[Completion]]


async def complete_with_retries(attempt_once: Attempt, request: ChatRequest, policy: RetryPolicy,
                                answered: Callable[[], bool] | None = None) -> Completion:
    """Send one request until it succeeds, with a hard per-attempt timeout that really cancels a hung request.
    `answered` says whether the endpoint has answered any request yet (see RetryPolicy.unanswered_retries)."""
    last: Failure | None = None
    timed_out = False  # the last attempt ran out of our own timeout (not the transport's): retried in full
    attempt = 0
    while True:
        if attempt:
            retries = policy.max_retries
            if answered is not None and last.status is None and not timed_out and not answered():
                retries = min(retries, policy.unanswered_retries)
            if attempt > retries:
                break
            await asyncio.sleep(policy.delay(attempt - 1, last.retry_after_s))
        attempt += 1
        try:
            async with asyncio.timeout(policy.timeout_s):
                return await attempt_once(request)
        except RequestFailed as exc:
            last, timed_out = exc.failure, False
        except TimeoutError:
            last = Failure(RETRYABLE, f"TimeoutError: no answer within request_timeout_s={policy.timeout_s:g}")
            timed_out = True
        if last.kind is FATAL_RUN:
            raise FatalBackendError(last.message) from None
        if last.kind not in _RETRIED:
            prefix = f"HTTP {last.status}: " if last.status is not None else ""
            raise RequestFailed(last, prefix + last.message) from None
    raise RequestFailed(last, f"gave up after {attempt} attempts: {last.message}")
