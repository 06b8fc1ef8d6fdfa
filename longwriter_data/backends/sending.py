"""How every request of a command reaches a backend: within the budgets (limits.py), retried (retry.py), and
watched by the endpoint breaker (breaker.py), so a dead or wrong endpoint stops the command in one line. The build's
jobs, the judge on its own endpoint and the `judge` command all send this way."""

from __future__ import annotations

import functools

from ..config import EngineConfig
from .base import Backend
from .breaker import EndpointBreaker, Send
from .limits import Limits
from .retry import RetryPolicy, complete_with_retries


def guarded_send(backend: Backend, engine: EngineConfig, limits: Limits | None = None,
                 setting: str = "backend.base_url") -> Send:
    """`send` for `backend` under the recipe's engine settings; `setting` is the recipe key a stopped command tells
    the user to check. Pass `limits` to share (and read) one limiter."""
    policy = RetryPolicy(max_retries=engine.max_retries, timeout_s=engine.request_timeout_s,
                         base_delay_s=engine.retry_base_delay_s, max_delay_s=engine.retry_max_delay_s)
    attempt = functools.partial((limits or Limits(engine)).call, backend.send)
    breaker = EndpointBreaker(backend.url, engine.max_jobs, setting)
    return breaker.guarding(functools.partial(complete_with_retries, attempt, policy=policy, answered=breaker.answered))
