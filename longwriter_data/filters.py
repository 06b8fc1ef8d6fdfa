"""Which finished samples make the dataset: each rejection carries a named reason for the report."""

from __future__ import annotations

from dataclasses import dataclass

from .config import FiltersConfig


@dataclass(frozen=True)
class Verdict:
    status: str  # "accepted" or "rejected"
    reason: str | None = None  # a short code, counted in the report
    detail: str | None = None  # the numbers behind it, for a person


ACCEPTED = Verdict("accepted")


def judge(word_count: int, filters: FiltersConfig) -> Verdict:
    """The length band: LongWriter-6k keeps outputs of 2k–32k words."""
    if word_count < filters.min_words:
        return Verdict("rejected", "too_short", f"{word_count} words < min_words {filters.min_words}")
    if word_count > filters.max_words:
        return Verdict("rejected", "too_long", f"{word_count} words > max_words {filters.max_words}")
    return ACCEPTED
