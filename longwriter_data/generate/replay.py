"""Steps of a job, replayed or paid: the one place that knows about resume.

A job's callers (AgentWrite, the LLM selector, the quality judge) ask for a step's answer with `ask(step, request,
check)`. A step stored by an earlier build (same job and sample, step number, prompt hash and tags) is returned as
it was; otherwise the request is sent, up to `attempts` times until `check` accepts the answer, and the accepted
answer is stored durably (fsync'd, group commit) before it is returned. Only accepted answers are stored, so a
job that failed on bad answers asks again when retried.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..backends.openai_http import ChatRequest, Completion, request_key
from ..backends.retry import RequestFailed
from ..store import StepRecord

Send = Callable[[ChatRequest], Awaitable[Completion]]
Check = Callable[[Completion, ChatRequest], Completion]  # the answer to keep (perhaps trimmed), or raises Rejected
Save = Callable[[StepRecord], Awaitable[None]]


class Rejected(Exception):
    """A check's verdict on one answer: unusable, for the reason given; the step asks again."""


class StepFailed(Exception):
    """No usable answer within the step's attempts, or the request failed beyond its retries."""

    def __init__(self, step: int, message: str):
        super().__init__(message)
        self.step = step


class Ask(Protocol):
    async def __call__(self, step: int, request: ChatRequest, check: Check | None = None,
                       **tags) -> StepRecord: ...


class Steps:
    """The `ask` of one job (one sample of one instruction)."""

    __slots__ = ("send", "attempts", "stored", "save", "sample")

    def __init__(self, send: Send, attempts: int, stored: dict[int, dict] | None = None, save: Save | None = None,
                 sample: int = 0):
        self.send = send
        self.attempts = attempts
        self.stored = stored or {}  # step number -> its record in steps.jsonl
        self.save = save
        self.sample = sample

    async def __call__(self, step: int, request: ChatRequest, check: Check | None = None, **tags) -> StepRecord:
        key = request_key(request.prompt, self.sample)
        stored = self.stored.get(step)
        if stored is not None and stored.get("key") == key and all(stored.get(k) == v for k, v in tags.items()):
            return StepRecord.from_record(stored)
        problem = ""
        for attempt in range(1, self.attempts + 1):
            started = time.monotonic()
            try:
                completion = await self.send(request)
            except RequestFailed as exc:  # already retried as far as the provider allows
                raise StepFailed(step, str(exc)) from None
            try:
                completion = check(completion, request) if check is not None else completion
            except Rejected as exc:
                problem = str(exc)
                continue
            record = StepRecord(
                step=step, text=completion.text, finish_reason=completion.finish_reason, key=key,
                prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                cached_tokens=completion.cached_tokens, reasoning_tokens=completion.reasoning_tokens,
                prompt_chars=len(request.prompt), attempts=attempt, seconds=round(time.monotonic() - started, 3),
                tags=tags)
            if self.save is not None:
                await self.save(record)
            return record
        raise StepFailed(step, f"{problem} after {self.attempts} attempts")
