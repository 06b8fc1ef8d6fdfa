"""AgentWrite plans: parsed from the paper's free text or from a JSON answer into one internal form."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass

# "Word Count: about 400 words", "字数要求：400字", "(300-400 words)": the label is optional, the unit is not.
_COUNT = re.compile(
    r"(?:word\s*count|字数要求|字数)?\s*:?\s*(?:about|around|approximately|approx\.?|约|大约)?\s*"
    r"(\d[\d,]*)\s*(?:(?:-|~|to|至|到)\s*(\d[\d,]*)\s*)?(?:words?\b|字)",
    re.IGNORECASE,
)
_POINT_LABEL = re.compile(r"(?:main\s*points?|主要内容|要点)\s*:", re.IGNORECASE)
_COUNT_LABEL = re.compile(r"(?:word\s*count|字数要求|字数)\s*:", re.IGNORECASE)
_HEADER = re.compile(
    r"^(?:[-*•+>#]+\s*)*(?:(?:paragraph|section|part|step)\s*\d+|段落\s*\d+|第\s*[\d一二三四五六七八九十百]+\s*[段部节]|\d+\s*[.)、])\s*[-–—:.]?\s*",
    re.IGNORECASE,
)
_SEPARATORS = " \t-–—:|,;.*•"


class PlanError(ValueError):
    """The model's plan has no usable steps or too many: the plan step is retried."""


@dataclass(frozen=True)
class PlanStep:
    main_point: str
    words: int


@dataclass(frozen=True)
class Plan:
    steps: tuple[PlanStep, ...]

    @property
    def total_words(self) -> int:
        return sum(step.words for step in self.steps)

    def step_line(self, index: int, lang: str) -> str:
        """The canonical one-line form of step `index` (0-based), as the write prompt names it."""
        step = self.steps[index]
        if lang == "zh":
            return f"段落{index + 1} - 主要内容：{step.main_point} - 字数要求：{step.words}字"
        return f"Paragraph {index + 1} - Main Point: {step.main_point} - Word Count: {step.words} words"

    def render(self, lang: str) -> str:
        """The whole plan in canonical form: text and JSON plans give the same write prompts."""
        return "\n".join(self.step_line(i, lang) for i in range(len(self.steps)))


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def parse_text_plan(text: str, max_steps: int) -> Plan:
    """Parse the paper's `Paragraph N - Main Point: ... - Word Count: N words` lines, tolerating markdown and
    full-width punctuation, numbering variants, and a main point and its count on separate lines."""
    steps: list[PlanStep] = []
    pending: str | None = None
    for raw_line in unicodedata.normalize("NFKC", text).splitlines():
        body = _HEADER.sub("", raw_line.replace("**", "").replace("__", "").strip(), count=1)
        if not body:
            continue
        point_label = _POINT_LABEL.search(body)
        if point_label:
            body = body[point_label.end():]
        counts = list(_COUNT.finditer(body))
        if counts:
            last = counts[-1]
            low = _number(last.group(1))
            words = (low + _number(last.group(2))) // 2 if last.group(2) else low
            count_label = _COUNT_LABEL.search(body)
            point = body[: count_label.start() if count_label else last.start()].strip(_SEPARATORS + "(（")
            point = point or pending or ""
            if point:
                steps.append(PlanStep(point, words))
            pending = None
        elif point_label:
            pending = body.strip(_SEPARATORS) or None
    return _checked(steps, max_steps)


def parse_json_plan(text: str, max_steps: int) -> Plan:
    """Parse `{"paragraphs": [{"main_point": ..., "word_count": N}]}`, as asked for with a JSON schema."""
    cleaned = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        data = json.loads(cleaned)
    except json.JSONDecodeError as exc:
        raise PlanError(f"plan is not valid JSON ({exc.msg})") from None
    items = data.get("paragraphs") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise PlanError("plan JSON has no 'paragraphs' list")
    steps = []
    for item in items:
        if not isinstance(item, dict):
            continue
        point, words = str(item.get("main_point", "")).strip(), item.get("word_count")
        if isinstance(words, str) and words.strip().isdigit():
            words = int(words)
        if point and isinstance(words, int) and words > 0:
            steps.append(PlanStep(point, words))
    return _checked(steps, max_steps)


def _checked(steps: list[PlanStep], max_steps: int) -> Plan:
    if not steps:
        raise PlanError("plan has no steps with a main point and a word count")
    if len(steps) > max_steps:
        raise PlanError(f"plan has {len(steps)} steps, more than the limit of {max_steps}")
    return Plan(tuple(steps))


def plan_schema(min_steps: int, max_steps: int, word_range: tuple[int, int] = (200, 1000)) -> dict:
    """The JSON schema for `plan_format: json` (OpenAI, vLLM, SGLang and llama.cpp turn it into a grammar).

    Paragraph word counts are an enum (steps of 50 within `word_range`) because grammar engines, llama.cpp's
    among them, enforce enums but not integer bounds."""
    low, high = word_range
    choices = sorted({*range(low, high + 1, 50), high})
    return {
        "type": "object",
        "properties": {
            "paragraphs": {
                "type": "array",
                "minItems": min_steps,
                "maxItems": max_steps,
                "items": {
                    "type": "object",
                    "properties": {
                        "main_point": {"type": "string"},
                        "word_count": {"type": "integer", "enum": choices},
                    },
                    "required": ["main_point", "word_count"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["paragraphs"],
        "additionalProperties": False,
    }
