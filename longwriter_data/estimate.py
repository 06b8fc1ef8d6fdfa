"""`estimate`: requests, tokens, cost and wall time of a recipe, predicted before a single request is sent.

The draw is replayed (it is deterministic), so the prediction uses the real instructions and their required
lengths. A job of W words is planned as P paragraphs of `paragraph_words`; step k's prompt carries the template,
the instruction, the plan and the k-1 paragraphs before it, which is why input tokens grow with P squared and why
prefix caching (everything but the newest paragraph is a prefix of the previous prompt) saves most of them.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .generate.agentwrite import TEMPLATES
from .backends.openai_http import reasoning_model
from .config import BuildConfig, PricesConfig, load_config
from .quality.dedupe import SignatureCache
from .errors import UserError
from .quality.judge import read_template
from .quality.length import approx_tokens
from .pools.instructions import PreparedPools, draw
from .publish.report import plural
from .store import RunStore
from .pools.synthesis import MAX_CONCURRENCY, SOURCE_NAME, Synthesis, synthesis_count

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


def estimate(config: BuildConfig, acceptance: float = 0.85, default_words: int = 5000,
             paragraph_words: int | None = None, tokens_per_second: float = 50.0,
             seconds_per_request: float = 1.0) -> Estimate:
    """Replay the draw for the jobs the target needs at this acceptance rate and add up what they would cost,
    with the instructions synthesis is still to write (priced at `default_words`) and what writing them costs."""
    wanted = math.ceil(config.target / acceptance)
    minhashes = SignatureCache(None, RunStore(config.run_dir).shingle_hash())  # as the run hashes, in memory
    with PreparedPools(config.pools) as pools:
        pending, synthesis = 0, None
        if config.pools.synthesize:
            synthesis = Synthesis(config, pools, minhashes, synthesis_count(
                config, pools, minhashes, RunStore(config.run_dir).saved_config()))
            synthesis.add_to_pools()  # what the run directory already holds
            pending = synthesis.count - len(synthesis.kept)
        sources: Counter = Counter()
        jobs = []
        instructions = draw(pools, config.seed, config.pools.inject_length, config.filters.near_duplicate_threshold,
                            None, minhashes)
        for instruction in itertools.islice(instructions, wanted):
            sources[instruction.pool] += 1
            jobs.append((approx_tokens(instruction.prompt), instruction.lang,
                         instruction.required.target if instruction.required else None))
        if pending:  # not written yet: languages in turn, priced like the pool's instructions, at default_words
            examples = [approx_tokens(record["prompt"]) for record in itertools.islice(pools.records(), 100)]
            per = sum(examples) // len(examples) if examples else 40
            more = min(pending, wanted - len(jobs))
            sources[SOURCE_NAME] += more
            jobs += [(per, synthesis.languages[k % len(synthesis.languages)], None) for k in range(more)]
        total = estimate_jobs(config, jobs, default_words, paragraph_words, tokens_per_second, seconds_per_request)
        total.wanted_jobs, total.sources, total.to_synthesize = wanted, sources, pending
        total.warnings = pools.warnings()
        if pending:
            total.synthesis = _synthesis_cost(synthesis, pending, per, tokens_per_second, seconds_per_request)
        return total


def _synthesis_cost(synthesis: Synthesis, pending: int, instruction_tokens: int, tokens_per_second: float,
                    seconds_per_request: float) -> Estimate:
    """The requests that write `pending` more instructions, if each keeps all it asks for (duplicates cost more)."""
    per_request = synthesis.settings.per_request
    first = len(synthesis.records)
    total = Estimate(requests=math.ceil(pending / per_request))
    for k in range(first, first + total.requests):
        request, _, _ = synthesis.request(k)
        total.input_tokens += approx_tokens(request.prompt)
        total.output_tokens += per_request * instruction_tokens
    total.job_seconds = total.requests * seconds_per_request + total.output_tokens / tokens_per_second
    total.job_seconds /= MAX_CONCURRENCY
    return total


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


def wall_time_s(total: Estimate, config: BuildConfig) -> dict[str, float]:
    """Seconds under each limit (named as the recipe's keys); the largest one is the prediction."""
    engine = config.engine
    bounds = {"max_jobs": total.job_seconds / engine.max_jobs}
    if engine.requests_per_minute:
        bounds["requests_per_minute"] = total.requests / engine.requests_per_minute * 60
    if engine.tokens_per_minute:
        bounds["tokens_per_minute"] = (total.input_tokens + total.output_tokens) / engine.tokens_per_minute * 60
    return bounds


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _supply(config: BuildConfig, total: Estimate, acceptance: float) -> list[str]:
    """Where the jobs' instructions come from, and what the target asks that the pools cannot give."""
    available = sum(total.sources.values())
    listing = ", ".join(f"{name} {count:,}" for name, count in total.sources.most_common())
    lines = [f"  instructions    {available:>14,}   drawn from {listing or 'nothing'}"
             + (f" ({total.to_synthesize:,} still to be synthesized)" if total.to_synthesize else "")]
    if available < total.wanted_jobs:
        expected = int(available * acceptance)
        lines.append(f"  Warning: the pools hold {plural(available, 'instruction')}, not the "
                     f"{total.wanted_jobs:,} the target needs: about {expected:,} accepted samples, "
                     f"{config.target - expected:,} short of {config.target:,}. Add sources, raise a source's "
                     f"max_instructions, or set pools.synthesize (count: auto makes up the rest).")
    return lines


def render(config: BuildConfig, total: Estimate, acceptance: float) -> str:
    def money(value: float | None) -> str:
        return "n/a (add prices: to the recipe)" if value is None else f"${value:,.2f}"

    bounds = wall_time_s(total, config)
    limit, seconds = max(bounds.items(), key=lambda item: item[1])
    setting = getattr(config.engine, limit)
    others = [f"{name} alone {_duration(value)}" for name, value in bounds.items() if name != limit]
    synthesis = total.synthesis
    lines = [
        f"Estimate for {config.name}: target {config.target:,} accepted at {acceptance:.0%} acceptance "
        f"-> {plural(total.jobs, 'job')}"
        + (f" (the pools run dry before the {total.wanted_jobs:,} wanted)" if total.jobs < total.wanted_jobs else ""),
        *(f"  {warning}" for warning in total.warnings),
        *_supply(config, total, acceptance),
        f"  requests        {total.requests:>14,}",
        f"  input tokens    {total.input_tokens:>14,.0f}   (with prefix caching, {total.cached_tokens:,.0f} "
        f"of them cached: {total.cached_tokens / max(total.input_tokens, 1):.0%})",
        f"  output tokens   {total.output_tokens:>14,.0f}",
        f"  cost            {money(total.cost(config.prices, caching=False))} without prefix caching, "
        f"{money(total.cost(config.prices, caching=True))} with it"
        + (f", plus {money(synthesis.cost(config.prices, caching=False))} for synthesis"
           if synthesis and config.prices else ""),
        f"  wall time       {_duration(seconds):>14}   (bound by engine.{limit} = {setting:,g}"
        + (f"; {', '.join(others)}" if others else "") + ")",
    ]
    if synthesis is not None:
        lines.append(f"  synthesis       {plural(synthesis.requests, 'request')} or more before the first job "
                     f"({synthesis.input_tokens:,.0f} input and {synthesis.output_tokens:,.0f} output tokens, "
                     f"{money(synthesis.cost(config.prices, caching=False))}, {_duration(synthesis.job_seconds)})")
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
