"""The status tracker the progress bar reads: requests, tokens, cost and jobs of this run beside the whole run's.
Builds exercise it end to end (test_build.py, test_synthesis.py); these pin its rules."""

from __future__ import annotations

import asyncio

import pytest

from longwriter_data.backends.base import ChatRequest, Completion, Failure, FailureKind, RequestFailed
from longwriter_data.backends.dummy import DummyBackend
from longwriter_data.backends.limits import AdaptiveConcurrency
from longwriter_data.config import PricesConfig
from longwriter_data.generate.progress import Progress
from longwriter_data.generate.status import StatusTracker

REQUEST = ChatRequest(model="m", prompt="Write.", max_tokens=100, temperature=0.7)
GOOD = Completion("A usable answer.", "stop", prompt_tokens=1000, completion_tokens=500, cached_tokens=400)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_tracker_counts_requests_tokens_cost_and_jobs_of_this_run_beside_the_whole_run():
    clock = Clock()
    limiter = AdaptiveConcurrency(8)
    status = StatusTracker(10, {"accepted": 4, "failed": 1}, PricesConfig(input=2, cached_input=1, output=10),
                           limiter, clock)
    bar = Progress(status, enabled=False)
    answers = DummyBackend.in_turn(GOOD, GOOD, Failure(FailureKind.RETRYABLE, "HTTP 500", 500)).send

    async def main() -> None:
        started, answer = asyncio.Event(), asyncio.Event()

        async def held(request: ChatRequest) -> Completion:  # the first request waits to be let through
            if not started.is_set():
                started.set()
                await answer.wait()
            return await answers(request)

        send = status.counted(held)
        status.job_started()
        status.job_started()
        pending = asyncio.ensure_future(send(REQUEST))
        await started.wait()
        assert status.requests_in_flight == 1
        answer.set()
        await pending
        await send(REQUEST)
        with pytest.raises(RequestFailed):  # in flight while it lasted; no answer, so nothing to count
            await send(REQUEST)

    asyncio.run(main())
    clock.now += 30
    status.job_recorded("accepted", words=3000)
    status.job_ended()
    status.job_ended()  # cancelled: it leaves, counted nowhere
    assert (status.requests_in_flight, status.paid.requests, status.jobs_in_flight) == (0, 2, 0)
    assert status.run == {"accepted": 1} and status.whole == {"accepted": 5, "failed": 1}
    assert status.cost == pytest.approx((2 * 600 * 2 + 2 * 400 * 1 + 2 * 500 * 10) / 1e6)
    assert bar.line() == ("rejected=0 failed=1 jobs=0 in-flight=0 req/min=4 tok/s in=67 out=33 words/s=100 "
                          "cost=$0.01")
    assert bar.bar.n == 5  # the whole run's accepted samples
    limiter.limit = 3.0  # lowered after rate limits: the bar shows the limit beside the requests in flight
    assert "in-flight=0/3 " in bar.line()


def test_without_prices_the_bar_shows_no_cost():
    status = StatusTracker(3)
    assert status.cost is None and "cost" not in Progress(status, enabled=False).line()
