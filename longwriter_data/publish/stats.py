"""What a run or an exported dataset holds, in numbers: a small summary per job, length bands, histogram bins,
S_l, token usage and cost. Read in one streaming pass; no sample text is ever held, however big the run.

`inspect`, `export` and the dataset card all read through here, so the figures they show are the same.
"""

from __future__ import annotations

import bisect
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from ..config import BuildConfig, PricesConfig
from ..quality.conclusions import premature_conclusions
from ..errors import UserError
from ..quality.judge import COLUMNS
from ..quality.length import BANDS, LIMIT, RequiredLength, approx_tokens, band_of, benchmark_score, requirement
from ..records import JobKey, JobRecord, Usage
from .report import STATUSES, RunReport
from ..store import (active_judge, job_records, judgement_records, read_judgements, read_snapshot, read_steps,
                     read_synthesis)

# Half-octave bins from 250 to 32k (each edge is the last one times sqrt 2), so that the band edges 2k, 4k, 8k,
# 16k and 32k are bin edges; below them one bin [0, 250), above them one bin for everything over 32k.
EDGES = (0, *(round(250 * 2 ** (k / 2)) for k in range(15)))
MARKED_EDGES = (2000, 32000)


def bin_of(words: int) -> int:
    """Index of the histogram bin: bins[i] covers [EDGES[i], EDGES[i+1]), the last closed one ends at 32k, inclusive,
    and one more bin holds everything above 32k."""
    if words > LIMIT:
        return len(EDGES) - 1
    return min(bisect.bisect_right(EDGES, words) - 1, len(EDGES) - 2)


def bin_labels() -> list[tuple[int, int | None]]:
    """(low, high) of each histogram bin; high is None for the bin above 32k."""
    return [*zip(EDGES[:-1], EDGES[1:]), (LIMIT, None)]


@dataclass(frozen=True)
class Job:
    """One finished job (its last record) or one exported row: what statistics and export need, without text."""

    seq: int
    status: str
    reason: str | None = None
    sample: int = 0  # which sample of its instruction
    lang: str = "en"
    type: str | None = None
    words: int | None = None  # None when the job wrote nothing (failed)
    required: RequiredLength | None = None
    offset: int = -1  # byte offset of the record in jobs.jsonl: export reads the text from there
    instruction_tokens: int = 0  # runs: the instruction's size, for inspect's estimate-vs-spent comparison
    id: str | None = None
    quality_score: float | None = None  # S_q of the judge shown (see generate/judging.py), when one scored the sample
    quality_scores: dict | None = None  # its six scores, dimension -> 1..5
    judge: str | None = None  # which judge: model@template hash
    recorded_judge: str | None = None  # runs: the judge whose scores the job record itself holds (the build's)
    # runs: (non-final paragraphs that end with a closing summary, non-final paragraphs); None without paragraphs
    conclusions: tuple[int, int] | None = None

    @property
    def key(self) -> JobKey:
        """The job's identity: its instruction and which sample of it."""
        return JobKey(self.seq, self.sample)

    @property
    def score(self) -> float | None:
        """LongBench-Write's S_l against the required length's target, when the instruction states one."""
        if self.required is None or self.words is None:
            return None
        return benchmark_score(self.words, self.required)


@dataclass
class Scan:
    """Everything inspect, export and the card need from a run directory or an exported dataset folder."""

    path: Path
    kind: str  # "run" or "dataset"
    jobs: list[Job]  # runs: last record per job, in draw order; datasets: one per row
    usage: Usage  # everything the run paid for, instruction synthesis included
    config: dict | None  # runs: config.json's recipe; datasets: recipe.json's (secrets already removed)
    in_progress: int = 0  # runs: jobs with steps on disk but no final record yet
    splits: dict[str, int] = field(default_factory=dict)  # datasets: rows per split
    recipe: dict | None = None  # datasets: recipe.json as export wrote it
    settings: BuildConfig | None = None  # runs: config.json's recipe, validated
    synthesis: Usage | None = None  # of `usage`, what instruction synthesis paid (None: the run synthesized nothing)

    @property
    def prices(self) -> PricesConfig | None:
        if self.settings is not None:
            return self.settings.prices
        raw = (self.config or {}).get("prices")
        return PricesConfig.model_validate(raw) if raw else None

    def accepted(self, target: int | None = None) -> list[Job]:
        """The dataset of a run: the first `target` accepted jobs in draw order."""
        jobs = [job for job in self.jobs if job.status == "accepted"]
        return jobs if target is None else jobs[:target]

    @cached_property
    def report(self) -> RunReport:
        """Counts per status and reason of its jobs (their last records), tallied once as report.json's are."""
        return RunReport.of(self.jobs)

    def counts(self) -> Counter:
        return Counter(self.report.status)

    def reasons(self) -> dict[str, Counter]:
        return self.report.reasons


def _job(record: JobRecord, offset: int) -> Job:
    return Job(seq=record.seq, sample=record.sample, status=record.status, reason=record.reason,
               lang=record.lang or "en", type=record.type, words=record.word_count, required=record.required,
               offset=offset, instruction_tokens=approx_tokens(record.prompt) if record.prompt else 0,
               id=record.id, quality_score=record.quality_score, quality_scores=record.quality_scores,
               judge=record.judge, recorded_judge=record.judge, conclusions=_conclusions(record.paragraphs))


def _conclusions(paragraphs: list[str] | None) -> tuple[int, int] | None:
    if not paragraphs or len(paragraphs) < 2:
        return None
    return premature_conclusions(paragraphs), len(paragraphs) - 1


def scan_run(run_dir: Path) -> Scan:
    """Read a run directory: works while a build is writing it (a torn last line is left for later)."""
    jobs_path, config_path = run_dir / "jobs.jsonl", run_dir / "config.json"
    if not jobs_path.is_file() and not config_path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.json or jobs.jsonl); "
                        "pass the run_dir of a build or a folder written by export.")
    snapshot = read_snapshot(run_dir)
    settings = snapshot.build_config() if snapshot else None  # a recipe this version cannot read is named now
    last: dict[JobKey, Job] = {}
    usage_of: dict[JobKey, Usage | None] = {}
    for offset, record in job_records(jobs_path):  # a torn tail is left out: a build is writing it
        last[record.key] = _job(record, offset)
        usage_of[record.key] = record.usage  # None: its steps.jsonl lines say it
    if judge := active_judge(run_dir):  # the `judge` command's scores replace the build's, for every job
        judgements = read_judgements(run_dir, judge)
        for key, job in last.items():
            judgement = judgements.get(key)
            if judgement is not None:
                last[key] = replace(job, judge=judge, quality_score=judgement.quality_score,
                                    quality_scores=judgement.quality_scores)
            elif job.judge != judge:  # another judge's scores: this one has not scored the job
                last[key] = replace(job, judge=None, quality_score=None, quality_scores=None)
    usage = Usage()
    settled = set()
    for key, counts in usage_of.items():
        if counts:
            usage += counts
            settled.add(key)
    unfinished = set()
    for key, step, _ in read_steps(run_dir / "steps.jsonl", skip=settled):
        usage.add_call(step, step.requests)
        if key not in last:
            unfinished.add(key)
    for judgement in judgement_records(run_dir):  # what the `judge` command paid
        if judgement.usage is not None:  # None: a build judge's scores kept aside, paid in steps.jsonl already
            usage += judgement.usage
    synthesis = None
    for request in read_synthesis(run_dir):
        synthesis = synthesis or Usage()
        synthesis += request.usage
    if synthesis is not None:
        usage += synthesis
    return Scan(path=run_dir, kind="run", jobs=[last[key] for key in sorted(last)], usage=usage,
                config=snapshot.recipe if snapshot else None, in_progress=len(unfinished), settings=settings,
                synthesis=synthesis)


# The user turn of each export format: its column, and how to reach the prompt inside a row.
_PROMPT = {
    "messages": ("messages", lambda turns: turns[0]["content"]),
    "sharegpt": ("conversations", lambda turns: turns[0]["value"]),
    "alpaca": ("instruction", lambda text: text),
}


def scan_dataset(folder: Path) -> Scan:
    """Read an exported dataset folder's Parquet shards (and recipe.json, for what the run paid)."""
    import pyarrow.parquet as pq

    order = {"train": 0, "validation": 1, "test": 2}
    files = sorted((folder / "data").glob("*.parquet"), key=lambda f: (order.get(f.name.split("-", 1)[0], 3), f.name))
    if not files:
        raise UserError(f"{folder} has no data/*.parquet files: pass a run directory or a folder written by export.")
    recipe_path = folder / "recipe.json"
    try:
        recipe = json.loads(recipe_path.read_text(encoding="utf-8")) if recipe_path.is_file() else None
    except (OSError, ValueError) as exc:
        raise UserError(f"{recipe_path}: damaged ({getattr(exc, 'strerror', None) or 'not complete JSON'}); export "
                        "the dataset again, or move the file aside to read the rows without it.") from None
    if recipe is not None and not isinstance(recipe, dict):
        raise UserError(f"{recipe_path}: damaged (not a JSON object); export the dataset again, or move the file "
                        "aside to read the rows without it.")
    jobs: list[Job] = []
    splits: Counter = Counter()
    for file in files:
        split = file.name.split("-", 1)[0]
        reader = pq.ParquetFile(file)
        names = set(reader.schema_arrow.names)
        column, prompt_of = next((_PROMPT[fmt] for fmt in _PROMPT if _PROMPT[fmt][0] in names), (None, None))
        quality = [name for name in ("quality_score", "quality_judge", *COLUMNS.values()) if name in names]
        wanted = [name for name in ("word_count", "required_length", "lang", "type", "id", column, *quality)
                  if name in names]
        for batch in reader.iter_batches(batch_size=256, columns=wanted):
            for row in batch.to_pylist():
                prompt = prompt_of(row[column]) if column else ""
                required = requirement(prompt, row.get("required_length"))
                scores = {dim: row[name] for dim, name in COLUMNS.items() if row.get(name) is not None}
                jobs.append(Job(seq=len(jobs), status="accepted", lang=row.get("lang") or "en", type=row.get("type"),
                                words=row.get("word_count"), required=required, id=row.get("id"),
                                quality_score=row.get("quality_score"), quality_scores=scores or None,
                                judge=row.get("quality_judge")))
                splits[split] += 1
    paid = (recipe or {}).get("usage", {})
    synthesis = Usage.from_record(paid["synthesis"]) if isinstance(paid.get("synthesis"), dict) else None
    return Scan(path=folder, kind="dataset", jobs=jobs, usage=Usage.from_record(paid),
                config=(recipe or {}).get("config"), splits=dict(splits), recipe=recipe, synthesis=synthesis)


def load_scan(path: Path) -> Scan:
    """A run directory or an exported dataset folder, whichever `path` is."""
    if not path.is_dir():
        raise UserError(f"{path} is not a directory: pass a run directory or a folder written by export.")
    if (path / "jobs.jsonl").is_file() or (path / "config.json").is_file():
        return scan_run(path)
    return scan_dataset(path)


@dataclass
class Group:
    """Outputs of one language, one type, or all: counts per status, and lengths and S_l of the accepted ones."""

    counts: Counter = field(default_factory=Counter)
    words: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def add(self, job: Job) -> None:
        self.counts[job.status] += 1
        if job.status == "accepted" and job.words is not None:
            self.words.append(job.words)
            if job.score is not None:
                self.scores.append(job.score)

    @property
    def mean_words(self) -> float | None:
        return statistics.fmean(self.words) if self.words else None

    @property
    def mean_score(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None


@dataclass
class LengthReport:
    """Histogram, bands, groups and the required-vs-actual pairs of a set of jobs, split by status."""

    statuses: list[str]  # the statuses with outputs, accepted first: the histogram's and the bands' columns
    histogram: list[Counter]  # per bin of bin_labels(): status -> outputs
    bands: list[Counter]  # per BANDS entry: status -> outputs
    overall: Group
    langs: dict[str, Group]
    types: dict[str, Group]
    pairs: list[tuple[int, int, str, float]]  # (required words, actual words, status, S_l) where a length is asked
    scores: dict[str, list[float]]  # status -> S_l of its outputs that have a required length

    @property
    def outputs(self) -> int:
        return sum(sum(counts.values()) for counts in self.bands)


def describe(jobs: list[Job]) -> LengthReport:
    histogram = [Counter() for _ in bin_labels()]
    bands = [Counter() for _ in BANDS]
    overall, langs, types = Group(), {}, {}
    pairs, scores = [], {}
    for job in jobs:
        overall.add(job)
        langs.setdefault(job.lang, Group()).add(job)
        types.setdefault(job.type or "(none)", Group()).add(job)
        if job.words is None:
            continue
        histogram[bin_of(job.words)][job.status] += 1
        bands[band_of(job.words)][job.status] += 1
        if job.required is not None:
            score = job.score
            pairs.append((job.required.target, job.words, job.status, score))
            scores.setdefault(job.status, []).append(score)
    seen = {status for counts in bands for status in counts}
    statuses = [s for s in STATUSES if s in seen] + sorted(seen - set(STATUSES))
    return LengthReport(statuses=statuses or ["accepted"], histogram=histogram, bands=bands, overall=overall,
                        langs=dict(sorted(langs.items())), types=dict(sorted(types.items())), pairs=pairs,
                        scores=scores)
