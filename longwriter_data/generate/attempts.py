"""Asking until an answer is usable: the step-attempt loop that AgentWrite's steps, the judge and synthesis share.

A request that fails for good (already retried by backends/retry.py) ends the step at once; an answer with a
problem (an error page, cut off, over its size, or rejected by the caller's `check`) is asked again, up to
`attempts` times in all."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..backends.openai_http import ChatRequest, Completion
from ..backends.retry import RequestFailed
from ..quality.answer_checks import answer_problem, trimmed

Send = Callable[[ChatRequest], Awaitable[Completion]]
Check = Callable[[str], "str | None"]  # why an answer's text cannot be used, or None


class StepFailed(Exception):
    """No usable answer: `problem` is the last one seen, `attempts` how many requests were answered or tried."""

    def __init__(self, problem: str, attempts: int, exhausted: bool):
        super().__init__(f"{problem} after {attempts} attempts" if exhausted else problem)
        self.problem = problem
        self.attempts = attempts


@dataclass(slots=True)
class Answer:
    completion: Completion
    attempts: int  # the good answer's attempt number
    seconds: float  # the good attempt's own time


async def ask(send: Send, request: ChatRequest, attempts: int, check: Check | None = None, *, trim: bool = False,
              max_chars: int | None = None, paid: Callable[[Completion], None] | None = None) -> Answer:
    """The first usable answer to `request`. With `trim`, a cut-off answer is kept up to its last complete
    sentence (finish_reason "trimmed"); `paid` sees every answer, the unusable ones included."""
    problem = ""
    for attempt in range(1, attempts + 1):
        started = time.monotonic()
        try:
            completion = await send(request)
        except RequestFailed as exc:  # already retried as far as the provider allows
            raise StepFailed(str(exc), attempt, exhausted=False) from None
        if paid is not None:
            paid(completion)
        if trim and completion.finish_reason == "length":
            completion = trimmed(completion)
        problem = answer_problem(completion, max_chars) or (check and check(completion.text)) or ""
        if not problem:
            return Answer(completion, attempt, round(time.monotonic() - started, 3))
    raise StepFailed(problem, attempts, exhausted=True)
