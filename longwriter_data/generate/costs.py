"""What AgentWrite jobs cost in requests, tokens and seconds, predicted from their instructions and lengths: for
`estimate` before a build, and for `inspect` beside what a finished run spent.

A job of W words is planned as P paragraphs of `paragraph_words`; step k's prompt carries the template, the
instruction, the plan and the k-1 paragraphs before it, which is why input tokens grow with P squared and why prefix
caching (everything but the newest paragraph is a prefix of the previous prompt) saves most of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..config import BuildConfig, PricesConfig
from ..prompts import template
from ..quality.judge import read_template
from ..quality.length import approx_tokens
from ..text import template_lang
from .plan import Plan, PlanStep

_POINT = {"en": "a main point described in some detail, about a dozen words long in all",
          "zh": "对该段落主要内容的较为详细的描述"}


@dataclass
class Estimate:
    jobs: int = 0
    requests: int = 0
    input_tokens: float = 0
    cached_tokens: float = 0  # of the input, reusable as a prefix of the previous step's prompt
    output_tokens: float = 0
    job_seconds: float = 0  # the sum over jobs of their sequential request times
    wanted_jobs: int = 0  # target / acceptance
    sources: Counter = field(default_factory=Counter)  # instructions available per source, synthesized included
    to_synthesize: int = 0  # of them, still to be written by pools.synthesize
    synthesis: Estimate | None = None  # what writing them costs (requests, tokens, seconds at its concurrency)
    warnings: list[str] = field(default_factory=list)  # Hub sources that could not be read

    def cost(self, prices: PricesConfig | None, caching: bool) -> float | None:
        if prices is None:
            return None
        return prices.cost(self.input_tokens, self.cached_tokens if caching else 0, self.output_tokens)


def _tokens_per_word(lang: str) -> float:
    sample = "x" * 59 if lang == "en" else "字" * 100 + "。" * 5
    return approx_tokens(sample) / (10 if lang == "en" else 100)


def add_job(total: Estimate, instruction_tokens: int, lang: str, words: int, paragraph_words: int,
            max_paragraphs: int, seconds_per_request: float, tokens_per_second: float) -> None:
    lang = template_lang(lang)
    paragraphs = max(1, min(max_paragraphs, round(words / paragraph_words)))
    per_paragraph = words / paragraphs * _tokens_per_word(lang)
    line = Plan((PlanStep(_POINT[lang], 500),)).step_line(0, lang)  # a typical plan line
    plan = paragraphs * approx_tokens(line)
    instruction = instruction_tokens
    write_fixed = approx_tokens(template(f"write_{lang}")) + instruction + plan + approx_tokens(line)
    total.jobs += 1
    total.requests += 1 + paragraphs
    total.input_tokens += approx_tokens(template(f"plan_{lang}")) + instruction
    total.input_tokens += paragraphs * write_fixed + per_paragraph * paragraphs * (paragraphs - 1) / 2
    # Step k shares with step k-1 all but the newest paragraph and the step line at the end.
    total.cached_tokens += (paragraphs - 1) * (write_fixed - approx_tokens(line)) + \
        per_paragraph * (paragraphs - 1) * (paragraphs - 2) / 2
    output = plan + paragraphs * per_paragraph
    total.output_tokens += output
    total.job_seconds += (1 + paragraphs) * seconds_per_request + output / tokens_per_second


JUDGE_ANSWER_TOKENS = 200  # a judge's answer: a few sentences of analysis and six scores


def add_judge_call(total: Estimate, template_tokens: int, instruction_tokens: int, answer_tokens: float,
                   max_input_tokens: int | None, seconds_per_request: float, tokens_per_second: float) -> None:
    """One quality-judge call (quality.judge): the template, the instruction and the answer (or its excerpt) in;
    a short analysis and the scores out. Counted for every job: an upper bound, as only samples that pass the
    cheap filters are judged."""
    prompt = template_tokens + instruction_tokens + answer_tokens
    total.requests += 1
    total.input_tokens += prompt if max_input_tokens is None else min(prompt, max_input_tokens)
    total.output_tokens += JUDGE_ANSWER_TOKENS
    total.job_seconds += seconds_per_request + JUDGE_ANSWER_TOKENS / tokens_per_second


def estimate_jobs(config: BuildConfig, jobs: Iterable[tuple[int, str, int | None]], default_words: int = 5000,
                  paragraph_words: int | None = None, tokens_per_second: float = 50.0,
                  seconds_per_request: float = 1.0) -> Estimate:
    """The prediction for these jobs (instruction tokens, language, required words or None): for the draw before a
    build, and for the jobs a run finished, which `inspect` sets beside what they cost."""
    generation = config.generation
    paragraph_words = paragraph_words or sum(generation.paragraph_word_range) // 2
    total = Estimate()
    judge = config.quality.judge
    template_tokens = approx_tokens(read_template(judge.prompt_file)) if judge else 0
    for instruction_tokens, lang, words in jobs:
        written = total.output_tokens
        add_job(total, instruction_tokens, lang, words or default_words, paragraph_words, generation.max_paragraphs,
                seconds_per_request, tokens_per_second)
        if judge:
            add_judge_call(total, template_tokens, instruction_tokens, total.output_tokens - written,
                           judge.max_input_tokens, seconds_per_request, tokens_per_second)
    return total
