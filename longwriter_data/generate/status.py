"""A build's live figures, kept apart from the code that does the work (curator's status tracker shows the split):
the engine and synthesis report events here (a request sent and answered, a job started and ended), the progress
bar only reads. Requests in flight, requests per minute, tokens per second, the cost so far, and the jobs finished
in this run beside those of the whole run directory."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

from ..backends.base import ChatRequest, Completion
from ..backends.limits import AdaptiveConcurrency
from ..config import PricesConfig
from ..records import Usage

Send = Callable[[ChatRequest], Awaitable[Completion]]


class StatusTracker:
    def __init__(self, target: int, before: Mapping[str, int] | None = None, prices: PricesConfig | None = None,
                 concurrency: AdaptiveConcurrency | None = None, clock: Callable[[], float] = time.monotonic):
        self.target = target
        self.prices = prices
        self.concurrency = concurrency  # the AIMD limiter, whose current limit the bar shows while it is lowered
        self.clock = clock
        self.started = clock()
        self.whole: Counter = Counter(before or {})  # jobs per status in the run directory, this run's included
        self.run: Counter = Counter()  # ... of which this run finished
        self.words = 0  # in the jobs this run finished
        self.jobs_in_flight = 0
        self.requests_in_flight = 0
        self.paid = Usage()  # every request this run answered: the jobs', synthesis's and the judge's
        self._watchers: list[Callable[[], None]] = []

    def counted(self, send: Send) -> Send:
        """`send`, reporting each request here: one wrapper for the build's requests, synthesis's and the judge's."""
        async def counted(request: ChatRequest) -> Completion:
            self.requests_in_flight += 1
            try:
                completion = await send(request)
            finally:
                self.requests_in_flight -= 1
            self.paid.add_call(completion)
            return completion
        return counted

    def job_started(self) -> None:
        self.jobs_in_flight += 1

    def job_ended(self) -> None:
        """A job left the engine: finished, or cancelled."""
        self.jobs_in_flight -= 1

    def job_recorded(self, status: str, words: int = 0) -> None:
        """A job's record is on disk, with `status`."""
        self.run[status] += 1
        self.whole[status] += 1
        self.words += words
        for watcher in self._watchers:
            watcher()

    def watch(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever a job finishes (the bar redraws then, not on every request)."""
        self._watchers.append(callback)

    @property
    def elapsed(self) -> float:
        return max(self.clock() - self.started, 1e-9)

    def per_second(self, count: float) -> float:
        return count / self.elapsed

    @property
    def cost(self) -> float | None:
        """US dollars for the tokens answered so far, when the recipe has prices."""
        return self.paid.cost(self.prices)

    @property
    def lowered_limit(self) -> int | None:
        """The concurrency limit while the limiter holds it below its ceiling (after rate limits), else None."""
        limiter = self.concurrency
        return limiter.current if limiter is not None and limiter.current < limiter.ceiling else None
