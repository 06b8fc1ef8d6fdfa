"""The quality judge: an LLM grades an answer on LongBench-Write's six dimensions, 1-5 each, and
S_q = mean over the dimensions of (score - 1) * 25, so 0-100.

Pure: it builds the prompt, reads the answer and scores it; whoever sends the request (a build's job step, the
`judge` command, later `evaluate` and preference pairs) decides how, and what to store.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..prompts import template
from .length import approx_tokens, count_words

DIMENSIONS = ("Relevance", "Accuracy", "Coherence", "Clarity", "Breadth and Depth", "Reading Experience")
# Export columns, one per dimension: quality_relevance, ..., quality_breadth_and_depth, quality_reading_experience.
COLUMNS = {dim: "quality_" + dim.lower().replace(" ", "_") for dim in DIMENSIONS}
PLACEHOLDERS = ("$INST$", "$RESPONSE$")  # a template must hold both; $NOTE$ (where an excerpt is announced) is optional
EXCERPT_NOTE = ("\nThe answer is too long to show whole: only its beginning and its end are shown, and the middle, "
                "marked [... N words left out ...], is left out. Grade what is shown; the gap itself is no flaw of "
                "the answer.\n")
_PLACEHOLDER = re.compile(r"\$(NOTE|INST|RESPONSE)\$")
_MIN_EXCERPT_TOKENS = 200  # an excerpt never shows less than this, however small max_input_tokens is


class BadAnswer(ValueError):
    """A judge answer that cannot be used: no JSON object, a dimension missing, a score that is not 1-5.
    It is retried like any bad answer; no score is ever made up for it."""


@dataclass(frozen=True)
class Judgement:
    scores: dict[str, int]  # dimension -> 1..5, every one of DIMENSIONS
    analysis: str = ""

    @property
    def score(self) -> float:
        """S_q, 0-100."""
        return quality_score(self.scores)


@dataclass(frozen=True)
class JudgePrompt:
    text: str
    excerpt: bool  # the answer was too long for max_input_tokens: its head and tail are shown, the middle left out


def quality_score(scores: dict[str, int]) -> float:
    """LongBench-Write's S_q: the mean over the six dimensions of (score - 1) * 25."""
    return round(sum((scores[dim] - 1) * 25 for dim in DIMENSIONS) / len(DIMENSIONS), 2)


def read_template(path: Path | None) -> str:
    """The packaged template, or a user's (checked for its placeholders by the config)."""
    return template("judge_en") if path is None else Path(path).read_text(encoding="utf-8")


def missing_placeholders(template: str) -> list[str]:
    return [name for name in PLACEHOLDERS if name not in template]


def judge_key(model: str, template: str, settings: dict | None = None) -> str:
    """Who judged: the model and a hash of the prompt template and the request settings (temperature,
    max_tokens, ...), so scores of two judges never mix and a judge asked otherwise judges again."""
    digest = hashlib.blake2b(template.encode(), digest_size=4)
    if settings:
        digest.update(json.dumps(settings, sort_keys=True).encode())
    return f"{model}@{digest.hexdigest()}"


def answer_schema() -> dict:
    """The answer's JSON schema (structured output): a short analysis first, then one integer 1-5 per dimension."""
    score = {"type": "integer", "enum": [1, 2, 3, 4, 5]}
    return {
        "type": "object",
        "properties": {
            "analysis": {"type": "string"},
            "scores": {"type": "object", "properties": {dim: score for dim in DIMENSIONS},
                       "required": list(DIMENSIONS), "additionalProperties": False},
        },
        "required": ["analysis", "scores"],
        "additionalProperties": False,
    }


def build_prompt(template: str, instruction: str, response: str, max_input_tokens: int | None) -> JudgePrompt:
    """The judge prompt. An answer that would push the prompt past `max_input_tokens` is shown as its beginning and
    its end, with the middle marked as left out and a note saying so: coherence across the gap goes unseen, but
    the opening, the ending and the style are judged, and no sample goes unjudged for being long."""
    excerpt = False
    if max_input_tokens is not None:
        rest = approx_tokens(template) + approx_tokens(instruction) + approx_tokens(EXCERPT_NOTE)
        if rest + approx_tokens(response) > max_input_tokens:
            response, excerpt = _excerpt(response, max(_MIN_EXCERPT_TOKENS, max_input_tokens - rest)), True
    values = {"NOTE": EXCERPT_NOTE if excerpt else "", "INST": instruction, "RESPONSE": response}
    text = _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)  # one pass: "$INST$" in an answer stays
    return JudgePrompt(text=text, excerpt=excerpt)


def _excerpt(text: str, tokens: int) -> str:
    """The first and last halves of a `tokens` budget of `text`, cut at whitespace, with the gap marked."""
    chars = int(tokens * len(text) / approx_tokens(text))
    head_end, tail_start = chars // 2, len(text) - (chars - chars // 2)
    space = text.rfind(" ", 0, head_end)
    head_end = space if space > head_end // 2 else head_end  # CJK text has no spaces: cut anywhere
    space = text.find(" ", tail_start)
    tail_start = space + 1 if 0 <= space < tail_start + 200 else tail_start
    left_out = count_words(text[head_end:tail_start])
    return f"{text[:head_end].rstrip()}\n\n[... {left_out:,} words left out ...]\n\n{text[tail_start:].lstrip()}"


_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S | re.I)
_DIGIT = re.compile(r"^\s*([1-5])\s*(?:/\s*5\s*)?$")


def _normal(name: str) -> str:
    """'Breadth and Depth', 'breadth_and_depth', 'Breadth & Depth' -> 'breadthdepth'."""
    return re.sub(r"[^a-z]", "", name.lower()).replace("and", "")


_DIMENSION_OF = {_normal(dim): dim for dim in DIMENSIONS}


def parse_answer(text: str) -> Judgement:
    """The judgement in an answer: a bare JSON object, one in a ``` fence, or one inside chatty text; the scores
    under "scores" or at the top level. Raises BadAnswer when no object holds all six scores as integers 1-5."""
    candidates = [match.group(1) for match in _FENCE.finditer(text)] + [text]
    problem = "no JSON object in the answer"
    for candidate in candidates:
        for found in _objects(candidate):
            scores = found.get("scores") if isinstance(found.get("scores"), dict) else found
            named = {_DIMENSION_OF.get(_normal(str(key))): value for key, value in scores.items()}
            if not any(dim in named for dim in DIMENSIONS):
                continue
            missing = [dim for dim in DIMENSIONS if dim not in named]
            if missing:
                raise BadAnswer(f"the answer has no score for {', '.join(missing)}")
            parsed = {dim: _score(dim, named[dim]) for dim in DIMENSIONS}
            analysis = next((v for k, v in found.items() if _normal(str(k)) == "analysis" and isinstance(v, str)), "")
            return Judgement(scores=parsed, analysis=analysis.strip())
        problem = "no JSON object with the six scores in the answer"
    raise BadAnswer(problem)


def _objects(text: str):
    """Every JSON object that starts at a '{' of the text, outermost first."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start >= 0:
        try:
            found, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(found, dict):
            yield found
            yield from (value for value in found.values() if isinstance(value, dict))
        start = text.find("{", end)


def _score(dim: str, value) -> int:
    if isinstance(value, bool):
        raise BadAnswer(f"{dim}: {value!r} is not a score from 1 to 5")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and (match := _DIGIT.match(value)):
        value = int(match.group(1))
    if not isinstance(value, int) or not 1 <= value <= 5:
        raise BadAnswer(f"{dim}: {value!r} is not a score from 1 to 5")
    return value


def quality_problem(judgement: Judgement, min_score: float | None, min_dimension: dict[str, int]) -> str | None:
    """Why a judged sample falls below the recipe's bar (the rejection's detail), or None when it passes."""
    if min_score is not None and judgement.score < min_score:
        return f"S_q {judgement.score:.1f} < {min_score:g}"
    low = [f"{dim} {judgement.scores[dim]} < {least}" for dim, least in min_dimension.items()
           if judgement.scores[dim] < least]
    return "; ".join(low) or None
