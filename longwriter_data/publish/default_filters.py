"""What the default filters would decide about a run built with relaxed ones (the quickstart's, say): its accepted
samples judged again with `FiltersConfig()`, so `inspect` can say how many would still pass and why the others not.

The near-duplicate check is not run again: it needs the whole accepted set as the build saw it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..config import FiltersConfig
from ..quality.filters import Sample, judge
from .stats import Scan
from ..store import job_at

# Settings the per-sample check does not read (near-duplicates are judged by the engine, across samples).
_NOT_PER_SAMPLE = {"near_duplicate_threshold"}


@dataclass
class SecondOpinion:
    relaxed: dict[str, tuple]  # setting -> (what the run used, the default)
    accepted: int
    rejected: Counter  # reason -> accepted samples the defaults would reject for it

    @property
    def passing(self) -> int:
        return self.accepted - sum(self.rejected.values())


def default_filters_opinion(scan: Scan) -> SecondOpinion | None:
    """None unless `scan` is a run whose per-sample filter settings differ from the defaults."""
    if scan.kind != "run" or scan.settings is None:
        return None
    used = scan.settings.filters.model_dump()
    defaults = FiltersConfig().model_dump()
    relaxed = {key: (used[key], defaults[key]) for key in defaults
               if key not in _NOT_PER_SAMPLE and used[key] != defaults[key]}
    if not relaxed:
        return None
    filters, rejected, jobs = FiltersConfig(), Counter(), scan.accepted()
    with (scan.path / "jobs.jsonl").open("rb") as fh:
        for job in jobs:  # one record in memory at a time, read at the offset the scan kept
            record = job_at(fh, job.offset)
            sample = Sample(prompt=record.prompt, lang=job.lang, required=job.required,
                            paragraphs=record.paragraphs or [], planned_words=record.planned_words or 0)
            verdict = judge(sample, filters)
            if verdict.status != "accepted":
                rejected[verdict.reason] += 1
    return SecondOpinion(relaxed=relaxed, accepted=len(jobs), rejected=rejected)
