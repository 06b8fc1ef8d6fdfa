"""`pools`: what a recipe would draw, before anything is generated: the mix and what selection dropped."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from ..config import load_config
from ..quality.dedupe import SignatureCache
from ..quality.length import BANDS, band_of
from .instructions import DrawSettings, PreparedPools, draw
from ..text import plural
from ..store import RunStore, synthesized_path
from .synthesis import Synthesis

DEFAULT_ACCEPTANCE = 0.85  # share of jobs accepted, when the recipe does not say (estimate --acceptance's default)

def band(words: int | None) -> str:
    if words is None:
        return "none"
    return BANDS[band_of(words)].short


def _table(title: str, counts: Counter, total: int) -> list[str]:
    lines = [title]
    width = max((len(str(key)) for key in counts), default=0)
    for key, count in counts.most_common():
        lines.append(f"  {str(key):<{width}}  {count:>7}  {count / max(total, 1):6.1%}")
    return lines


def preview_pools(config_path: str | Path, samples: int = 5, limit: int | None = None) -> str:
    """The mix of the first `limit` draws (all of them by default), per source, language, type and length band."""
    config = load_config(config_path)
    saved = RunStore(config.run_dir).saved_config()  # a damaged or older run directory is named first
    minhashes = SignatureCache(None)  # in memory: a preview writes nothing
    with PreparedPools(config.pools) as pools:
        notes = pools.warnings()
        synthesize, pending = config.pools.synthesize, 0
        if synthesize:  # only what the run directory already holds: a preview never calls the backend
            synthesis = Synthesis.of(config, pools, minhashes, saved)
            count = synthesis.count
            added = synthesis.add_to_pools()
            pending = count - len(synthesis.kept)
            path = synthesized_path(config.run_dir)
            auto = " (count: auto, the sources' shortfall)" if synthesize.count == "auto" else ""
            if synthesis.records:
                notes.append(f"Including {plural(added, 'synthesized instruction')} from {path} "
                             f"({count:,} wanted{auto}).")
            elif count:
                notes.append(f"pools.synthesize: the build will first have the backend write {count:,} more "
                             f"instructions{auto}; none in {path} yet, so they are not in the tables below.")
            else:
                jobs = math.ceil(config.target / synthesize.acceptance)
                notes.append(f"pools.synthesize: nothing to write: the sources hold the "
                             f"{math.ceil(jobs / config.generation.samples_per_instruction):,} instructions that "
                             f"target / acceptance ({synthesize.acceptance:.0%}) asks for.")
        skipped: Counter = Counter()
        drawn = []
        by_source, by_lang, by_type, by_band = Counter(), Counter(), Counter(), Counter()
        for instruction in draw(pools, DrawSettings.of(config), skipped=skipped, minhashes=minhashes):
            by_source[instruction.pool] += 1
            by_lang[instruction.lang] += 1
            by_type[instruction.type or "(none)"] += 1
            by_band[band(instruction.required.target if instruction.required else None)] += 1
            if len(drawn) < samples:
                drawn.append(instruction)
            if limit and sum(by_lang.values()) >= limit:
                break
        total = sum(by_lang.values())
        lines = [f"{config.name}: {plural(total, 'instruction')} to draw (target: "
                 f"{plural(config.target, 'accepted sample')}).", *notes]
        acceptance = synthesize.acceptance if synthesize else DEFAULT_ACCEPTANCE
        each = config.generation.samples_per_instruction  # jobs per instruction
        expected = int((total + pending) * each * acceptance)
        if expected < config.target:
            lines.append(f"Warning: the pools' {plural(total + pending, 'instruction')}"
                         f"{f' ({each} samples each)' if each > 1 else ''} would give about "
                         f"{plural(expected, 'accepted sample')} "
                         f"at {acceptance:.0%} acceptance, short of the target of {config.target:,}: the pools will "
                         f"run dry first. Add sources, or set pools.synthesize (count: auto makes up the rest).")
        lines += _table("Per source:", by_source, total)
        lines += _table("Per language:", by_lang, total)
        lines += _table("Per type:", by_type, total)
        lines += _table("Per required length (words; 'none' = no length asked):", by_band, total)
        dropped = pools.dropped + skipped
        lines.append("Dropped by selection rules:" + ("" if dropped else " none"))
        limits = f"pools.max_prompt_chars ({config.pools.max_prompt_chars:,} characters)"
        if config.pools.select:
            limits += f" or pools.select.max_prompt_chars ({config.pools.select.max_prompt_chars:,})"
        why = {"prompt_too_long": f" (skipped: longer than {limits})"}
        lines += [f"  {rule}: {count}{why.get(rule, '')}" for rule, count in dropped.most_common()]
        lines.append(f"First {len(drawn)} in draw order:")
        for instruction in drawn:
            text = instruction.prompt.replace("\n", " ")
            lines.append(f"  [{instruction.lang}] {instruction.id}: {text[:110]}{'...' if len(text) > 110 else ''}")
        return "\n".join(lines)

