"""Provider budgets: requests per minute, tokens per minute, and an adaptive cap on requests in flight.

Each attempt of each request passes through all three, so retries are budgeted like first tries:
- requests per minute: `asyncio-throttle` over a sliding minute (never above the budget in any 60 s), plus a
  six-second window so the minute's budget is spread out instead of spent in a burst;
- tokens per minute: a token bucket that reserves an estimate (prompt + max output) before a request and settles
  with the real `usage` after (curator's scheme);
- concurrency: AIMD. A burst of 429s halves the number of requests in flight; each success adds 1/limit, so the
  limit grows by about one per round of requests, never above `engine.max_jobs`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from asyncio_throttle import Throttler

from ..config import EngineConfig
from ..quality.length import approx_tokens
from .base import RATE_LIMITED, ChatRequest, Completion, RequestFailed


class AdaptiveConcurrency:
    def __init__(self, ceiling: int):
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.in_flight = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._last_cut = -math.inf
        self._latency = 1.0  # seconds, a moving average: one halving per round trip, not one per 429

    @property
    def current(self) -> int:
        return max(1, int(self.limit))

    async def acquire(self) -> None:
        if self.in_flight < self.current and not self._waiters:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we were cancelled
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.current:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def throttled(self) -> None:
        now = time.monotonic()
        if now - self._last_cut >= self._latency:
            self.limit = max(1.0, self.limit / 2)
            self._last_cut = now

    def succeeded(self, seconds: float) -> None:
        self._latency = 0.9 * self._latency + 0.1 * seconds
        if self.limit < self.ceiling:
            self.limit = min(float(self.ceiling), self.limit + 1 / self.limit)
            self._wake()


class TokenBucket:
    def __init__(self, per_minute: float):
        self.capacity = per_minute
        self.tokens = per_minute
        self.rate = per_minute / 60.0
        self._updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def reserve(self, tokens: float) -> float:
        """Wait until `tokens` (capped at one minute's worth) are available and take them."""
        tokens = min(tokens, self.capacity)
        while True:
            self._refill()
            if self.tokens >= tokens:
                self.tokens -= tokens
                return tokens
            await asyncio.sleep((tokens - self.tokens) / self.rate)

    def settle(self, reserved: float, used: float) -> None:
        """Give back what was reserved but not used, or take what was used beyond it (the balance may go negative)."""
        self._refill()
        self.tokens = min(self.capacity, self.tokens + reserved - used)


def _throttlers(requests_per_minute: float) -> list[Throttler]:
    """98% of the budget as a hard sliding minute, and the same rate over ~6 s windows so it is spread out.

    The 2% is a margin for requests that reach the provider a little later or earlier than they left us, so the
    provider never counts more than its budget in any minute. asyncio-throttle polls (every 50 ms here), which
    costs about another 1%."""
    rate = 0.98 * requests_per_minute
    per_window = max(1, round(rate / 10))
    poll = min(0.5, max(0.05, 3 / requests_per_minute))
    # The hard minute comes last: a slot is logged when taken, so it must be taken right before the request
    # leaves, not before a wait at another throttler.
    return [
        Throttler(rate_limit=per_window, period=per_window * 60 / rate, retry_interval=poll),
        Throttler(rate_limit=max(1, int(rate)), period=60.0, retry_interval=poll),
    ]


def estimate_tokens(request: ChatRequest) -> int:
    """Prompt tokens plus the most the answer may use: what a token budget must reserve."""
    return approx_tokens(request.prompt) + request.max_tokens


class Limits:
    def __init__(self, engine: EngineConfig):
        self.concurrency = AdaptiveConcurrency(engine.max_jobs)
        self.throttlers = _throttlers(engine.requests_per_minute) if engine.requests_per_minute else []
        self.tokens = TokenBucket(engine.tokens_per_minute) if engine.tokens_per_minute else None

    async def call(self, send: Callable[[ChatRequest], Awaitable[Completion]], request: ChatRequest) -> Completion:
        """One attempt of one request, inside every budget."""
        await self.concurrency.acquire()
        try:
            reserved = await self.tokens.reserve(estimate_tokens(request)) if self.tokens else 0
            for throttler in self.throttlers:
                await throttler.acquire()
            started = time.monotonic()
            try:
                completion = await send(request)
            except BaseException as exc:
                if isinstance(exc, RequestFailed) and exc.failure.kind is RATE_LIMITED:
                    self.concurrency.throttled()  # the reservation stays spent: the provider counted the request
                elif self.tokens:
                    self.tokens.settle(reserved, 0)
                raise
            self.concurrency.succeeded(time.monotonic() - started)
            if self.tokens:
                self.tokens.settle(reserved, completion.prompt_tokens + completion.completion_tokens)
            return completion
        finally:
            self.concurrency.release()
