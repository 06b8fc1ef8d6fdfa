"""Running the quality judge (quality/judge.py) as a checkpointed step of a build's job; the `judge` command that
scores a finished run (judge_run.py) uses the same QualityJudge.

A build stores the judge's answer in steps.jsonl (step JUDGE_STEP) before the job's record counts, so a resumed
build replays it instead of paying again; the record carries the six scores and S_q.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from ..backends.openai_http import ChatRequest, Completion, OpenAIBackend, request_key
from ..config import BuildConfig, JudgeConfig
from ..errors import UserError
from ..quality.filters import ACCEPTED, Verdict
from ..quality.judge import (BadAnswer, Judgement, answer_schema, build_prompt, judge_key, parse_answer,
                             quality_problem, read_template)
from ..backends.retry import RetryPolicy, complete_with_retries
from .attempts import StepFailed, ask

Send = Callable[[ChatRequest], Awaitable[Completion]]
JUDGE_STEP = 100_000  # the judge's step number in steps.jsonl: after every paragraph and extension of a job


class JudgeFailed(Exception):
    """No usable judge answer within the step's attempts: the job fails (`judge_failed`); --retry-failed asks again
    (its writing is replayed from the run directory)."""

    reason = "judge_failed"


class QualityJudge:
    """One judge (model and prompt template) with the recipe's bar for low_quality."""

    def __init__(self, settings: JudgeConfig, default_model: str, attempts: int):
        self.settings = settings
        self.model = settings.model or default_model
        self.template = read_template(settings.prompt_file)
        self.key = judge_key(self.model, self.template)
        self.attempts = attempts

    def request(self, instruction: str, text: str) -> tuple[ChatRequest, bool]:
        """The request, and whether it shows only an excerpt of a long answer."""
        settings = self.settings
        prompt = build_prompt(self.template, instruction, text, settings.max_input_tokens)
        request = ChatRequest(model=self.model, prompt=prompt.text, max_tokens=settings.max_tokens,
                              temperature=settings.temperature,
                              json_schema=answer_schema() if settings.json_schema else None)
        return request, prompt.excerpt

    async def judge(self, send: Send, instruction: str, text: str) -> tuple[Judgement, dict]:
        """Ask until an answer holds all six scores (up to `attempts`); the judgement and the step's record."""
        request, excerpt = self.request(instruction, text)
        try:
            answer = await ask(send, request, self.attempts, _judge_problem)
        except StepFailed as exc:
            raise JudgeFailed(f"judge: {exc}") from None
        completion = answer.completion
        return parse_answer(completion.text), {
            "step": JUDGE_STEP, "judge": self.key, "text": completion.text,
            "finish_reason": completion.finish_reason, "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens, "cached_tokens": completion.cached_tokens,
            "prompt_chars": len(request.prompt), "key": request_key(request.prompt), "attempts": answer.attempts,
            "seconds": answer.seconds, "excerpt": excerpt,
        }

    async def step(self, send: Send, instruction: str, text: str, done: dict[int, dict],
                   save_step: Callable[[dict], Awaitable[None]]) -> tuple[Judgement, dict]:
        """The judge as a step of a build's job: this judge's stored answer is replayed, a new one stored first."""
        stored = done.get(JUDGE_STEP)
        if stored is not None and stored.get("judge") == self.key:
            return parse_answer(stored["text"]), stored
        judgement, record = await self.judge(send, instruction, text)
        await save_step(record)
        return judgement, record

    def verdict(self, judgement: Judgement) -> Verdict:
        problem = quality_problem(judgement, self.settings.min_score, self.settings.min_dimension)
        return ACCEPTED if problem is None else Verdict("rejected", "low_quality", problem)

    @property
    def filters(self) -> bool:
        return self.settings.min_score is not None or bool(self.settings.min_dimension)

    def fields(self, judgement: Judgement, step: dict) -> dict:
        """What a job record (or a judgements.jsonl line) keeps of a judgement."""
        return {"judge": self.key, "quality_score": judgement.score, "quality_scores": judgement.scores,
                "quality_analysis": judgement.analysis, "judge_excerpt": bool(step.get("excerpt"))}


def _judge_problem(text: str) -> str | None:
    try:
        parse_answer(text)
    except BadAnswer as exc:
        return str(exc)
    return None


@asynccontextmanager
async def judge_endpoint(config: BuildConfig, policy: RetryPolicy) -> AsyncIterator[Send | None]:
    """A `send` to the judge's own endpoint (quality.judge.base_url), with its own budgets and the same retries;
    None when the judge shares the backend."""
    settings = config.quality.judge
    if settings is None or settings.base_url is None:
        yield None
        return
    from ..backends.limits import Limits

    backend = OpenAIBackend(settings.base_url, _judge_key(settings), config.engine.max_jobs,
                            config.engine.request_timeout_s)
    try:
        attempt = functools.partial(Limits(config.engine).call, backend.complete)
        yield functools.partial(complete_with_retries, attempt, policy=policy)
    finally:
        await backend.aclose()


def _judge_key(settings: JudgeConfig) -> str:
    name = settings.api_key_env
    if not name:
        return "EMPTY"
    key = os.environ.get(name)
    if not key:
        raise UserError(f"environment variable {name} (quality.judge.api_key_env) is not set: export it, or set "
                        "quality.judge.api_key_env: null for a judge server that needs no key.")
    return key
