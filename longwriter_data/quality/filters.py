"""Which finished samples make the dataset: each rejection carries a named reason for the report.

Checks run cheapest first and the first failing one names the reason: band, length score, refusal, chat-template
tokens, leftover plan/meta text, premature conclusions, repetition, language mismatch, plan adherence. Near-duplicate outputs are judged by the engine,
which holds the accepted set (see dedupe.py).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from .answer_checks import AI_SELF, looks_like_refusal, template_leak
from .conclusions import premature_conclusions
from ..config import FiltersConfig
from .dedupe import signature
from .length import RequiredLength, compliance_score, words_of
from ..text import detect_lang

_META = re.compile(
    r"\bParagraph\s+\d+\s*(?:[-–—:]|\(|$)|\bWord\s*Count\s*[:：]|\bMain\s*Points?\s*[:：]"
    r"|段落\s*\d+\s*[-—:：]|字数要求|主要内容\s*[:：]"
    # the assistant's self-reference counts only where a sentence or a paragraph starts
    rf"|(?:^|(?<=[.!?;:…。！？；：])|(?<=[.!?;:…]\s)|(?<=[.!?][\"'”’)\]]\s))[ \t*_>#-]*"
    r"(?:(?:unfortunately|however|but|well|sorry|of course|honestly|that said|please note that|note that),?\s+"
    rf"|(?:但是|不过|然而|抱歉|很抱歉|当然)[，,]?)?(?:{AI_SELF})",
    re.IGNORECASE | re.MULTILINE,
)
# Every _META match contains one of these (lower-cased): most texts contain none, and skip the regex (~3 ms).
_META_HINTS = ("paragraph", "word", "point", "as an a", "段落", "字数要求", "主要内容", "作为")


# Premature conclusions are judged on samples of at least this many paragraphs: with fewer, one stray "Overall, ..."
# would be a large share.
PREMATURE_MIN_PARAGRAPHS = 4


@dataclass(frozen=True)
class Verdict:
    status: str  # "accepted" or "rejected"
    reason: str | None = None  # a short code, counted in the report
    detail: str | None = None  # the numbers behind it, for a person


ACCEPTED = Verdict("accepted")


@dataclass(frozen=True)
class Sample:
    prompt: str
    lang: str
    required: RequiredLength | None
    paragraphs: list[str]
    planned_words: int

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)

    @functools.cached_property
    def words(self) -> list[list[str]]:
        """Each paragraph's words: one pass serves the word counts and the repetition checks (in the judging
        worker, not on the event loop)."""
        return [words_of(p) for p in self.paragraphs]

    @property
    def paragraph_words(self) -> list[int]:
        return [len(w) for w in self.words]

    @property
    def word_count(self) -> int:
        return sum(self.paragraph_words)


def _lowered(words: list[str]) -> list[str]:
    return " ".join(words).lower().split()  # one call, not one per word: words hold no spaces


def repetition_ratio(text: str, n: int) -> float:
    """Share of token n-grams that repeat an earlier one: near 0 for prose, near 1 for a looping model."""
    return _repetition(_lowered(words_of(text)), n)


def _ngrams(tokens: list[str], n: int) -> tuple[set, int]:
    """The distinct n-grams of a token list, and how many there were in all."""
    return set(zip(*(tokens[i:] for i in range(n)))), max(0, len(tokens) - n + 1)  # zip: no slice per n-gram


def _repetition(tokens: list[str], n: int) -> float:
    unique, total = _ngrams(tokens, n)
    return 1 - len(unique) / total if total else 0.0


def _has_meta_hint(text: str) -> bool:
    lowered = text.lower()
    return any(hint in lowered for hint in _META_HINTS)


def duplicate_paragraph_ratio(paragraphs: list[str]) -> float:
    kept = [p.strip() for p in paragraphs if p.strip()]
    return 1 - len(set(kept)) / len(kept) if kept else 0.0


def judge(sample: Sample, filters: FiltersConfig) -> Verdict:
    words = sample.word_count
    if words < filters.min_words:
        return Verdict("rejected", "too_short", f"{words} words < min_words {filters.min_words}")
    if words > filters.max_words:
        return Verdict("rejected", "too_long", f"{words} words > max_words {filters.max_words}")
    if sample.required and filters.min_length_score is not None:
        score = compliance_score(words, sample.required)
        if score < filters.min_length_score:
            return Verdict("rejected", "length_score", f"S_l {score:.1f} < {filters.min_length_score:g} "
                                                        f"({words} words; required: {sample.required})")
    refused = next((i for i, p in enumerate(sample.paragraphs) if looks_like_refusal(p)), None)
    if refused is not None:
        return Verdict("rejected", "refusal", f"paragraph {refused + 1} is a refusal or apology")
    leaked = next(((i, token) for i, p in enumerate(sample.paragraphs) if (token := template_leak(p))), None)
    if leaked is not None:
        return Verdict("rejected", "template_leak", f"paragraph {leaked[0] + 1} holds the chat-template token "
                                                     f"{leaked[1]!r}")
    if filters.reject_meta_text and _has_meta_hint(sample.text) and (match := _META.search(sample.text)):
        return Verdict("rejected", "meta_text", f"leftover plan/meta text: {match.group(0)!r}")
    if filters.max_premature_conclusion_share is not None and len(sample.paragraphs) >= PREMATURE_MIN_PARAGRAPHS:
        early, body = premature_conclusions(sample.paragraphs), len(sample.paragraphs) - 1
        if early / body > filters.max_premature_conclusion_share:
            return Verdict("rejected", "premature_conclusion", f"{early} of {body} non-final paragraphs end with a "
                                                                f"closing summary ({early / body:.0%} > "
                                                                f"{filters.max_premature_conclusion_share:.0%})")
    ngram = 12 if sample.lang == "zh" else 8
    # One pass over each paragraph's n-grams serves both checks (n-grams across paragraph breaks are left out).
    grams = [_ngrams(_lowered(w), ngram) for w in sample.words]
    total = sum(count for _, count in grams)
    ratio = 1 - len(set().union(*(unique for unique, _ in grams))) / total if total else 0.0
    if ratio > filters.max_repeated_ngram_ratio:
        return Verdict("rejected", "repetition", f"{ratio:.0%} of {ngram}-grams repeat "
                                                  f"(max {filters.max_repeated_ngram_ratio:.0%})")
    looping = max(((1 - len(unique) / count if count else 0.0), i) for i, (unique, count) in enumerate(grams))
    if looping[0] > filters.max_paragraph_repetition:
        return Verdict("rejected", "repetition", f"paragraph {looping[1] + 1} loops: {looping[0]:.0%} of its "
                                                  f"{ngram}-grams repeat (max {filters.max_paragraph_repetition:.0%})")
    duplicates = duplicate_paragraph_ratio(sample.paragraphs)
    if duplicates > filters.max_duplicate_paragraph_ratio:
        return Verdict("rejected", "repetition", f"{duplicates:.0%} of paragraphs are repeated")
    if filters.check_language:
        written = detect_lang(sample.text[:20000])  # the opening 20,000 characters tell the language
        if written != sample.lang:
            return Verdict("rejected", "language_mismatch", f"a {sample.lang} instruction answered in {written}")
    if filters.min_plan_ratio is not None and sample.planned_words:
        ratio = words / sample.planned_words
        if ratio < filters.min_plan_ratio:
            return Verdict("rejected", "below_plan", f"{words} words written for {sample.planned_words} planned "
                                                      f"({ratio:.0%} < {filters.min_plan_ratio:.0%})")
    return ACCEPTED


def judge_and_sign(sample: Sample, filters: FiltersConfig,
                   shingle_hash: str | None) -> tuple[Verdict, list[int], np.ndarray | None]:
    """The verdict, each paragraph's word count, and when the sample passed (and a `shingle_hash` is given) its
    MinHash values for the near-duplicate check: all the CPU work a finished sample needs, in one call that a
    worker process can run."""
    verdict = judge(sample, filters)
    signed = shingle_hash is not None and verdict.status == "accepted"
    values = signature(sample.text, shingle_hash=shingle_hash).hashvalues if signed else None
    return verdict, sample.paragraph_words, values
