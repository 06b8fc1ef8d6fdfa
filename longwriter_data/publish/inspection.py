"""`inspect`: a run's (or an exported dataset's) lengths, bands, languages, types, S_l, tokens and cost, in the
terminal; optionally the histogram and the required-vs-actual scatter as a PNG.

The tables, usage and quality figures are built in views.py, which the dataset card shows too.
"""

from __future__ import annotations

from ..text import plural
from .stats import MARKED_EDGES, Job, LengthReport, Scan, bin_labels, describe
from .views import (Table, band_table, conclusion_line, dollars, group_table, quality_report, required_table,
                    scatter_summary, usage_lines, word_range)

BAR_WIDTH = 48
_BAR = {"accepted": "█", "rejected": "░"}


def estimate_lines(scan: Scan) -> list[str]:
    """What `estimate` predicts for the jobs this run finished, beside what they cost: how far to trust it."""
    finished = [job for job in scan.jobs if job.instruction_tokens]
    config = scan.settings
    if scan.kind != "run" or config is None or not finished:
        return []
    from ..generate.costs import estimate_jobs

    try:
        predicted = estimate_jobs(config, ((job.instruction_tokens, job.lang, job.required.target if job.required
                                            else None) for job in finished))
    except OSError:  # the judge's own template, named by the recipe, is no longer where the build read it
        return []
    usage = scan.usage if scan.synthesis is None else scan.usage - scan.synthesis  # it predicts jobs only

    def row(name: str, guess: float, spent: float, money: bool = False) -> str:
        show = dollars if money else (lambda value: f"{value:,.0f}")
        change = f"{(spent - guess) / guess:+.0%}" if guess else "n/a"
        return f"  {name:<14} {show(guess):>14} {show(spent):>14}   {change}"

    lines = [f"Estimate vs spent, for the {plural(len(finished), 'finished job')}"
             + (f" (spent includes {plural(scan.in_progress, 'job')} in progress)" if scan.in_progress else "") + ":",
             f"  {'':<14} {'predicted':>14} {'spent':>14}   spent vs predicted",
             row("requests", predicted.requests, usage.requests),
             row("input tokens", predicted.input_tokens, usage.prompt_tokens),
             row("output tokens", predicted.output_tokens, usage.completion_tokens)]
    cost = usage.cost(scan.prices)
    if cost is not None:
        lines.append(row("cost", predicted.cost(scan.prices, caching=usage.cached_tokens > 0), cost, money=True))
    if scan.synthesis is not None:
        lines.append(f"  (instruction synthesis's {plural(scan.synthesis.requests, 'request')} not included: "
                     "`estimate` prices it apart)")
    if usage.reasoning_tokens:
        lines.append(f"  (spent output includes {usage.reasoning_tokens:,} reasoning tokens: the estimate predicts "
                     "only the written text)")
    return lines


def quality_lines(jobs: list[Job]) -> list[str]:
    report = quality_report(jobs)
    if report is None:
        return []
    lines = [report.summary]
    for table in report.tables:
        lines += format_table(table, indent="  ") + [""]
    return lines + [f"Lowest S_q: {report.lowest}", ""]


def histogram_lines(report: LengthReport) -> list[str]:
    """Horizontal bars, one per log-scaled bin, stacked by status, with the 2k and 32k edges drawn across."""
    peak = max((sum(counts.values()) for counts in report.histogram), default=0) or 1
    legend = "  ".join(f"{_BAR.get(s, '▒')} {s}" for s in report.statuses)
    lines = [f"Output length in words (log-scaled bins; {legend})"]
    label_width = len(word_range(22627, 32000))
    for (low, high), counts in zip(bin_labels(), report.histogram):
        if low in MARKED_EDGES:
            lines.append(f"{'':>{label_width}} ├{f' {low // 1000}k ':─^{BAR_WIDTH}}")
        bar = ""
        for status in report.statuses:
            cells = round(BAR_WIDTH * counts[status] / peak)
            if counts[status] and not cells:
                cells = 1  # a bin with outputs never looks empty
            bar += _BAR.get(status, "▒") * cells
        lines.append(f"{word_range(low, high):>{label_width}} │{bar:<{BAR_WIDTH}} {sum(counts.values()):>6,}")
    return lines


def format_table(table: Table, indent: str = "") -> list[str]:
    widths = [max(len(row[i]) for row in [table.header, *table.rows]) for i in range(len(table.header))]
    def line(cells: list[str]) -> str:
        return indent + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return [line(table.header), *(line(row) for row in table.rows)]


def render_text(scan: Scan) -> str:
    """The whole terminal report."""
    jobs = scan.jobs
    report = describe(jobs)
    lines = [_heading(scan), ""]
    if report.outputs:
        lines += histogram_lines(report) + [""]
        lines += format_table(band_table(report)) + [""]
    else:
        lines += ["No outputs yet.", ""]
    if jobs:
        lines += format_table(group_table("language", report.langs, _columns(scan, report))) + [""]
        lines += format_table(group_table("type", report.types, _columns(scan, report))) + [""]
        lines.append("Required vs actual length: " + scatter_summary(report))
        if any(pair[2] == "accepted" for pair in report.pairs):
            lines += format_table(required_table(report), indent="  ")
        lines.append("")
        if conclusions := conclusion_line(jobs):
            lines += [conclusions, ""]
    lines += quality_lines(jobs)
    lines += usage_lines(scan)
    if opinion := default_filters_lines(scan):
        lines += [""] + opinion
    if comparison := estimate_lines(scan):
        lines += [""] + comparison
    return "\n".join(lines)


def default_filters_lines(scan: Scan) -> list[str]:
    """For a run built with relaxed filters: what the defaults would decide about its accepted samples."""
    from .default_filters import default_filters_opinion

    opinion = default_filters_opinion(scan)
    if opinion is None:
        return []
    relaxed = ", ".join(f"{key} {_setting(used)} (default {_setting(default)})"
                        for key, (used, default) in opinion.relaxed.items())
    verdict = f"{opinion.passing:,} of {plural(opinion.accepted, 'accepted sample')} would pass"
    if opinion.rejected:
        verdict += "; rejected: " + ", ".join(f"{reason} {n:,}" for reason, n in opinion.rejected.most_common())
    return [f"This run relaxed the filters: {relaxed}.",
            f"With the default filters (near-duplicates not checked again), {verdict}."]


def _setting(value) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else f"{value:g}"


def _columns(scan: Scan, report: LengthReport) -> list[str]:
    counts = scan.counts()
    return [status for status in ("accepted", "rejected", "failed") if counts[status]] or report.statuses


def _heading(scan: Scan) -> str:
    counts = scan.counts()
    if scan.kind == "dataset":
        splits = ", ".join(f"{name} {n:,}" for name, n in scan.splits.items())
        fmt = (scan.recipe or {}).get("format", "unknown")
        return f"Dataset {scan.path}: {plural(len(scan.jobs), 'sample')} ({splits}), {fmt} format."
    status = ", ".join(f"{counts[s]:,} {s}" for s in ("accepted", "rejected", "failed"))
    heading = f"Run {scan.path}: {plural(len(scan.jobs), 'job')} finished ({status})"
    if scan.in_progress:
        heading += f", {scan.in_progress:,} unfinished (running, interrupted, or cancelled when the target was met)"
    heading += "."
    for name, reasons in scan.reasons().items():
        heading += f"\n  {name}: " + ", ".join(f"{reason} {n:,}" for reason, n in reasons.most_common())
    target = (scan.config or {}).get("target")
    if target:
        heading += f"\n  Dataset: the first {min(target, counts['accepted']):,} accepted of a target of {target:,}."
    return heading
