"""Retrying a request the way providers ask: backoff with full jitter, Retry-After honoured, auth errors fatal."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import openai

from collections.abc import Awaitable, Callable

from .openai_http import ChatRequest, Completion
from ..errors import FatalBackendError

_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError, openai.APITimeoutError)


class RequestFailed(Exception):
    """A request that will not succeed: not retryable, or out of retries. Its job fails and the run goes on, unless
    the endpoint as a whole is unusable (see breaker.py), which reads the HTTP status, code and parameter here."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status  # None: no HTTP answer (connection refused or dropped, timeout)
        self.code = code
        self.param = param


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


def retry_after_s(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    if response is None:
        return None
    headers = response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                return None
    return None


Attempt = Callable[[ChatRequest], Awaitable[Completion]]


async def complete_with_retries(attempt_once: Attempt, request: ChatRequest, policy: RetryPolicy,
                                answered: Callable[[], bool] | None = None) -> Completion:
    """Send one request until it succeeds, with a hard per-attempt timeout that really cancels a hung request.
    `answered` says whether the endpoint has answered any request yet (see RetryPolicy.unanswered_retries)."""
    last: Exception | None = None
    attempt = 0
    while True:
        if attempt:
            retries = policy.max_retries
            if answered is not None and isinstance(last, openai.APIConnectionError) and not answered():
                retries = min(retries, policy.unanswered_retries)
            if attempt > retries:
                break
            await asyncio.sleep(policy.delay(attempt - 1, retry_after_s(last)))
        attempt += 1
        try:
            async with asyncio.timeout(policy.timeout_s):
                return await attempt_once(request)
        except openai.AuthenticationError as exc:
            raise FatalBackendError(f"the backend rejected the API key (401): {_short(exc)}. Check the key in the "
                                    "environment variable named by backend.api_key_env") from None
        except openai.RateLimitError as exc:
            if getattr(exc, "code", None) == "insufficient_quota":
                raise FatalBackendError(f"the account's quota is used up: {_short(exc)}. Add credit, or use another "
                                        "key (backend.api_key_env)") from None
            last = exc
        except _RETRYABLE as exc:
            last = exc
        except TimeoutError:
            last = TimeoutError(f"no answer within request_timeout_s={policy.timeout_s:g}")
        except openai.APIStatusError as exc:
            raise RequestFailed(f"HTTP {exc.status_code}: {_short(exc)}", exc.status_code, exc.code, exc.param) from None
    status = last.status_code if isinstance(last, openai.APIStatusError) else None
    raise RequestFailed(f"gave up after {attempt} attempts: {_short(last)}", status)


def _short(error: Exception | None) -> str:
    text = f"{type(error).__name__}: {error}" if error else "unknown error"
    if isinstance(error, openai.APIConnectionError):  # the SDK says "Connection error." or "Request timed out."
        root = error
        while root.__cause__ is not None:
            root = root.__cause__
        if root is not error and str(root):
            text = f"{text.rstrip('.')} ({root})"
    return text if len(text) <= 300 else text[:297] + "..."
