"""Steps of a job, replayed or paid: the one place that knows about resume.

A job's callers (AgentWrite, the LLM selector, the quality judge) ask for a step's answer with `ask(step, request,
check)`. A step stored by an earlier build (same job and sample, step number, tags and request key, a hash of the
whole payload: an answer paid under another model or temperature is paid again) is returned as it was; otherwise
the request is sent, up to `attempts` times until `check` accepts the answer (attempts.py), and the accepted
answer is stored durably (fsync'd, group commit) before it is returned. Only accepted answers are stored, so a
job that failed on bad answers asks again when retried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from ..backends.base import ChatRequest, Completion, request_key
from ..records import StepRecord, Usage
from .attempts import Check, Rejected, StepFailed, ask

__all__ = ["Ask", "Check", "Rejected", "StepFailed", "Steps"]

Send = Callable[[ChatRequest], Awaitable[Completion]]
Save = Callable[[StepRecord], Awaitable[None]]


class Ask(Protocol):
    async def __call__(self, step: int, request: ChatRequest, check: Check | None = None,
                       **tags) -> StepRecord: ...


class Steps:
    """The `ask` of one job (one sample of one instruction)."""

    __slots__ = ("send", "attempts", "stored", "save", "sample", "paid")

    def __init__(self, send: Send, attempts: int, stored: dict[int, StepRecord] | None = None,
                 save: Save | None = None, sample: int = 0):
        self.send = send
        self.attempts = attempts
        self.stored = stored or {}  # by step number, as steps.jsonl holds them
        self.save = save
        self.sample = sample
        self.paid = Usage()  # what every step asked so far cost: replayed, new, and failed for good

    async def __call__(self, step: int, request: ChatRequest, check: Check | None = None, **tags) -> StepRecord:
        key = request_key(request, self.sample)
        stored = self.stored.get(step)
        if stored is not None and stored.key == key and all(stored.tags.get(k) == v for k, v in tags.items()):
            self.paid.add_call(stored, stored.requests)
            return stored
        paid = Usage()  # every answer, those the check rejects included: each was paid for
        try:
            answer = await ask(self.send, request, self.attempts, check, paid=paid.add_call)
        except StepFailed as exc:
            exc.step = step
            raise
        finally:
            self.paid += paid
        completion = answer.completion
        record = StepRecord(
            step=step, text=completion.text, finish_reason=completion.finish_reason, key=key,
            prompt_tokens=paid.prompt_tokens, completion_tokens=paid.completion_tokens,
            cached_tokens=paid.cached_tokens, reasoning_tokens=paid.reasoning_tokens, requests=paid.requests,
            prompt_chars=len(request.prompt), attempts=answer.attempts, seconds=answer.seconds, tags=tags)
        if self.save is not None:
            await self.save(record)
        return record
