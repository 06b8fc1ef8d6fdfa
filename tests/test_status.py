"""The pieces the engine and synthesis share: the status tracker the progress bar reads, the step-attempt loop, and
stopping on Ctrl-C. Builds exercise them end to end (test_build.py, test_synthesis.py); these pin their rules."""

from __future__ import annotations

import asyncio
import functools

import pytest

from longwriter_data.backends.limits import AdaptiveConcurrency
from longwriter_data.backends.base import ChatRequest, Completion, Failure, FailureKind, RequestFailed
from longwriter_data.config import PricesConfig
from longwriter_data.generate.attempts import Rejected, StepFailed, ask
from longwriter_data.generate.progress import Progress
from longwriter_data.generate.status import StatusTracker
from longwriter_data.generate.stop import Drain
from longwriter_data.quality.answer_checks import answer_problem

REQUEST = ChatRequest(model="m", prompt="Write.", max_tokens=100, temperature=0.7)
GOOD = Completion("A usable answer.", "stop", prompt_tokens=1000, completion_tokens=500, cached_tokens=400)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def answering(*answers: Completion | Exception):
    """A `send` that gives these answers (or raises these errors) in turn, and records the requests it got."""
    queue = list(answers)

    async def send(request: ChatRequest) -> Completion:
        send.requests.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    send.requests = []
    return send


def test_the_tracker_counts_requests_tokens_cost_and_jobs_of_this_run_beside_the_whole_run():
    clock = Clock()
    limiter = AdaptiveConcurrency(8)
    status = StatusTracker(10, {"accepted": 4, "failed": 1}, PricesConfig(input=2, cached_input=1, output=10),
                           limiter, clock)
    bar = Progress(status, enabled=False)
    answers = answering(GOOD, GOOD, RequestFailed(Failure(FailureKind.RETRYABLE, "HTTP 500", 500)))

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
    status.job_ended("accepted", words=3000)
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


NO_LIST = Completion("Here are some thoughts.", "stop")


def usable(completion: Completion, request) -> Completion:
    """The check every caller starts with: an answer fit to use (not empty, not cut off, no error text)."""
    if problem := answer_problem(completion):
        raise Rejected(problem)
    return completion


def listed(completion: Completion, request) -> Completion:
    """A caller's own check on top: the answer must be the good one."""
    if usable(completion, request).text != GOOD.text:
        raise Rejected("no list found")
    return completion


@pytest.mark.parametrize("answers, check, attempts, expected", [
    ((GOOD,), None, 3, "good at attempt 1"),
    ((Completion("", "stop"), Completion("cut", "length"), GOOD), usable, 3, "good at attempt 3"),
    ((NO_LIST, GOOD), listed, 3, "good at attempt 2"),
    ((NO_LIST, NO_LIST), listed, 2, "no list found after 2 attempts"),
    ((Completion("", "stop"), RequestFailed(Failure(FailureKind.REFUSED, "HTTP 400: bad model", 400))), usable, 3,
     "HTTP 400: bad model"),
    ((Completion("cut", "length"),) * 2, usable, 2, "cut off (finish_reason=length) after 2 attempts"),
])
def test_a_step_asks_again_after_unusable_answers_and_ends_at_a_failed_request(answers, check, attempts, expected):
    paid: list[Completion] = []
    send = answering(*answers)
    try:
        answer = asyncio.run(ask(send, REQUEST, attempts, check, paid=paid.append))
    except StepFailed as exc:
        assert str(exc) == expected
        assert exc.attempts == len(send.requests)
    else:
        assert answer.completion == GOOD and expected == f"good at attempt {answer.attempts}"
    assert len(send.requests) == min(len(answers), attempts)
    assert paid == [a for a in answers[:len(send.requests)] if isinstance(a, Completion)]  # bad answers are paid too


def test_a_cut_off_paragraph_is_trimmed_to_its_last_sentence_when_asked():
    from longwriter_data.generate.agentwrite import _checked

    cut = Completion("One sentence. Another one that stops", "length", completion_tokens=100)
    answer = asyncio.run(ask(answering(cut), REQUEST, 1, functools.partial(_checked, trim=True)))
    assert (answer.completion.text, answer.completion.finish_reason) == ("One sentence.", "trimmed")
    with pytest.raises(StepFailed, match="over the"):  # a paragraph's size is bounded by its request's max_tokens
        asyncio.run(ask(answering(Completion("word " * 5000, "stop")), REQUEST, 1, _checked))


def test_a_stop_starts_nothing_new_then_cancels_what_outlives_the_grace_period():
    async def main() -> tuple[bool, bool, bool]:
        tasks: dict[int, asyncio.Task] = {}
        drain = Drain(tasks)
        finished = asyncio.Event()
        tasks[1] = asyncio.create_task(finished.wait())
        tasks[2] = asyncio.create_task(asyncio.Event().wait())  # never ends by itself
        drain.request_stop(3600)
        drain.request_stop(0)  # a second request changes nothing: the first grace period stands
        finished.set()
        await tasks[1]
        still_running = not tasks[2].done()
        await drain.close()
        return drain.requested, still_running, tasks[2].cancelled()

    assert asyncio.run(main()) == (True, True, True)
