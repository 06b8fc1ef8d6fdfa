"""Asking until an answer is usable: the one step-attempt loop, which a job's steps (through replay.py: plan,
paragraphs, selection, the judge) and instruction synthesis share.

A request that fails for good (already retried by backends/retry.py) ends the step at once; an answer the caller's
`check` rejects (an error page, cut off, over its size, a plan that does not parse, a judgement without its six
scores) is asked again, up to `attempts` times in all."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..backends.base import ChatRequest, Completion, RequestFailed

Send = Callable[[ChatRequest], Awaitable[Completion]]
Check = Callable[[Completion, ChatRequest], Completion]  # the answer to keep (perhaps trimmed), or raises Rejected


class Rejected(Exception):
    """A check's verdict on one answer: unusable, for the reason given; the step asks again."""


class StepFailed(Exception):
    """No usable answer within the step's attempts, or the request failed beyond its retries. `step` is set by
    whoever knows which step of a job it was."""

    def __init__(self, message: str, attempts: int, problem: str | None = None):
        super().__init__(message)
        self.attempts = attempts
        self.problem = problem or message  # the last answer's problem, without the count
        self.step: int | None = None


@dataclass(slots=True)
class Answer:
    completion: Completion
    attempts: int  # the good answer's attempt number
    seconds: float  # the good attempt's own time


async def ask(send: Send, request: ChatRequest, attempts: int, check: Check | None = None, *,
              paid: Callable[[Completion], None] | None = None) -> Answer:
    """The first answer to `request` that `check` accepts; `paid` sees every answer, the unusable ones included."""
    problem = ""
    for attempt in range(1, attempts + 1):
        started = time.monotonic()
        try:
            completion = await send(request)
        except RequestFailed as exc:  # already retried as far as the provider allows
            raise StepFailed(str(exc), attempt) from None
        if paid is not None:
            paid(completion)
        try:
            completion = check(completion, request) if check is not None else completion
        except Rejected as exc:
            problem = str(exc)
            continue
        return Answer(completion, attempt, round(time.monotonic() - started, 3))
    raise StepFailed(f"{problem} after {attempts} attempts", attempts, problem)
