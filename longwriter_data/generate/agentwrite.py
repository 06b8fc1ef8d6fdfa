"""One AgentWrite job: ask for a plan, then write its paragraphs strictly in order.

Step n's prompt holds the instruction, the plan and the n-1 paragraphs written so far, with the step-specific
sentence last, so consecutive prompts share the longest possible prefix (prefix caching reuses it). Steps that
were completed before a crash are passed in and never requested again.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..quality.answer_checks import MAX_CHARS_PER_TOKEN
from ..backends.openai_http import ChatRequest, Completion, request_key
from ..config import GenerationConfig, LlmSelect
from ..prompts import template
from ..quality.length import count_words
from .attempts import StepFailed, ask
from .plan import Plan, PlanError, parse_json_plan, parse_text_plan, plan_schema
from ..pools.instructions import Instruction
from ..text import template_lang
from ..textclean import strip_control

Send = Callable[[ChatRequest], Awaitable[Completion]]
SaveStep = Callable[[dict], Awaitable[None]]

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
    steps: list[dict] = field(default_factory=list)


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
    def __init__(self, send: Send, generation: GenerationConfig, model: str, plan_model: str | None = None,
                 selector: LlmSelect | None = None):
        self.send = send
        self.gen = generation
        self.model = model
        self.plan_model = plan_model or model
        self.selector = selector

    async def run(self, instruction: Instruction, done: dict[int, dict], save_step: SaveStep) -> JobResult:
        """Run (or continue) the job; `done` maps step number (0 = plan) to its stored record."""
        records: list[dict] = []
        if self.selector is not None:
            records.append(await self._select(instruction, done, save_step))
        plan_record = done.get(0) or await self._step(0, self._plan_request(instruction), save_step,
                                                      self._plan_problem)
        records.append(plan_record)
        plan = self._parse(plan_record["text"])
        paragraphs: list[str] = []
        for index in range(len(plan.steps)):
            step = index + 1
            record = done.get(step)
            if record is None:
                request = self._write_request(instruction, plan, paragraphs, index)
                record = await self._step(step, request, save_step, None, trim=self.gen.paragraph_cutoff == "trim")
            records.append(record)
            paragraphs.append(clean_paragraph(record["text"]))
        if self.gen.extend_short:
            records += await self._extend(instruction, plan, paragraphs, done, save_step)
        return JobResult(plan=plan, paragraphs=paragraphs, steps=records)

    async def _extend(self, instruction: Instruction, plan: Plan, paragraphs: list[str], done: dict[int, dict],
                      save_step: SaveStep) -> list[dict]:
        """When the whole text is far below its plan, one extend call for each of the shortest paragraphs.

        Extension steps are numbered after the last paragraph and checkpointed like any step; which paragraphs
        they extend depends only on stored text, so a resumed job picks the same ones."""
        below = self.gen.extend_below
        written = [count_words(p) for p in paragraphs]
        if sum(written) >= below * plan.total_words:
            return []
        ratios = sorted((w / s.words, i) for i, (w, s) in enumerate(zip(written, plan.steps)) if w < below * s.words)
        chosen = sorted(i for _, i in ratios[: self.gen.extend_max_paragraphs])
        records = []
        for k, index in enumerate(chosen):
            step = len(plan.steps) + 1 + k
            record = done.get(step)
            if record is None:
                request = ChatRequest(
                    model=self.model,
                    prompt=extend_prompt(instruction, plan, paragraphs[index], index),
                    max_tokens=self.gen.paragraph_max_tokens,
                    temperature=self.gen.temperature,
                    extra_body=self.gen.extra_body,
                )
                record = await self._step(step, request, save_step, None, trim=self.gen.paragraph_cutoff == "trim",
                                          extends=index + 1)
            records.append(record)
            longer = clean_paragraph(record["text"])
            if count_words(longer) > written[index]:
                paragraphs[index] = longer
        return records

    async def _select(self, instruction: Instruction, done: dict[int, dict], save_step: SaveStep) -> dict:
        record = done.get(SELECT_STEP)
        if record is None:
            lang = template_lang(instruction.lang)
            request = ChatRequest(
                model=self.selector.model or self.model,
                prompt=TEMPLATES[f"select_{lang}"].replace("$INST$", instruction.prompt),
                max_tokens=self.selector.max_tokens,
                temperature=0.0,
            )
            record = await self._step(SELECT_STEP, request, save_step, None)
        answer = record["text"].strip().strip("*\"'“”").lower()
        if not answer.startswith(_YES):
            raise NotSelected(f"the selector answered {record['text'].strip()[:40]!r}")
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

    async def _step(self, step: int, request: ChatRequest, save_step: SaveStep, check, trim: bool = False,
                    **fields) -> dict:
        """One step: retry bad answers up to `step_attempts`, then store the good one durably before using it.
        With `trim`, a cut-off answer is kept up to its last complete sentence (finish_reason "trimmed")."""
        try:
            answer = await ask(self.send, request, self.gen.step_attempts, check, trim=trim,
                               max_chars=max(request.max_tokens, 256) * MAX_CHARS_PER_TOKEN)
        except StepFailed as exc:
            raise JobFailed(step, str(exc)) from None
        completion = answer.completion
        record = {
            "step": step,
            "text": completion.text,
            "finish_reason": completion.finish_reason,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "cached_tokens": completion.cached_tokens,
            "reasoning_tokens": completion.reasoning_tokens,
            "prompt_chars": len(request.prompt),
            "key": request_key(request.prompt),
            "attempts": answer.attempts,
            "seconds": answer.seconds,
            **fields,
        }
        await save_step(record)
        return record
