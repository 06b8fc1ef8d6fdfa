"""Accepted samples → a Hugging Face dataset in chat format (save_to_disk and Parquet), streamed from the run,
with recipe.json and a dataset card (README.md and the length histogram) beside it.

The dataset is the first `target` accepted jobs in draw order, each once (a re-queued job's last record wins),
so exporting after any number of interruptions and resumes gives the same rows in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import datasets

from .card import recipe, write_card, write_recipe
from ..errors import UserError
from ..quality.judge import COLUMNS
from .outdir import ExportSettings, check_replaceable, clean_stale_staging, replace, staging, write_marker
from .stats import scan_run
from ..records import JobRecord
from ..store import job_at

FORMATS = ("messages", "sharegpt", "alpaca")


def _rows(jobs_path: Path, offsets: list[int], fmt: str, quality: list[dict] | None = None) -> Iterator[dict]:
    with jobs_path.open("rb") as fh:
        for index, offset in enumerate(offsets):
            row = to_row(job_at(fh, offset), fmt)
            if quality:
                row.update(quality[index])
            yield row


def quality_columns(job) -> dict:
    """A judged sample's S_q, its six scores and the judge, as export columns (None where it was not judged)."""
    scores = job.quality_scores or {}
    return {"quality_score": job.quality_score, **{name: scores.get(dim) for dim, name in COLUMNS.items()},
            "quality_judge": job.judge}


QUALITY_FEATURES = {"quality_score": datasets.Value("float64"),
                    **{name: datasets.Value("int64") for name in COLUMNS.values()},
                    "quality_judge": datasets.Value("string")}


def to_row(record: JobRecord, fmt: str) -> dict:
    """One accepted record in the requested chat schema, plus metadata columns."""
    text, prompt = record.text, record.prompt
    # The second and later samples of an instruction get an id of their own.
    meta = {"id": f"{record.id}#{record.sample}" if record.sample else record.id, "lang": record.lang,
            "type": record.type, "word_count": record.word_count,
            "required_length": record.required.target if record.required else None, "model": record.model}
    if fmt == "messages":  # LongWriter-6k's schema
        row = {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}]}
    elif fmt == "sharegpt":  # what LLaMA-Factory and axolotl read as sharegpt
        row = {"conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": text}]}
    elif fmt == "alpaca":
        row = {"instruction": prompt, "input": "", "output": text}
    else:
        raise UserError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    row.update(meta)
    return row


_FEATURES = {
    "id": datasets.Value("string"),
    "lang": datasets.Value("string"),
    "type": datasets.Value("string"),
    "word_count": datasets.Value("int64"),
    "required_length": datasets.Value("int64"),
    "model": datasets.Value("string"),
}
_TURNS = {
    "messages": {"messages": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})},
    "sharegpt": {"conversations": datasets.List({"from": datasets.Value("string"), "value": datasets.Value("string")})},
    "alpaca": {k: datasets.Value("string") for k in ("instruction", "input", "output")},
}


def export_run(run_dir: Path, out_dir: Path, fmt: str = "messages", target: int | None = None,
               test_size: float = 0.0, seed: int = 0) -> int:
    """Write the dataset to `out_dir`, replacing it whole once the new export is complete; returns the number of
    rows. Only a new or empty folder, or one an export made, is written (see outdir.check_replaceable)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    jobs_path = run_dir / "jobs.jsonl"
    if not jobs_path.exists():
        raise UserError(f"{run_dir} has no jobs.jsonl: is it a run directory of a build?")
    out_dir = out_dir.resolve()
    check_replaceable(out_dir, run_dir)
    clean_stale_staging(out_dir.parent, out_dir.name)
    run_bytes = jobs_path.stat().st_size  # what the export is made from (records appended later are not in it)
    run = scan_run(run_dir)  # one pass, one record in memory at a time
    accepted = run.accepted(target)
    offsets = [job.offset for job in accepted]
    if not offsets:
        raise UserError(f"{run_dir} has no accepted samples to export yet.")
    if len(offsets) > 1 and len(offsets) - math.ceil(test_size * len(offsets)) < 1:  # the split's own rule
        raise UserError(f"--test-size {test_size:g} leaves no training rows of the {len(offsets)} samples: use a "
                        "smaller one, or export without a test split.")
    judged = any(job.quality_score is not None for job in accepted)  # the quality columns, when a judge scored
    quality = [quality_columns(job) for job in accepted] if judged else None
    features = datasets.Features({**_TURNS[fmt], **_FEATURES, **(QUALITY_FEATURES if judged else {})})
    datasets.disable_progress_bars()
    with staging(out_dir) as tmp:
        stage = tmp / "out"
        dataset = datasets.Dataset.from_generator(
            _rows, gen_kwargs={"jobs_path": jobs_path, "offsets": offsets, "fmt": fmt, "quality": quality},
            features=features, cache_dir=str(tmp / "cache"),
        )
        splits = {"train": dataset}
        if test_size > 0 and len(dataset) > 1:
            parts = dataset.train_test_split(test_size=test_size, seed=seed, shuffle=True)
            splits = {"train": parts["train"], "test": parts["test"]}
        datasets.DatasetDict(splits).save_to_disk(str(stage))
        (stage / "data").mkdir()
        for name, split in splits.items():
            split.to_parquet(str(stage / "data" / f"{name}-00000-of-00001.parquet"))
        write_recipe(stage, recipe(run.config, fmt, run))
        write_card(stage)
        write_marker(stage, ExportSettings(fmt, test_size), seed, len(offsets), run_bytes)
        replace(stage, out_dir, run_dir)
    return len(offsets)
