"""`estimate`: requests, tokens, cost and wall time of a recipe, predicted before a single request is sent.

The draw is replayed (it is deterministic), so the prediction uses the real instructions and their required
lengths; what each job costs is generate/costs.py's model of AgentWrite's prompts.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path

from .backends.factory import backend_class
from .config import BuildConfig, load_config
from .errors import UserError
from .generate.costs import Estimate, estimate_jobs
from .pools.instructions import DrawSettings, PreparedPools, draw
from .pools.synthesis import MAX_CONCURRENCY, SOURCE_NAME, Synthesis
from .quality.dedupe import SignatureCache
from .quality.length import approx_tokens
from .store import RunStore
from .text import plural


def estimate(config: BuildConfig, acceptance: float = 0.85, default_words: int = 5000,
             paragraph_words: int | None = None, tokens_per_second: float = 50.0,
             seconds_per_request: float = 1.0) -> Estimate:
    """Replay the draw for the jobs the target needs at this acceptance rate and add up what they would cost,
    with the instructions synthesis is still to write (priced at `default_words`) and what writing them costs.
    Each instruction is generation.samples_per_instruction jobs."""
    wanted = math.ceil(config.target / acceptance)
    samples = config.generation.samples_per_instruction
    needed = math.ceil(wanted / samples)  # instructions
    saved = RunStore(config.run_dir).saved_config()  # a damaged or older run directory is named first
    minhashes = SignatureCache(None)  # in memory
    with PreparedPools(config.pools) as pools:
        pending, synthesis = 0, None
        if config.pools.synthesize:
            synthesis = Synthesis.of(config, pools, minhashes, saved)
            synthesis.add_to_pools()  # what the run directory already holds
            pending = synthesis.count - len(synthesis.kept)
        sources: Counter = Counter()
        jobs = []
        instructions = draw(pools, DrawSettings.of(config), minhashes=minhashes)
        for instruction in itertools.islice(instructions, needed):
            sources[instruction.pool] += 1
            jobs += [(approx_tokens(instruction.prompt), instruction.lang,
                      instruction.required.target if instruction.required else None)] * samples
        if pending:  # not written yet: languages in turn, priced like the pool's instructions, at default_words
            examples = [approx_tokens(record["prompt"]) for record in itertools.islice(pools.records(), 100)]
            per = sum(examples) // len(examples) if examples else 40
            more = min(pending, needed - sum(sources.values()))
            sources[SOURCE_NAME] += more
            jobs += [(per, synthesis.languages[k % len(synthesis.languages)], None)
                     for k in range(more) for _ in range(samples)]
        total = estimate_jobs(config, jobs, default_words, paragraph_words, tokens_per_second, seconds_per_request)
        total.wanted_jobs, total.sources, total.to_synthesize = wanted, sources, pending
        total.warnings = pools.warnings()
        if pending:
            total.synthesis = _synthesis_cost(synthesis, pending, per, tokens_per_second, seconds_per_request)
        return total


def _synthesis_cost(synthesis: Synthesis, pending: int, instruction_tokens: int, tokens_per_second: float,
                    seconds_per_request: float) -> Estimate:
    """The requests that write `pending` more instructions, if each keeps all it asks for (duplicates cost more)."""
    per_request = synthesis.synthesize.per_request
    first = len(synthesis.records)
    total = Estimate(requests=math.ceil(pending / per_request))
    for k in range(first, first + total.requests):
        request, _, _ = synthesis.request(k)
        total.input_tokens += approx_tokens(request.prompt)
        total.output_tokens += per_request * instruction_tokens
    total.job_seconds = total.requests * seconds_per_request + total.output_tokens / tokens_per_second
    total.job_seconds /= MAX_CONCURRENCY
    return total


def wall_time_s(total: Estimate, config: BuildConfig) -> dict[str, float]:
    """Seconds under each limit (named as the recipe's keys); the largest one is the prediction."""
    engine = config.engine
    # Fewer jobs than max_jobs all run at once: the time of one job, not a share of max_jobs' worth.
    bounds = {"max_jobs": total.job_seconds / min(engine.max_jobs, max(total.jobs, 1))}
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
    samples = config.generation.samples_per_instruction
    if available * samples < total.wanted_jobs:
        expected = int(available * samples * acceptance)
        each = f" ({samples} samples each)" if samples > 1 else ""
        lines.append(f"  Warning: the pools hold {plural(available, 'instruction')}, not the "
                     f"{math.ceil(total.wanted_jobs / samples):,} the target needs{each}: "
                     f"about {expected:,} accepted samples, "
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
        (f"  cost            {money(total.cost(config.prices, caching=False))} without prefix caching, "
         f"{money(total.cost(config.prices, caching=True))} with it"
         + (f", plus {money(synthesis.cost(config.prices, caching=False))} for synthesis" if synthesis else "")
         if config.prices else f"  cost            {money(None)}"),
        f"  wall time       {_duration(seconds):>14}   ("
        + (f"all {plural(total.jobs, 'job')} at once" if limit == "max_jobs" and total.jobs <= setting
           else f"bound by engine.{limit} = {setting:,g}")
        + (f"; {', '.join(others)}" if others else "") + ")",
    ]
    if synthesis is not None:
        lines.append(f"  synthesis       {plural(synthesis.requests, 'request')} or more before the first job "
                     f"({synthesis.input_tokens:,.0f} input and {synthesis.output_tokens:,.0f} output tokens, "
                     f"{money(synthesis.cost(config.prices, caching=False))}, {_duration(synthesis.job_seconds)})")
    models = {config.backend.model, config.backend.plan_model or config.backend.model}
    if any(map(backend_class(config.backend.kind).reasoning, models)):
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
