"""Run directories written without a model: config.json and jobs.jsonl records in the format a build writes, with
texts of exactly the asked word count. For tests of inspect/export/push and for scripts/bench_export.py.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import BuildConfig, backend_settings_model
from ..quality.length import RequiredLength
from ..records import JobRecord, Usage
from ..store import RUN_FORMAT

_SYLLABLES = ("ka lo mi ren sta por vel an ti mor dre sul ca ben tor lis har wen ob qui "
              "pre gan fel ru nor ith bal cen dom est").split()
# Four thousand made-up words drawn with Zipf weights, so that Parquet compression does not flatter a benchmark the way
# a few repeated words would.
_EN = [a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in ("", "s", "ed", "ing", "er")][:4000]
_EN_CUMULATIVE = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(_EN))))
_ZH = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行"


@dataclass(frozen=True)
class SyntheticJob:
    """One finished job to write: `words` None makes it a failed job (no output)."""

    words: int | None
    status: str = "accepted"
    reason: str | None = None
    lang: str = "en"
    type: str | None = "essay"
    required: tuple[int, int] | None = None  # (low, high) the instruction asks for
    prompt_tokens: int = 1000
    cached_tokens: int = 0
    completion_tokens: int = 0  # 0: about 1.3 tokens per word written
    paragraph_words: int = 500


def text(words: int, lang: str, rng: random.Random) -> str:
    """`words` words as LongBench-Write counts them: Latin words, or one Han character each."""
    if lang == "zh":
        return "".join(rng.choices(_ZH, k=words))
    return " ".join(rng.choices(_EN, cum_weights=_EN_CUMULATIVE, k=words))


def _paragraphs(words: int, size: int, lang: str, rng: random.Random) -> list[str]:
    sizes = [size] * (words // size) + ([words % size] if words % size else [])
    return [text(n, lang, rng) for n in sizes] or [""]


def _prompt(job: SyntheticJob, seq: int) -> str:
    if job.required is None:
        return f"请写一篇关于主题{seq}的文章。" if job.lang == "zh" else f"Write an essay about topic {seq}."
    low, high = job.required
    if job.lang == "zh":
        wanted = str(low) if low == high else f"{low}-{high}"
        return f"请写一篇{wanted}字的文章，主题{seq}。"
    wanted = f"{low}-word" if low == high else f"{low}-{high} word"
    return f"Write a {wanted} essay about topic {seq}."


def record(job: SyntheticJob, seq: int, rng: random.Random, model: str = "synthetic") -> JobRecord:
    """A jobs.jsonl record as the engine writes it."""
    out = JobRecord(
        seq=seq, sample=0, id=f"syn{seq:06d}", status=job.status if job.words is not None else "failed",
        reason=job.reason if job.words is not None else (job.reason or "plan_failed"), prompt=_prompt(job, seq),
        lang=job.lang, type=job.type, required=RequiredLength(*job.required) if job.required else None,
        pool="synthetic.jsonl", model=model, plan_model=model, wall_seconds=1.0)
    if job.words is None:
        out.detail = "synthetic failure"
        return out
    paragraphs = _paragraphs(job.words, job.paragraph_words, job.lang, rng)
    counts = [len(p) if job.lang == "zh" else len(p.split()) for p in paragraphs]
    return replace(
        out, plan=[{"main_point": f"Part {i + 1}", "words": n} for i, n in enumerate(counts)],
        paragraphs=paragraphs, paragraph_words=counts, planned_words=job.words, word_count=job.words,
        usage=Usage(requests=len(paragraphs) + 1, prompt_tokens=job.prompt_tokens, cached_tokens=job.cached_tokens,
                    completion_tokens=job.completion_tokens or round(job.words * 1.3)),
        seconds=1.0)


def write_config(run_dir: Path, target: int, **overrides) -> dict:
    """config.json as a build writes it, for a recipe whose fields are the defaults plus `overrides`."""
    raw = {"name": run_dir.name, "run_dir": str(run_dir), "target": target,
           "backend": {"model": "synthetic", "api_key_env": None}, "pools": [{"path": "synthetic.jsonl"}]}
    for key, value in overrides.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and isinstance(raw.get(key), dict) else value
    if "api_key_env" not in backend_settings_model(raw["backend"]).model_fields:
        del raw["backend"]["api_key_env"]  # a key its kind does not take
    snapshot = {"config": BuildConfig.model_validate(raw).model_dump(mode="json"), "format": RUN_FORMAT, "pool_fingerprints": []}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(snapshot, indent=2), encoding="utf-8")
    return snapshot


def write_run(run_dir: Path, jobs: Iterable[SyntheticJob], target: int | None = None, seed: int = 0,
              **config) -> Path:
    """Write config.json and jobs.jsonl (records streamed to disk one by one); returns the run directory."""
    jobs = list(jobs)
    accepted = sum(1 for job in jobs if job.words is not None and job.status == "accepted")
    write_config(run_dir, target or max(1, accepted), **config)
    rng = random.Random(seed)
    with (run_dir / "jobs.jsonl").open("w", encoding="utf-8") as fh:
        for seq, job in enumerate(jobs):
            fh.write(json.dumps(record(job, seq, rng).as_record(), ensure_ascii=False, separators=(",", ":")) + "\n")
    return run_dir
