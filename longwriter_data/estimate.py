"""`estimate`: requests, tokens, cost and wall time of a recipe, predicted before a single request is sent.

The draw is replayed (it is deterministic), so the prediction uses the real instructions and their required
lengths. A job of W words is planned as P paragraphs of `paragraph_words`; step k's prompt carries the template,
the instruction, the plan and the k-1 paragraphs before it, which is why input tokens grow with P squared and why
prefix caching (everything but the newest paragraph is a prefix of the previous prompt) saves most of them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .agentwrite import TEMPLATES
from .backend import reasoning_model
from .config import BuildConfig, PricesConfig, load_config
from .errors import UserError
from .length import approx_tokens
from .pools import PreparedPools, draw

# Characters per word of written text: English words with their space and punctuation; one Han character.
_CHARS_PER_WORD = {"en": 5.9, "zh": 1.05}
_POINT = {"en": "a main point described in some detail, about a dozen words long in all", "zh": "对该段落主要内容的较为详细的描述"}


@dataclass
class Estimate:
    jobs: int = 0
    requests: int = 0
    input_tokens: float = 0
    cached_tokens: float = 0  # of the input, reusable as a prefix of the previous step's prompt
    output_tokens: float = 0
    job_seconds: float = 0  # the sum over jobs of their sequential request times

    def cost(self, prices: PricesConfig | None, caching: bool) -> float | None:
        if prices is None:
            return None
        return prices.cost(self.input_tokens, self.cached_tokens if caching else 0, self.output_tokens)


def _tokens_per_word(lang: str) -> float:
    sample = "x" * 59 if lang == "en" else "字" * 100 + "。" * 5
    return approx_tokens(sample) / (10 if lang == "en" else 100)


def add_job(total: Estimate, instruction_tokens: int, lang: str, words: int, paragraph_words: int,
            max_paragraphs: int, seconds_per_request: float, tokens_per_second: float) -> None:
    lang = "zh" if lang == "zh" else "en"
    paragraphs = max(1, min(max_paragraphs, round(words / paragraph_words)))
    per_paragraph = words / paragraphs * _tokens_per_word(lang)
    line = (f"段落1 - 主要内容：{_POINT[lang]} - 字数要求：500字" if lang == "zh"
            else f"Paragraph 1 - Main Point: {_POINT[lang]} - Word Count: 500 words")
    plan = paragraphs * approx_tokens(line)
    instruction = instruction_tokens
    write_fixed = approx_tokens(TEMPLATES[f"write_{lang}"]) + instruction + plan + approx_tokens(line)
    total.jobs += 1
    total.requests += 1 + paragraphs
    total.input_tokens += approx_tokens(TEMPLATES[f"plan_{lang}"]) + instruction
    total.input_tokens += paragraphs * write_fixed + per_paragraph * paragraphs * (paragraphs - 1) / 2
    # Step k shares with step k-1 all but the newest paragraph and the step line at the end.
    total.cached_tokens += (paragraphs - 1) * (write_fixed - approx_tokens(line)) + \
        per_paragraph * (paragraphs - 1) * (paragraphs - 2) / 2
    output = plan + paragraphs * per_paragraph
    total.output_tokens += output
    total.job_seconds += (1 + paragraphs) * seconds_per_request + output / tokens_per_second


def estimate(config: BuildConfig, acceptance: float = 0.85, default_words: int = 5000,
             paragraph_words: int | None = None, tokens_per_second: float = 50.0,
             seconds_per_request: float = 1.0) -> Estimate:
    """Replay the draw for the jobs the target needs at this acceptance rate and add up what they would cost."""
    wanted = math.ceil(config.target / acceptance)
    with PreparedPools(config.pools) as pools:
        instructions = draw(pools, config.seed, config.pools.inject_length, config.filters.near_duplicate_threshold)
        jobs = ((approx_tokens(i.prompt), i.lang, i.required.target if i.required else None) for i in instructions)
        return estimate_jobs(config, itertools.islice(jobs, wanted), default_words, paragraph_words,
                             tokens_per_second, seconds_per_request)


def estimate_jobs(config: BuildConfig, jobs: Iterable[tuple[int, str, int | None]], default_words: int = 5000,
                  paragraph_words: int | None = None, tokens_per_second: float = 50.0,
                  seconds_per_request: float = 1.0) -> Estimate:
    """The prediction for these jobs (instruction tokens, language, required words or None): for the draw before a
    build, and for the jobs a run finished, which `inspect` sets beside what they cost."""
    generation = config.generation
    paragraph_words = paragraph_words or sum(generation.paragraph_word_range) // 2
    total = Estimate()
    for instruction_tokens, lang, words in jobs:
        add_job(total, instruction_tokens, lang, words or default_words, paragraph_words, generation.max_paragraphs,
                seconds_per_request, tokens_per_second)
    return total


def wall_time_s(total: Estimate, config: BuildConfig) -> dict[str, float]:
    """Seconds under each limit; the largest one is the prediction."""
    engine = config.engine
    bounds = {"concurrency (max_jobs)": total.job_seconds / engine.max_jobs}
    if engine.requests_per_minute:
        bounds["requests_per_minute"] = total.requests / engine.requests_per_minute * 60
    if engine.tokens_per_minute:
        bounds["tokens_per_minute"] = (total.input_tokens + total.output_tokens) / engine.tokens_per_minute * 60
    return bounds


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def render(config: BuildConfig, total: Estimate, acceptance: float) -> str:
    def money(value: float | None) -> str:
        return "n/a (add prices: to the recipe)" if value is None else f"${value:,.2f}"

    bounds = wall_time_s(total, config)
    limit, seconds = max(bounds.items(), key=lambda item: item[1])
    lines = [
        f"Estimate for {config.name}: target {config.target} accepted at {acceptance:.0%} acceptance "
        f"-> {total.jobs} jobs" + (" (the pools run dry first)" if total.jobs < config.target / acceptance else ""),
        f"  requests        {total.requests:>14,}",
        f"  input tokens    {total.input_tokens:>14,.0f}   (with prefix caching, {total.cached_tokens:,.0f} "
        f"of them cached: {total.cached_tokens / max(total.input_tokens, 1):.0%})",
        f"  output tokens   {total.output_tokens:>14,.0f}",
        f"  cost            {money(total.cost(config.prices, caching=False))} without prefix caching, "
        f"{money(total.cost(config.prices, caching=True))} with it",
        f"  wall time       {_duration(seconds):>14}   (bound by {limit}; "
        + ", ".join(f"{name} {_duration(value)}" for name, value in bounds.items()) + ")",
    ]
    models = {config.backend.model, config.backend.plan_model or config.backend.model}
    if any(reasoning_model(model) for model in models):
        lines.append("  note: reasoning models also bill hidden reasoning tokens as output, which this does not "
                     "predict; `inspect` counts them once a build has run")
    return "\n".join(lines)


def estimate_command(config_path: str | Path, acceptance: float, default_words: int, paragraph_words: int | None,
                     tokens_per_second: float) -> str:
    if not 0 < acceptance <= 1:
        raise UserError(f"--acceptance must be in (0, 1], got {acceptance}.")
    config = load_config(config_path)
    total = estimate(config, acceptance, default_words, paragraph_words, tokens_per_second)
    return render(config, total, acceptance)
