"""What `inspect` prints and the dataset card shows of a run or dataset: the tables (header and rows of strings,
printed as text by inspection.py or as Markdown by card.py), the token usage, the judge's scores, and the PNG of
the histogram and the required-vs-actual scatter.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from ..quality.judge import DIMENSIONS
from ..quality.length import BANDS, LIMIT, band_of
from ..records import Usage
from ..text import plural
from .stats import MARKED_EDGES, Group, Job, LengthReport, Scan, bin_labels


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


def _n(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def word_range(low: int, high: int | None) -> str:
    return f"> {low:,}" if high is None else f"{low:,} – {high:,}"


def dollars(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def band_table(report: LengthReport) -> Table:
    total = report.outputs
    rows = []
    for (label, *_), counts in zip(BANDS, report.bands):
        rows.append([label, *(f"{counts[s]:,}" for s in report.statuses), _share(sum(counts.values()), total)])
    return Table(["band (words)", *report.statuses, "share"], rows)


def group_table(title: str, groups: dict[str, Group], statuses: list[str]) -> Table:
    rows = [[name, *(f"{group.counts[s]:,}" for s in statuses), _n(group.mean_words), _n(group.mean_score, 1)]
            for name, group in groups.items()]
    return Table([title, *statuses, "mean words", "mean S_l"], rows)


def required_table(report: LengthReport) -> Table:
    """Accepted outputs grouped by the band of the length their instruction asks for: how close each band lands."""
    by_band: dict[int, list[tuple[int, int, float]]] = {}
    for required, words, status, score in report.pairs:
        if status == "accepted":
            by_band.setdefault(band_of(required), []).append((required, words, score))
    rows = []
    for index, triples in sorted(by_band.items()):
        required, words, scores = zip(*triples)
        rows.append([BANDS[index].label, f"{len(triples):,}", _n(statistics.median(required)),
                     _n(statistics.median(words)), _n(statistics.fmean(scores), 1)])
    return Table(["required (words)", "samples", "median required", "median actual", "mean S_l"], rows)


def scatter_summary(report: LengthReport) -> str:
    """One or two sentences on required vs actual length: S_l and the spread of actual / required."""
    if not report.pairs:
        return "No instruction states a length, so there is no required-vs-actual comparison (S_l)."
    ratios = sorted(words / required for required, words, status, _ in report.pairs if status == "accepted")
    parts = [f"{len(report.pairs):,} outputs answer an instruction that states a length"]
    means = [f"{s} {statistics.fmean(report.scores[s]):.1f}" for s in report.statuses if report.scores.get(s)]
    parts.append("mean S_l " + ", ".join(means))
    text = "; ".join(parts) + "."
    if ratios:
        low, high = _quantile(ratios, 0.1), _quantile(ratios, 0.9)
        text += (f" Accepted actual/required: median {statistics.median(ratios):.2f}, "
                 f"80% between {low:.2f} and {high:.2f}.")
    return text


def conclusion_line(jobs: list) -> str | None:
    """Premature conclusions per status: non-final paragraphs that end with a closing summary ("In summary, ...",
    "综上所述"), and the samples that have any. None when no job kept its paragraphs (an exported dataset)."""
    parts = []
    for status in ("accepted", "rejected"):
        counted = [job.conclusions for job in jobs if job.status == status and job.conclusions]
        if counted:
            early, body = sum(c[0] for c in counted), sum(c[1] for c in counted)
            samples = sum(1 for c in counted if c[0])
            parts.append(f"{status} {early:,} of {body:,} ({_share(early, body)}), in {samples:,} of "
                         f"{len(counted):,} samples")
    if not parts:
        return None
    return "Premature conclusions (non-final paragraphs ending with a closing summary): " + "; ".join(parts) + "."


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def _tokens(usage: Usage) -> str:
    reasoning = f" ({usage.reasoning_tokens:,} reasoning)" if usage.reasoning_tokens else ""
    return (f"{usage.prompt_tokens:,} input ({usage.cached_tokens:,} cached), {usage.completion_tokens:,} "
            f"output{reasoning}, {plural(usage.requests, 'request')}")


def usage_lines(scan: Scan, hint: bool = True) -> list[str]:
    """Tokens paid for, and their cost when the recipe has prices (else, with `hint`, how to add them)."""
    usage, accepted = scan.usage, scan.counts()["accepted"]
    total = usage.prompt_tokens + usage.completion_tokens
    per_sample = f"; {total / accepted:,.0f} tokens per accepted sample" if accepted and total else ""
    lines = [f"Tokens: {_tokens(usage)}{per_sample}."]
    synthesis = scan.synthesis
    if synthesis is not None:  # part of the total: a demanding reader wants the total right, and the split
        lines.append(f"Of them, instruction synthesis: {_tokens(synthesis)}.")
    prices = scan.prices
    cost = usage.cost(prices)
    if cost is None:
        if hint:
            lines.append("Cost: add a `prices:` section to the recipe (input, cached_input, output: dollars per "
                         "1M tokens) to see it.")
    else:
        cached = prices.input if prices.cached_input is None else prices.cached_input
        each = f" ({dollars(cost / accepted)} per accepted sample)" if accepted else ""
        if synthesis is not None:
            each += f", of which {dollars(synthesis.cost(prices))} for instruction synthesis,"
        lines.append(f"Cost: {dollars(cost)}{each} at ${prices.input:g} input, ${cached:g} cached input, "
                     f"${prices.output:g} output per 1M tokens.")
    return lines


@dataclass
class QualityReport:
    """The judge's scores of a run or dataset: a summary, the tables (S_q bins, dimensions, languages, types),
    and the lowest-scored samples."""

    summary: str
    tables: list[Table]
    lowest: str


_SQ_BINS = ((0, 20), (20, 40), (40, 60), (60, 80), (80, 100))


def quality_report(jobs: list[Job], lowest: int = 5) -> QualityReport | None:
    judged = [job for job in jobs if job.quality_score is not None]
    if not judged:
        return None
    statuses = [s for s in ("accepted", "rejected", "failed") if any(job.status == s for job in judged)]
    scores = [job.quality_score for job in judged]
    judges = sorted({job.judge for job in judged if job.judge})
    low = sum(1 for job in jobs if job.reason == "low_quality")
    summary = (f"Quality (S_q = mean over six dimensions of (score - 1) x 25, 0-100; judge {', '.join(judges) or '?'}): "
               f"{len(judged):,} samples judged, mean {statistics.fmean(scores):.1f}, median "
               f"{statistics.median(scores):.1f}" + (f"; {low:,} rejected as low_quality" if low else "") + ".")
    bins = []
    for low_edge, high_edge in _SQ_BINS:
        inside = [j for j in judged if low_edge <= j.quality_score < high_edge or (high_edge == 100 == j.quality_score)]
        bins.append([f"[{low_edge}, {high_edge}{']' if high_edge == 100 else ')'}",
                     *(f"{sum(j.status == s for j in inside):,}" for s in statuses), _share(len(inside), len(judged))])
    tables = [Table(["S_q", *statuses, "share"], bins)]
    rows = []
    for dim in DIMENSIONS:
        values = {s: [j.quality_scores[dim] for j in judged if j.status == s and j.quality_scores] for s in statuses}
        rows.append([dim, *(_n(statistics.fmean(values[s]), 2) if values[s] else "–" for s in statuses)])
    tables.append(Table(["dimension (1-5)", *(f"mean, {s}" for s in statuses)], rows))
    for title, key in (("language", lambda j: j.lang), ("type", lambda j: j.type or "(none)")):
        groups: dict[str, list[float]] = {}
        for job in judged:
            groups.setdefault(key(job), []).append(job.quality_score)
        tables.append(Table([title, "judged", "mean S_q", "min S_q"],
                            [[name, f"{len(v):,}", _n(statistics.fmean(v), 1), _n(min(v), 1)]
                             for name, v in sorted(groups.items())]))
    worst = sorted(judged, key=lambda j: (j.quality_score, j.seq))[:lowest]
    lowest_line = ", ".join(f"{j.id or j.seq} ({j.quality_score:.1f})" for j in worst)
    return QualityReport(summary=summary, tables=tables, lowest=lowest_line)


# Okabe & Ito's colour-blind safe palette: blue and orange stay apart under every colour-vision deficiency and differ
# in lightness too (they stay apart in greyscale); the band edges are drawn in black, apart from both.
_COLOURS = {"accepted": "#0072B2", "rejected": "#E69F00", "failed": "#CC79A7"}
_EDGE = "#222222"


def write_png(report: LengthReport, path: Path, title: str) -> None:
    """The histogram (log-scaled bins, band edges marked) and the required-vs-actual scatter, side by side."""
    figure = draw_lengths(report, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={"Software": None})


def draw_lengths(report: LengthReport, title: str):
    """The figure write_png saves (a matplotlib Figure; no pyplot: no global state, no display needed)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(13, 5.2), dpi=110, layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=(1.25, 1))
    figure.suptitle(title, fontsize=13)

    # The first bin starts at 0, which a log axis cannot show: it is drawn from 177 (half an octave down).
    bins = bin_labels()
    lows = [low or 177 for low, _ in bins]
    highs = [high or 2 * LIMIT for _, high in bins]  # the open bin above 32k is drawn one octave wide
    widths = [h - l for l, h in zip(lows, highs)]
    bottom = [0] * len(bins)
    for status in report.statuses:
        heights = [counts[status] for counts in report.histogram]
        left.bar(lows, heights, width=widths, bottom=bottom, align="edge", color=_COLOURS.get(status, "#718096"),
                 edgecolor="white", linewidth=0.6, label=status)
        bottom = [b + h for b, h in zip(bottom, heights)]
    left.set_xscale("log")
    # 32k itself is labelled by its marked edge at the top: a "32k" tick would collide with ">32k" beside it.
    _word_ticks(left.xaxis, [250, 500, 1000, 2000, 4000, 8000, 16000])
    left.set_xticks([*left.get_xticks(), (LIMIT * highs[-1]) ** 0.5],
                    [*(t.get_text() for t in left.get_xticklabels()), ">32k"])
    left.set_xlim(lows[0], highs[-1])
    left.set_ylim(0, max(bottom, default=0) * 1.15 or 1)
    left.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5 of an output
    for edge in MARKED_EDGES:
        left.axvline(edge, color=_EDGE, linestyle="--", linewidth=1.2, zorder=3)
        left.text(edge, 0.985, f"{edge // 1000}k", color=_EDGE, transform=left.get_xaxis_transform(), zorder=4,
                  ha="center", va="top", fontsize=10, fontweight="bold",
                  bbox={"facecolor": "white", "edgecolor": _EDGE, "boxstyle": "round,pad=0.2"})
    left.set_xlabel("output length (words, log scale)")
    left.set_ylabel("outputs")
    left.set_title("Output length", fontsize=11)
    left.legend(loc="upper left", frameon=False)
    left.grid(axis="y", alpha=0.3)

    if report.pairs:
        _scatter(right, report)
    else:  # nothing to compare: say so on a blank panel instead of drawing meaningless axes
        right.set_axis_off()
        right.text(0.5, 0.5, "Required vs actual length:\nno instruction stated a length", ha="center",
                   va="center", transform=right.transAxes, fontsize=12, color="#4a5568")
    return figure


def _scatter(axes, report: LengthReport) -> None:
    """Required vs actual length; outputs at the same point are one dot whose area grows with their number, so
    the dots and the counts in the legend agree."""
    from collections import Counter

    many = len(report.pairs) >= 300
    base = 10 if many else 28  # few points drawn large, many small
    stacked = False
    for status in report.statuses:
        points = Counter((r, w) for r, w, s, _ in report.pairs if s == status)
        if points:
            stacked |= max(points.values()) > 1
            axes.scatter(*zip(*points), s=[base * n for n in points.values()], alpha=0.7,
                         color=_COLOURS.get(status, "#718096"), edgecolors="white", linewidths=0.4,
                         label=f"{status} ({plural(points.total(), 'output')})")
    values = [v for r, w, _, _ in report.pairs for v in (r, w)]
    low, high = min(values) / 1.3, max(values) * 1.3
    axes.plot([low, high], [low, high], color=_EDGE, linewidth=1, label="actual = required")
    axes.set_xscale("log")
    axes.set_yscale("log")
    ticks = [t for t in (250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000) if low <= t <= high]
    _word_ticks(axes.xaxis, ticks)
    _word_ticks(axes.yaxis, ticks)
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    legend = axes.legend(loc="upper left", frameon=False, title_fontsize=9,
                         title="dot area: outputs at that point" if stacked else None)
    for handle in legend.legend_handles:
        if hasattr(handle, "set_sizes"):
            handle.set_sizes([base * 1.5])  # legend dots of one size, whatever the first dot's count
    means = ", ".join(f"{s} {statistics.fmean(report.scores[s]):.1f}" for s in report.statuses
                      if report.scores.get(s))
    axes.set_title(f"Required vs actual length (mean S_l: {means})", fontsize=11)
    axes.set_xlabel("required length (words)")
    axes.set_ylabel("actual length (words)")
    axes.grid(alpha=0.3)


def _word_ticks(axis, ticks: list[int]) -> None:
    axis.set_ticks(ticks, [f"{t // 1000}k" if t >= 1000 else str(t) for t in ticks])
    axis.set_ticks([], minor=True)


def png_title(scan: Scan) -> str:
    name = (scan.config or {}).get("name") or scan.path.name
    what = plural(len(scan.jobs), "sample") if scan.kind == "dataset" else plural(len(scan.jobs), "finished job")
    return f"{name}: {what}"
