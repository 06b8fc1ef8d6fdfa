"""The step-attempt loop (generate/attempts.py) that AgentWrite's steps, the judge and synthesis share: ask again
after unusable answers, stop at a request that failed for good, count every answer paid for."""

from __future__ import annotations

import asyncio

import pytest

from longwriter_data.backends.base import ChatRequest, Completion, Failure, FailureKind
from longwriter_data.backends.dummy import DummyBackend
from longwriter_data.generate.attempts import Rejected, StepFailed, ask
from longwriter_data.quality.answer_checks import answer_problem

REQUEST = ChatRequest(model="m", prompt="Write.", max_tokens=100, temperature=0.7)
GOOD = Completion("A usable answer.", "stop", prompt_tokens=1000, completion_tokens=500, cached_tokens=400)

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
    ((Completion("", "stop"), Failure(FailureKind.REFUSED, "HTTP 400: bad model", 400)), usable, 3,
     "HTTP 400: bad model"),
    ((Completion("cut", "length"),) * 2, usable, 2, "cut off (finish_reason=length) after 2 attempts"),
])
def test_a_step_asks_again_after_unusable_answers_and_ends_at_a_failed_request(answers, check, attempts, expected):
    paid: list[Completion] = []
    backend = DummyBackend.in_turn(*answers)
    try:
        answer = asyncio.run(ask(backend.send, REQUEST, attempts, check, paid=paid.append))
    except StepFailed as exc:
        assert str(exc) == expected
        assert exc.attempts == len(backend.requests)
    else:
        assert answer.completion == GOOD and expected == f"good at attempt {answer.attempts}"
    assert len(backend.requests) == min(len(answers), attempts)
    assert paid == [a for a in answers[:len(backend.requests)] if isinstance(a, Completion)]  # bad answers are paid too
