"""The filter report: how many jobs were accepted, rejected and failed, and why, over a whole run directory."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..records import JobKey
from ..store import read_jobs


def run_report(jobs_path: Path) -> dict:
    """Counts per status and per reason; a job re-queued with --retry-failed counts by its last record."""
    last: dict[JobKey, tuple[str, str | None]] = {}
    for record in read_jobs(jobs_path):
        last[record.key] = (record.status, record.reason)
    statuses = Counter(status for status, _ in last.values())
    reasons: dict[str, Counter] = {}
    for status, reason in last.values():
        if reason:
            reasons.setdefault(status, Counter())[reason] += 1
    return {
        "jobs": len(last),
        "status": {name: statuses[name] for name in ("accepted", "rejected", "failed")},
        "reasons": {status: dict(counter.most_common()) for status, counter in sorted(reasons.items())},
    }


def format_report(report: dict) -> str:
    rows = [("accepted", "", report["status"]["accepted"])]
    for status in ("rejected", "failed"):
        for reason, count in report["reasons"].get(status, {}).items():
            rows.append((status, reason, count))
    width = max(len(reason) for _, reason, _ in rows) if rows else 0
    lines = [f"{'status':<9} {'reason':<{width}}  count"]
    lines += [f"{status:<9} {reason:<{width}}  {count:>5}" for status, reason, count in rows]
    lines.append(f"{'total':<9} {'':<{width}}  {report['jobs']:>5}")
    for reason, count in report.get("skipped_instructions", {}).items():
        lines.append(f"(instructions skipped before generation, {reason}: {count})")
    return "\n".join(lines)
