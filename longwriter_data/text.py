"""Small text rules every layer shares: an instruction's language, the language of our templates, counts in words."""

from __future__ import annotations

import re

_HAN = re.compile(r"[\u4e00-\u9fff]+")
_LETTER = re.compile(r"[^\W\d_]+")  # runs of letters, Han characters included: few matches, counted in C


def detect_lang(text: str) -> str:
    """'zh' when a noticeable share of the letters are Han characters, else 'en'."""
    han = sum(map(len, _HAN.findall(text)))
    letters = sum(map(len, _LETTER.findall(text)))
    return "zh" if letters and han / letters > 0.2 else "en"


TEMPLATE_LANGS = ("en", "zh")  # the languages our prompt templates are written in


def template_lang(lang: str | None) -> str:
    """The language of the templates and wordings for an instruction in `lang`: ours exist in Chinese and English,
    so every other language gets the English ones."""
    return "zh" if lang == "zh" else "en"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 job', '2 jobs', '1,200 jobs': a count with its noun, in the right number."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"
