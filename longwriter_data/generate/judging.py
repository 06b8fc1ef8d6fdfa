"""Running the quality judge (quality/judge.py) as a checkpointed step of a build's job; the `judge` command that
scores a finished run (judge_run.py) uses the same QualityJudge.

A build stores the judge's answer in steps.jsonl (step JUDGE_STEP) before the job's record counts, so a resumed
build replays it instead of paying again; the record carries the six scores and S_q.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from ..quality.answer_checks import answer_problem
from ..backends.base import ChatRequest, Completion
from ..backends.factory import open_backend
from ..backends.sending import guarded_send
from ..config import BuildConfig, JudgeConfig
from ..quality.filters import ACCEPTED, Verdict
from ..quality.judge import (BadAnswer, Judgement, answer_schema, build_prompt, judge_key, parse_answer,
                             quality_problem, read_template)
from ..records import JobKey, JudgementRecord, StepRecord, Usage
from .replay import Ask, Rejected, Steps, StepFailed

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
        # The same rule as a step's request key: a judge asked with another temperature, max_tokens or schema is
        # another judge, so the build's judge step and the `judge` command both ask it again.
        self.key = judge_key(self.model, self.template, {
            "temperature": float(settings.temperature), "max_tokens": settings.max_tokens,
            "json_schema": settings.json_schema, "max_input_tokens": settings.max_input_tokens})
        self.attempts = attempts

    def request(self, instruction: str, text: str) -> tuple[ChatRequest, bool]:
        """The request, and whether it shows only an excerpt of a long answer."""
        settings = self.settings
        prompt = build_prompt(self.template, instruction, text, settings.max_input_tokens)
        request = ChatRequest(model=self.model, prompt=prompt.text, max_tokens=settings.max_tokens,
                              temperature=settings.temperature,
                              json_schema=answer_schema() if settings.json_schema else None)
        return request, prompt.excerpt

    async def judge(self, send: Send, instruction: str, text: str) -> tuple[Judgement, StepRecord]:
        """Ask until an answer holds all six scores (up to `attempts`); the judgement and the step's record."""
        return await self.step(Steps(send, self.attempts), instruction, text)

    async def step(self, ask: Ask, instruction: str, text: str) -> tuple[Judgement, StepRecord]:
        """The judge as a step of a job: through a build's `ask`, this judge's stored answer is replayed and a new
        one stored before it counts."""
        request, excerpt = self.request(instruction, text)
        try:
            record = await ask(JUDGE_STEP, request, _scored, judge=self.key, excerpt=excerpt)
        except StepFailed as exc:
            raise JudgeFailed(f"judge: {exc}") from None
        return parse_answer(record.text), record

    def verdict(self, judgement: Judgement) -> Verdict:
        problem = quality_problem(judgement, self.settings.min_score, self.settings.min_dimension)
        return ACCEPTED if problem is None else Verdict("rejected", "low_quality", problem)

    @property
    def filters(self) -> bool:
        return self.settings.min_score is not None or bool(self.settings.min_dimension)

    def record(self, job: JobKey, id: str, judgement: Judgement, step: StepRecord) -> JudgementRecord:
        """The judgement as the `judge` command stores it (with what its call paid); a build's job record takes its
        scores (JobRecord.judged)."""
        usage = Usage()
        usage.add_call(step, step.requests)  # a reasoning judge's thinking included
        return JudgementRecord(seq=job.seq, sample=job.sample, id=id, judge=self.key, quality_score=judgement.score,
                               quality_scores=judgement.scores, quality_analysis=judgement.analysis,
                               judge_excerpt=bool(step.tags.get("excerpt")), usage=usage, step_key=step.key)


def _scored(completion: Completion, request: ChatRequest) -> Completion:
    """A judge's answer that holds all six scores, or Rejected."""
    problem = answer_problem(completion)
    if not problem:
        try:
            parse_answer(completion.text)
        except BadAnswer as exc:
            problem = str(exc)
    if problem:
        raise Rejected(problem)
    return completion


@asynccontextmanager
async def judge_endpoint(config: BuildConfig) -> AsyncIterator[Send | None]:
    """A `send` to the judge's own endpoint (quality.judge.base_url), with its own budgets and the same retries;
    None when the judge shares the backend."""
    endpoint = config.quality.judge.endpoint() if config.quality.judge else None
    if endpoint is None:
        yield None
        return
    async with open_backend(endpoint, config.engine.max_jobs, config.engine.request_timeout_s,
                            where="quality.judge") as backend:
        # Its own budgets; a dead or wrong judge endpoint stops the build in one line, as the backend's does,
        # instead of failing every job as judge_failed.
        yield guarded_send(backend, config.engine, setting="quality.judge.base_url")
