"""One AgentWrite job: ask for a plan, then write its paragraphs strictly in order.

Step n's prompt holds the instruction, the plan and the n-1 paragraphs written so far, with the step-specific
sentence last, so consecutive prompts share the longest possible prefix (prefix caching reuses it). Every answer
comes through `ask` (generate/replay.py), which replays steps a killed build completed; nothing here persists.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from ..quality.answer_checks import MAX_CHARS_PER_TOKEN, answer_problem, trimmed
from ..backends.base import ChatRequest, Completion
from ..config import GenerationConfig, LlmSelect
from ..prompts import template
from ..quality.length import count_words
from .plan import Plan, PlanError, parse_json_plan, parse_text_plan, plan_schema
from ..pools.instructions import Instruction
from ..records import StepRecord
from ..text import template_lang
from ..textclean import strip_control
from .replay import Ask, Rejected, StepFailed

_LABEL_LINE = re.compile(r"^[#*\s]*(?:paragraph\s*\d+|段落\s*\d+|第\s*[\d一二三四五六七八九十]+\s*段)\b[^\n]*\n+", re.I)
_LABEL_PREFIX = re.compile(r"^[#*\s]*(?:paragraph\s*\d+|段落\s*\d+)\s*[:：.\-–—]+\s*(?:\*\*)?\s*", re.I)


TEMPLATES = {name: template(name) for name in (
    "plan_en", "plan_zh", "plan_json_en", "plan_json_zh", "write_en", "write_zh", "extend_en", "extend_zh",
    "select_en", "select_zh")}
SELECT_STEP = -1  # the optional LLM selection question comes before the plan (step 0)
_YES = ("yes", "是", "需要")


class JobFailed(Exception):
    """A step could not produce a usable answer within its attempts; the reason goes into the job record."""

    def __init__(self, step: int, message: str):
        what = {SELECT_STEP: "selection", 0: "plan"}.get(step, f"paragraph {step}")
        super().__init__(f"{what}: {message}")
        self.reason = {SELECT_STEP: "selection_failed", 0: "plan_failed"}.get(step, "paragraph_failed")


class NotSelected(Exception):
    """The LLM selector judged the instruction not to call for long output: the job is rejected, not failed."""


@dataclass
class JobResult:
    plan: Plan
    paragraphs: list[str]
    steps: list[StepRecord] = field(default_factory=list)


def plan_prompt(instruction: Instruction, plan_format: str) -> str:
    lang = template_lang(instruction.lang)
    name = f"plan_json_{lang}" if plan_format == "json" else f"plan_{lang}"
    return TEMPLATES[name].replace("$INST$", instruction.prompt)


def write_prompt(instruction: Instruction, plan: Plan, paragraphs: list[str], index: int) -> str:
    lang = template_lang(instruction.lang)
    return (
        TEMPLATES[f"write_{lang}"]
        .replace("$INST$", instruction.prompt)
        .replace("$PLAN$", plan.render(lang))
        .replace("$TEXT$", "\n\n".join(paragraphs))
        .replace("$STEP$", plan.step_line(index, lang))
    )


def extend_prompt(instruction: Instruction, plan: Plan, paragraph: str, index: int) -> str:
    lang = template_lang(instruction.lang)
    return (
        TEMPLATES[f"extend_{lang}"]
        .replace("$INST$", instruction.prompt)
        .replace("$PLAN$", plan.render(lang))
        .replace("$STEP$", plan.step_line(index, lang))
        .replace("$WORDS$", str(plan.steps[index].words))
        .replace("$HAVE$", str(count_words(paragraph)))
        .replace("$PARAGRAPH$", paragraph)
    )


def clean_paragraph(text: str) -> str:
    """Drop control characters and a leading "Paragraph N" label the model may echo; keep any subtitle."""
    text = strip_control(text).strip()
    text = _LABEL_LINE.sub("", text, count=1) if _LABEL_LINE.match(text) and "\n" in text else text
    return _LABEL_PREFIX.sub("", text, count=1).strip()


class AgentWrite:
    """Plan, then write in order. Pure: every answer comes from `ask` (generate/replay.py), which replays a stored
    step or pays for a new one; nothing here knows about resume."""

    def __init__(self, generation: GenerationConfig, model: str, plan_model: str | None = None,
                 selector: LlmSelect | None = None):
        self.gen = generation
        self.model = model
        self.plan_model = plan_model or model
        self.selector = selector
        self._paragraph_check = functools.partial(_checked, trim=generation.paragraph_cutoff == "trim")

    async def run(self, instruction: Instruction, ask: Ask) -> JobResult:
        """Run the job through `ask`: (step number, request, check) -> the step's accepted answer."""
        try:
            return await self._run(instruction, ask)
        except StepFailed as exc:
            raise JobFailed(exc.step, str(exc)) from None

    async def _run(self, instruction: Instruction, ask: Ask) -> JobResult:
        records: list[StepRecord] = []
        if self.selector is not None:
            records.append(await self._select(instruction, ask))
        plan_record = await ask(0, self._plan_request(instruction), self._plan_check)
        records.append(plan_record)
        plan = self._parse(plan_record.text)
        paragraphs: list[str] = []
        for index in range(len(plan.steps)):
            record = await ask(index + 1, self._write_request(instruction, plan, paragraphs, index),
                               self._paragraph_check)
            records.append(record)
            paragraphs.append(clean_paragraph(record.text))
        if self.gen.extend_short:
            records += await self._extend(instruction, plan, paragraphs, ask)
        return JobResult(plan=plan, paragraphs=paragraphs, steps=records)

    async def _extend(self, instruction: Instruction, plan: Plan, paragraphs: list[str], ask: Ask) -> list[StepRecord]:
        """When the whole text is far below its plan, one extend call for each of the shortest paragraphs.

        Extension steps are numbered after the last paragraph; which paragraphs they extend depends only on
        earlier answers, so a resumed job picks the same ones."""
        below = self.gen.extend_below
        written = [count_words(p) for p in paragraphs]
        if sum(written) >= below * plan.total_words:
            return []
        ratios = sorted((w / s.words, i) for i, (w, s) in enumerate(zip(written, plan.steps)) if w < below * s.words)
        chosen = sorted(i for _, i in ratios[: self.gen.extend_max_paragraphs])
        records = []
        for k, index in enumerate(chosen):
            request = ChatRequest(
                model=self.model,
                prompt=extend_prompt(instruction, plan, paragraphs[index], index),
                max_tokens=self.gen.paragraph_max_tokens,
                temperature=self.gen.temperature,
                extra_body=self.gen.extra_body,
            )
            record = await ask(len(plan.steps) + 1 + k, request, self._paragraph_check, extends=index + 1)
            records.append(record)
            longer = clean_paragraph(record.text)
            if count_words(longer) > written[index]:
                paragraphs[index] = longer
        return records

    async def _select(self, instruction: Instruction, ask: Ask) -> StepRecord:
        lang = template_lang(instruction.lang)
        request = ChatRequest(
            model=self.selector.model or self.model,
            prompt=TEMPLATES[f"select_{lang}"].replace("$INST$", instruction.prompt),
            max_tokens=self.selector.max_tokens,
            temperature=0.0,
        )
        record = await ask(SELECT_STEP, request, _checked)
        answer = record.text.strip().strip("*\"'“”").lower()
        if not answer.startswith(_YES):
            raise NotSelected(f"the selector answered {record.text.strip()[:40]!r}")
        return record

    def _plan_request(self, instruction: Instruction) -> ChatRequest:
        gen = self.gen
        schema = None
        if gen.plan_format == "json":
            schema = plan_schema(gen.min_paragraphs, gen.max_paragraphs, gen.paragraph_word_range)
        return ChatRequest(
            model=self.plan_model,
            prompt=plan_prompt(instruction, self.gen.plan_format),
            max_tokens=self.gen.plan_max_tokens,
            temperature=self.gen.temperature,
            json_schema=schema,
            extra_body=gen.extra_body,
        )

    def _write_request(self, instruction: Instruction, plan: Plan, paragraphs: list[str], index: int) -> ChatRequest:
        gen = self.gen
        extra = dict(gen.extra_body)
        if gen.min_tokens_per_word:
            wanted = round(gen.min_tokens_per_word * plan.steps[index].words)
            extra["min_tokens"] = min(wanted, gen.paragraph_max_tokens * 3 // 4)
        return ChatRequest(
            model=self.model,
            prompt=write_prompt(instruction, plan, paragraphs, index),
            max_tokens=gen.paragraph_max_tokens,
            temperature=gen.temperature,
            extra_body=extra,
        )

    def _plan_problem(self, text: str) -> str | None:
        try:
            self._parse(text)
        except PlanError as exc:
            return str(exc)
        return None

    def _parse(self, text: str) -> Plan:
        if self.gen.plan_format == "json":
            return parse_json_plan(text, self.gen.max_paragraphs)
        return parse_text_plan(text, self.gen.max_paragraphs)

    def _plan_check(self, completion: Completion, request: ChatRequest) -> Completion:
        completion = _checked(completion, request)
        try:
            self._parse(completion.text)
        except PlanError as exc:
            raise Rejected(str(exc)) from None
        return completion


def _checked(completion: Completion, request: ChatRequest, trim: bool = False) -> Completion:
    """An answer fit to use (with `trim`, a cut-off one kept up to its last complete sentence: finish_reason
    "trimmed"), or Rejected with the reason. The request's max_tokens bounds its size (see answer_problem)."""
    if trim and completion.finish_reason == "length":
        completion = trimmed(completion)
    problem = answer_problem(completion, max_chars=max(request.max_tokens, 256) * MAX_CHARS_PER_TOKEN)
    if problem:
        raise Rejected(problem)
    return completion
