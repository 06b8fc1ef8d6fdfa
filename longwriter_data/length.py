"""Word counting, required-length extraction and the length score (LongBench-Write's rules)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# One word per Han character (CJK Unified Ideographs, extension A, compatibility ideographs),
# one word per run of Latin letters: the counting LongBench-Write uses to score long outputs.
_WORD = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]|[A-Za-z]+")


def words_of(text: str) -> list[str]:
    """The words LongBench-Write counts: each CJK character, each run of Latin letters."""
    return _WORD.findall(text)


def count_words(text: str) -> int:
    """Count words as LongBench-Write does: each CJK character is one word, each run of Latin letters one word."""
    return len(words_of(text))


_HAN = re.compile(r"[\u4e00-\u9fff]+")


def approx_tokens(text: str) -> int:
    """Tokens a BPE tokenizer needs, roughly: 4 characters each, Han characters 1.5 each (for budgets and
    estimates; the provider's `usage` is the truth)."""
    han = 0 if text.isascii() else len(text) - len(_HAN.sub("", text))  # C speed: prompts run to 100k characters
    return int((len(text) - han) / 4 + han / 1.5) + 1


@dataclass(frozen=True)
class RequiredLength:
    """The output length an instruction asks for, in words; a single length has low == high."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 0 < self.low <= self.high:
            raise ValueError(f"a required length needs 0 < low <= high, got low={self.low}, high={self.high}")

    @property
    def target(self) -> int:
        """The midpoint, for code that needs one number (a plan's total, a single score)."""
        return (self.low + self.high) // 2


# --- English numbers: digits ("10,000", "10 000", "2.5k", "5 thousand") or words ("twenty-five hundred").

_EN_SMALL = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_EN_ANY_WORD = "|".join(sorted([*_EN_SMALL, "hundred", "thousand"], key=len, reverse=True))
_EN_SMALL_WORD = "|".join(sorted(_EN_SMALL, key=len, reverse=True))
# A bare "thousand" needs "a" before it, so "a few thousand words" is not read as 1000.
_EN_WORDS = (
    rf"(?:\ba\s+(?:hundred|thousand)|\b(?:{_EN_SMALL_WORD}))\b"
    rf"(?:(?:\s+and\s+|\s*-\s*|\s+)(?:{_EN_ANY_WORD})\b){{0,8}}"
)  # capped so a long run of number words costs linear time, not quadratic
_EN_DIGITS = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?: \d{3})+(?!\d)|\d+(?:\.\d+)?)(?:\s*k\b|\s+thousand\b)?"
_EN_NUM = rf"(?:{_EN_DIGITS}|{_EN_WORDS})\+?"
_EN_UNIT = r"\s*-?\s*words?\b"
# Not inside another number or word, not money, not "top 10 words".
_EN_START = r"(?<![A-Za-z0-9.$€£¥])(?<!\d,)(?<!top )"

# A dash joins digits only: in words it is part of the number ("twenty-five hundred").
_EN_RANGE = re.compile(
    rf"{_EN_START}(?:between\s+(?P<a1>{_EN_NUM})(?:{_EN_UNIT})?\s+and\s+(?P<b1>{_EN_NUM})"
    rf"|(?P<a2>{_EN_NUM})(?:{_EN_UNIT})?\s+to\s+(?P<b2>{_EN_NUM})"
    rf"|(?P<a3>{_EN_DIGITS}\+?)(?:{_EN_UNIT})?\s*[-–—~]\s*(?P<b3>{_EN_DIGITS}\+?)){_EN_UNIT}",
    re.IGNORECASE,
)
_EN_SINGLE = re.compile(rf"{_EN_START}(?P<n>{_EN_NUM}){_EN_UNIT}", re.IGNORECASE)
_LETTERS = re.compile(r"[a-z]+")


def _parse_en(text: str) -> int:
    """Read an English number matched by _EN_NUM: "10,000", "2.5k", "twenty-five hundred", "a thousand"."""
    text = text.lower().rstrip("+").strip()
    if text[0].isdigit():
        scale = 1000 if text.endswith(("k", "thousand")) else 1
        return round(float("".join(c for c in text if c.isdigit() or c == ".")) * scale)
    total = current = 0
    for word in _LETTERS.findall(text):
        if word in _EN_SMALL:
            current += _EN_SMALL[word]
        elif word == "hundred":
            current = (current or 1) * 100
        elif word == "thousand":
            total += (current or 1) * 1000
            current = 0
    return total + current


# --- Chinese numbers: numerals ("三千五百", "两万"), digits ("5000"), or both ("2万", "1.5万", "5千").

_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_ZH_CHARS = "".join(_ZH_DIGITS) + "".join(_ZH_UNITS)
_ZH_NUM = rf"(?=[\d{_ZH_CHARS}])(?:\d{{1,3}}(?:,\d{{3}})+(?!\d)|\d+(?:\.\d+)?)?(?:[{_ZH_CHARS}][{_ZH_CHARS}\d]*)?"
# "5000字", "三千余字", "5000多个字", "3000个汉字"; not 26个字母, 500字符, 字节, 字体, 字段.
_ZH_UNIT = r"\+?\s*[余多]?\s*个?汉?字(?![符节体母段号典幕])"
# Only at the start of a number; a lone numeral before 字 is a word, not a length (三字经, 十字路口, 一字一句, 四字成语).
_ZH_START = rf"(?<![\d.{_ZH_CHARS}])(?<!\d,)(?![一二两三四五六七八九十]字)"

_ZH_RANGE = re.compile(rf"{_ZH_START}(?P<a>{_ZH_NUM})(?:{_ZH_UNIT})?\s*[-–—~至到]\s*(?P<b>{_ZH_NUM}){_ZH_UNIT}")
_ZH_SINGLE = re.compile(rf"{_ZH_START}(?P<n>{_ZH_NUM}){_ZH_UNIT}")
_ZH_TOKEN = re.compile(r"\d+(?:\.\d+)?|\D")


def _parse_zh(text: str) -> int:
    """Read a Chinese number matched by _ZH_NUM, including the spoken short form "一万五" = 15000."""
    total = section = 0.0  # total: whole 万s so far; section: the part below 万
    number: float | None = None  # digits read since the last unit
    last_unit, tail = 0, []  # tail: tokens since the last unit
    for token in _ZH_TOKEN.findall(text.replace(",", "")):
        if token in _ZH_UNITS:
            unit = _ZH_UNITS[token]
            if unit == 10000:
                total += (section + (number or 0) or 1) * unit
                section = 0
            else:
                section += (1 if number is None else number) * unit
            number, last_unit, tail = None, unit, []
        else:
            digit = float(token) if token[0].isdigit() else _ZH_DIGITS[token]
            number = digit if number is None else number * 10 + digit
            tail.append(token)
    if number is not None and last_unit >= 100 and len(tail) == 1 and tail[0] not in "零〇" and number < 10:
        number *= last_unit // 10  # "三千五" is 3500, "两万五" is 25000
    return round(total + section + (number or 0))


# Used by ranges like "3-4k words" or "三到五万字", where the low end borrows the high end's multiplier.
_MULTIPLIERS = (10000, 1000, 100)


def _range(low: int, high: int) -> RequiredLength | None:
    low, high = min(low, high), max(low, high)
    for multiplier in _MULTIPLIERS:
        if low * multiplier <= high < low * multiplier * 10:
            low *= multiplier
            break
    return RequiredLength(low, high) if low > 0 else None


def required_length(instruction: str) -> RequiredLength | None:
    """Extract the length in words (or 字) an instruction asks for, so outputs can be checked against it.

    Only numbers followed by "word(s)" or "字" count: years, item counts, money and "characters" do not.
    Qualifiers ("at least", "around", "不少于", "左右") keep the number as a single length. When several
    lengths appear, the largest wins: per-section lengths are smaller than the whole output's.
    """
    text = unicodedata.normalize("NFKC", instruction)  # full-width digits and ～ become plain ones
    found: list[RequiredLength] = []
    taken: list[tuple[int, int]] = []
    for match in _EN_RANGE.finditer(text):
        low = match["a1"] or match["a2"] or match["a3"]
        high = match["b1"] or match["b2"] or match["b3"]
        found.append(_range(_parse_en(low), _parse_en(high)))
        taken.append(match.span())
    for match in _ZH_RANGE.finditer(text):
        found.append(_range(_parse_zh(match["a"]), _parse_zh(match["b"])))
        taken.append(match.span())
    for pattern, parse in ((_EN_SINGLE, _parse_en), (_ZH_SINGLE, _parse_zh)):
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue  # the end of a range, already read
            value = parse(match["n"])
            found.append(RequiredLength(value, value) if value > 0 else None)
    lengths = [length for length in found if length is not None]
    return max(lengths, key=lambda length: (length.high, length.low), default=None)


def length_score(words: int, required: int) -> float:
    """LongBench-Write's S_l: 100 on target; falls to 0 at 4x the length above, or at a third of it below."""
    if required <= 0:
        raise ValueError(f"required length must be positive, got {required}")
    if words <= 0:
        return 0.0
    if words > required:
        return 100 * max(0.0, 1 - (words / required - 1) / 3)
    return 100 * max(0.0, 1 - (required / words - 1) / 2)


def length_score_range(words: int, required: RequiredLength) -> float:
    """S_l for a range: full marks anywhere inside it, otherwise scored against the nearer bound."""
    if required.low <= words <= required.high:
        return 100.0
    return length_score(words, required.low if words < required.low else required.high)
