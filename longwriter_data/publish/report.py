"""The filter report: how many jobs were accepted, rejected and failed, and why, over a whole run directory."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from ..records import JobKey
from ..store import read_jobs

STATUSES = ("accepted", "rejected", "failed")


class _Outcome(Protocol):
    status: str
    reason: str | None


class _Verdict(NamedTuple):
    status: str
    reason: str | None


@dataclass
class RunReport:
    """report.json: counts per status and per reason of a run's jobs, each by its last record, and what a build
    adds: the instructions skipped before generation, and synthesis's figures."""

    jobs: int
    status: dict[str, int]  # accepted, rejected, failed
    reasons: dict[str, Counter]  # status -> reason -> jobs; statuses in the order their first job came
    skipped_instructions: dict[str, int] | None = None  # a build's: rule -> instructions
    synthesis: dict | None = None  # a build's, where the recipe synthesizes

    @classmethod
    def of(cls, jobs: Iterable[_Outcome]) -> RunReport:
        """Tallied from the last record of each job (a Job of a scan, or a status and reason)."""
        statuses: Counter = Counter()
        reasons: dict[str, Counter] = {}
        for job in jobs:
            statuses[job.status] += 1
            if job.reason:
                reasons.setdefault(job.status, Counter())[job.reason] += 1
        return cls(jobs=sum(statuses.values()), status={name: statuses[name] for name in STATUSES}, reasons=reasons)

    def as_record(self) -> dict:
        """report.json's object: reasons by status name, most common first; a build's keys only where it set them."""
        record = {
            "jobs": self.jobs,
            "status": self.status,
            "reasons": {status: dict(counter.most_common()) for status, counter in sorted(self.reasons.items())},
        }
        if self.skipped_instructions is not None:
            record["skipped_instructions"] = self.skipped_instructions
        if self.synthesis is not None:
            record["synthesis"] = self.synthesis
        return record


def run_report(jobs_path: Path) -> RunReport:
    """Counts per status and per reason; a job re-queued with --retry-failed counts by its last record."""
    last: dict[JobKey, _Verdict] = {}
    for record in read_jobs(jobs_path):
        last[record.key] = _Verdict(record.status, record.reason)
    return RunReport.of(last.values())


def format_report(report: RunReport) -> str:
    rows = [("accepted", "", report.status["accepted"])]
    for status in ("rejected", "failed"):
        for reason, count in report.reasons.get(status, Counter()).most_common():
            rows.append((status, reason, count))
    width = max(len(reason) for _, reason, _ in rows) if rows else 0
    lines = [f"{'status':<9} {'reason':<{width}}  count"]
    lines += [f"{status:<9} {reason:<{width}}  {count:>5}" for status, reason, count in rows]
    lines.append(f"{'total':<9} {'':<{width}}  {report.jobs:>5}")
    for reason, count in (report.skipped_instructions or {}).items():
        lines.append(f"(instructions skipped before generation, {reason}: {count})")
    return "\n".join(lines)
