"""Word counting, required-length extraction and the length score (LongBench-Write's rules)."""

from __future__ import annotations

import re

# One word per Han character (CJK Unified Ideographs, extension A, compatibility ideographs),
# one word per run of Latin letters: the counting LongBench-Write uses to score long outputs.
_WORD = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]|[A-Za-z]+")


def count_words(text: str) -> int:
    """Count words as LongBench-Write does: each CJK character is one word, each run of Latin letters one word."""
    return sum(1 for _ in _WORD.finditer(text))
