"""Word counting, required-length extraction and the length score (LongBench-Write's rules)."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

# LongBench-Write's count (THUDM/LongWriter, evaluation/pred.py): each character in U+4E00-U+9FFF, plus each match
# of `\b[a-zA-Z]+\b`. `\b` is Unicode-aware, so a Latin run touching a letter, digit, underscore or Han character
# ("苹果的iPhone", "5th", "café") is no word; extension-block ideographs and kana count nothing.
_WORD = re.compile(r"[\u4e00-\u9fff]|\b[a-zA-Z]+\b")



class Band(NamedTuple):
    label: str  # as tables show it
    low: int
    high: int | None
    short: str  # as a column or a key shows it


# LongWriter's length bands in words; the last closed band includes 32k itself.
BANDS = (
    Band("[0, 2k)", 0, 2000, "<2k"),
    Band("[2k, 4k)", 2000, 4000, "2k-4k"),
    Band("[4k, 8k)", 4000, 8000, "4k-8k"),
    Band("[8k, 16k)", 8000, 16000, "8k-16k"),
    Band("[16k, 32k]", 16000, 32000, "16k-32k"),
    Band(">32k", 32000, None, ">32k"),
)
LIMIT = 32000


def band_of(words: int) -> int:
    """Index into BANDS."""
    if words > LIMIT:
        return len(BANDS) - 1
    return min(next(i for i, band in enumerate(BANDS) if band.high is None or words < band.high), len(BANDS) - 2)


def words_of(text: str) -> list[str]:
    """The words LongBench-Write counts, in order (one scan serves the count and the repetition filters)."""
    return _WORD.findall(text)


def count_words(text: str) -> int:
    """Count words exactly as LongBench-Write does (the count behind S_l, the bands, the card and `inspect`)."""
    return len(_WORD.findall(text))


_HAN = re.compile(r"[\u4e00-\u9fff]+")


def approx_tokens(text: str) -> int:
    """Tokens a BPE tokenizer needs, roughly: 4 characters each, Han characters 1.5 each (for budgets and
    estimates; the provider's `usage` is the truth)."""
    han = 0 if text.isascii() else len(text) - len(_HAN.sub("", text))  # C speed: prompts run to 100k characters
    return int((len(text) - han) / 4 + han / 1.5) + 1


# Filtering our own data: how far past a one-sided requirement an answer still complies (see RequiredLength.window).
AT_LEAST_CEILING = 2  # "at least 3,000 words" is met by 3,000-6,000 (S_l against 6,000 beyond)
AT_MOST_FLOOR = 0.5  # "no more than 3,000 words" is met by 1,500-3,000 (S_l against 1,500 below)


@dataclass(frozen=True)
class RequiredLength:
    """The output length an instruction asks for, in words: `low` the floor, `high` the ceiling, None where the
    instruction sets none. "About N" has low == high == N; "at least N" is (N, None); "at most N" is (None, N)."""

    low: int | None
    high: int | None

    def __post_init__(self) -> None:
        if (self.low is None and self.high is None) or any(b is not None and b <= 0 for b in (self.low, self.high)) \
                or (self.low is not None and self.high is not None and self.low > self.high):
            raise ValueError(f"a required length needs 0 < low <= high, got low={self.low}, high={self.high}")

    @classmethod
    def about(cls, words: int) -> RequiredLength:
        return cls(words, words)

    @classmethod
    def at_least(cls, words: int) -> RequiredLength:
        return cls(words, None)

    @classmethod
    def at_most(cls, words: int) -> RequiredLength:
        return cls(None, words)

    @property
    def kind(self) -> str:
        """about, at_least, at_most or range."""
        if self.low is None:
            return "at_most"
        if self.high is None:
            return "at_least"
        return "about" if self.low == self.high else "range"

    @property
    def target(self) -> int:
        """The one length LongBench-Write scores against: the number stated, a range's upper end (its labels for
        "字数要求100至200字" and "300到400字" are 200 and 400)."""
        return self.high if self.high is not None else self.low

    @property
    def window(self) -> tuple[int, int]:
        """The lengths that comply, for filtering our own data: a floor is met up to AT_LEAST_CEILING times it,
        a ceiling down to AT_MOST_FLOOR of it (a compliant answer must not be dropped for being compliant)."""
        low = self.low if self.low is not None else max(1, round(self.high * AT_MOST_FLOOR))
        return low, self.high if self.high is not None else self.low * AT_LEAST_CEILING

    def times(self, parts: int) -> RequiredLength:
        """The whole of `parts` parts of this length each."""
        return RequiredLength(*(None if b is None else b * parts for b in (self.low, self.high)))

    def as_record(self) -> dict:
        """The structured requirement a job record keeps."""
        return {"kind": self.kind, "target": self.target, "low": self.low, "high": self.high}

    @classmethod
    def from_record(cls, record: dict) -> RequiredLength:
        return cls(record["low"], record["high"])

    def __str__(self) -> str:
        kind = self.kind
        return f"{self.low}-{self.high}" if kind == "range" else f"{kind.replace('_', ' ')} {self.target}"


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


def _finite(value: float) -> int:
    """A number as an int; 0 (no length) for one too long to be a float (a run of 400 digits)."""
    return round(value) if math.isfinite(value) else 0


def _parse_en(text: str) -> int:
    """Read an English number matched by _EN_NUM: "10,000", "2.5k", "twenty-five hundred", "a thousand"."""
    text = text.lower().rstrip("+").strip()
    if text[0].isdigit():
        scale = 1000 if text.endswith(("k", "thousand")) else 1
        return _finite(float("".join(c for c in text if c.isdigit() or c == ".")) * scale)
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
# "5000字", "三千余字", "5000多个字", "3000个汉字", "300词", "500个单词"; not 26个字母, 500字符, 字节, 字体, 字段, 词语.
_ZH_UNIT = r"\+?\s*[余多]?\s*个?(?:汉?字(?![符节体母段号典幕])|单?词(?![语汇组条典牌性根缀]))"
# Only at the start of a number; a lone numeral before 字 is a word, not a length (三字经, 十字路口, 一字一句, 四字成语).
_ZH_START = rf"(?<![\d.{_ZH_CHARS}])(?<!\d,)(?![一二两三四五六七八九十][字词])(?!千字文)"

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
    return _finite(total + section + (number or 0))


# Used by ranges like "3-4k words" or "三到五万字", where the low end borrows the high end's multiplier.
_MULTIPLIERS = (10000, 1000, 100)


def _range(low: int, high: int) -> RequiredLength | None:
    low, high = min(low, high), max(low, high)
    for multiplier in _MULTIPLIERS:
        if low * multiplier <= high < low * multiplier * 10:
            low *= multiplier
            break
    return RequiredLength(low, high) if low > 0 else None


# --- Lengths named by a cue, the unit left out: "字数1400左右", "字数要求：2000左右", "字数在4000至5000之间",
# "word count: 2,000"; and a clause that is only a number and a qualifier: "，5000以内。"

_ZH_QUALS = (r"(?:不少于|不低于|不小于|不超过|不多于|不高于|至少|最少|最多|至多|少于|多于|超过|大约|大概|约|控制在|限制在|"
             r"在|为|是)")
_CLAUSE_END = r"(?:$|[，,。；;！!？?\s)）、])"
_ZH_CUE = re.compile(
    rf"(?:字数|篇幅|长度)(?:要求|限制|控制)?\s*[:：]?\s*(?:{_ZH_QUALS}\s*)*(?P<a>{_ZH_NUM})"
    rf"(?:\s*(?:{_ZH_UNIT})?\s*[-–—~至到]\s*(?P<b>{_ZH_NUM}))?(?:{_ZH_UNIT})?"
    rf"(?=\s*(?:左右|以内|之内|以上|以下|之间|上下|内|为宜|即可)?(?:的|{_CLAUSE_END}))"
)
_BARE_NUM = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"
_ZH_BARE = re.compile(  # "，5000以内。", "，不多于4000。": a qualifier before or after the number
    rf"(?:^|(?<=[，,。；;！!？?\n：:（(]))\s*(?:(?:约|大约|大概)?\s*(?P<a1>{_BARE_NUM})(?=\s*(?:左右|以内|之内|以上|以下)"
    rf"\s*{_CLAUSE_END})|(?:不少于|不低于|不超过|不多于|至少|最多|至多)\s*(?P<a2>{_BARE_NUM})(?=\s*{_CLAUSE_END}))"
)
_ZH_CUE_WORD = re.compile("字数|篇幅")
_EN_QUALS = (r"(?:at\s+least|at\s+most|no\s+(?:more|less|fewer)\s+than|not\s+(?:more|less|fewer)\s+than|about|around"
             r"|approximately|roughly|under|over|up\s+to|between|(?:a\s+)?(?:minimum|maximum)(?:\s+of)?|max|min)")
_EN_CUE = re.compile(
    rf"\bword[\s-]*(?:count|limit|length|target)\b\s*(?:[:=]|of|is|should\s+be|must\s+be|will\s+be)?\s*"
    rf"(?:{_EN_QUALS}\s+)?(?P<a>{_EN_NUM})(?:\s*(?:-|–|—|~|to|and)\s*(?P<b>{_EN_NUM}))?(?![\d,.]?\d)"
    rf"(?!\s*(?:characters?|chars?|pages?|tokens?|lines?|sentences?|paragraphs?|%)(?![a-z]))",
    re.IGNORECASE,
)

# --- Floors and ceilings, read around a number: the words just before it, or just after its unit.
_NO = r"(?<!no\s)(?<!not\s)"
_CEILING_BEFORE = re.compile(
    rf"(?:no\s+more\s+than|not\s+more\s+than|(?:no|not)\s+longer\s+than|at\s+most|up\s+to|under|{_NO}(?:less|fewer)\s+than"
    r"|below|within|(?:a\s+)?maximum(?:\s+of)?|max\.?|(?:not|n't|never)\s+(?:to\s+)?exceed(?:ing)?|without\s+exceeding"
    r"|limit(?:ed)?\s+(?:of|to)|word\s*limit(?:\s+of)?|capped\s+at|(?:不|不得|不要|不能|不可|不宜|别|勿)超过|不多于|不高于|不大于|不超出|最多|至多"
    r"|(?<!不)少于|(?<!不)低于|(?<!不)小于|上限为?|(?<![无不上下])限)\s*[:：]?\s*(?:写|在)?\s*$",
    re.IGNORECASE,
)
_FLOOR_BEFORE = re.compile(
    rf"(?:at\s+leas[te]|(?:no|not)\s+(?:less|fewer|shorter)\s+than|(?:a\s+)?minimum(?:\s+of)?|min\.?|{_NO}more\s+than"
    r"|over|upwards\s+of|in\s+excess\s+of|不少于|不低于|不小于|不短于|不下于|至少|最少|起码|最低|(?<!不)多于|超过"
    r"|(?<!不)高于|(?<!不)大于)\s*[:：]?\s*(?:要?写|在|an?\s+)?\s*$",
    re.IGNORECASE,
)
_CEILING_AFTER = re.compile(
    r"\s*(?:以内|之内|以下(?!内容|要求|几|方面|问题|信息|材料|为|是)|内(?!容)|为限|封顶"
    r"|or\s+(?:less|fewer|shorter|under|below)|max(?:imum)?\b|at\s+(?:the\s+)?most|at\s+max|limit\b)",
    re.IGNORECASE,
)
_FLOOR_AFTER = re.compile(r"\s*(?:以上|及以上|或以上|之上|起(?![草名来因点])|打底|or\s+(?:more|longer|above|over)|minimum|min\b"
                          r"|at\s+(?:the\s+)?least|plus\b)", re.IGNORECASE)

# --- Lengths of each part: "五篇…每篇400字左右", "分两部分写，各写1000字", "three essays of 500 words each".

_MEASURES = r"(?:篇|章|节|段|个部分|部分|首|封|天|集|幕|回|课|讲|期|小节|条|则|份)"
_ZH_EACH = re.compile(
    rf"(?:每一?个?(?P<m>{_MEASURES})[^，,。；;！!？?\d]{{0,8}}|各(?:自|写|需|要|为|占|有)?{_ZH_QUALS}?)$")
_ZH_COUNT = r"(?<![每第\d])(?P<n>\d+|[一二两三四五六七八九十]+)\s*个?"
_ZH_PARTS = r"(?:部分|篇|章|节|段|首|封|幕|集|方面|份|则|条|部)"
_EN_EACH_AFTER = re.compile(
    r"\s*(?:long\s+|in\s+length\s+)?(?:each|apiece|per\s+(?:essay|section|chapter|part|piece|story|post|article"
    r"|letter|entry|paragraph|poem|episode|scene|day|item|one)s?)\b",
    re.IGNORECASE,
)
_EN_EACH_BEFORE = re.compile(r"\b(?:each|every)\s+(?:[a-z]+\s+){0,5}$", re.IGNORECASE)
# "three essays", "4 short stories", "a 10-chapter novel"
_EN_COUNT = re.compile(rf"\b(?P<n>\d+|{_EN_SMALL_WORD})(?P<noun>\s+(?:[a-z-]+\s+){{0,2}}?[a-z-]+s|-[a-z]+)\b",
                       re.IGNORECASE)
_SENTENCE = re.compile(r"[.!?;\n。！？；]")


def _parts(text: str, start: int, end: int) -> int:
    """How many parts a length is for: 1 for the whole text, the count of parts for a length of each part
    ("每篇", "各", "each"), or 0 when it is per part but the count is nowhere to be found."""
    zh = _ZH_EACH.search(text, max(0, start - 24), start)
    if zh and zh["m"]:  # 每篇: the largest count of that measure word anywhere else ("五篇")
        where = text[:zh.start()] + " " + text[end:]
        counts = [_parse_zh(m["n"]) for m in re.finditer(_ZH_COUNT + re.escape(zh["m"]), where)]
    elif zh:  # 各: the nearest count of parts before it ("分两部分写")
        counts = [_parse_zh(m["n"]) for m in re.finditer(_ZH_COUNT + _ZH_PARTS, text[:zh.start()])][-1:]
    else:
        sentence = max((m.end() for m in _SENTENCE.finditer(text, max(0, start - 200), start)), default=0)
        if not (_EN_EACH_AFTER.match(text, end) or _EN_EACH_BEFORE.search(text, max(sentence, start - 60), start)):
            return 1
        counts = [_parse_en(m["n"]) for m in _EN_COUNT.finditer(text, 0, start)
                  if not m["noun"].lower().rstrip("s").endswith("word")][-1:]  # the nearest before it
    counts = [n for n in counts if 1 < n <= 1000]
    return max(counts, default=0)


def _bounded(text: str, start: int, end: int, number: str, value: int) -> RequiredLength:
    """A single number with the floor or ceiling the words around it make of it."""
    before = text[max(0, start - 24):start]
    if _CEILING_BEFORE.search(before) or _CEILING_AFTER.match(text, end):
        return RequiredLength.at_most(value)
    if _FLOOR_BEFORE.search(before) or _FLOOR_AFTER.match(text, end) or "+" in number:
        return RequiredLength.at_least(value)
    return RequiredLength.about(value)


# Most specific first: a number read by one pattern is not read again by a later one.
_READERS = (
    (_ZH_CUE, _parse_zh), (_EN_CUE, _parse_en), (_EN_RANGE, _parse_en), (_ZH_RANGE, _parse_zh),
    (_EN_SINGLE, _parse_en), (_ZH_SINGLE, _parse_zh), (_ZH_BARE, _parse_zh),
)


def _group(match: re.Match, name: str) -> str | None:
    """The group `name`, or whichever of name1, name2, ... matched (one pattern, several phrasings)."""
    return next((match[g] for g in match.re.groupindex if g.rstrip("123") == name and match[g]), None)


def _stated(text: str) -> list[tuple[RequiredLength, int]]:
    """Every length the text states, each with how many parts it is for (see _parts)."""
    found: list[tuple[RequiredLength, int]] = []
    taken: list[tuple[int, int]] = []
    for pattern, parse in _READERS:
        for match in pattern.finditer(text):
            a, b = _group(match, "a") or _group(match, "n"), _group(match, "b")
            names = [g for g in match.re.groupindex if match[g] and g.rstrip("123") in ("a", "b", "n")]
            start, stop = min(match.start(g) for g in names), max(match.end(g) for g in names)
            if any(start < t_end and t_start < stop for t_start, t_end in taken):
                continue  # already read by a more specific pattern
            taken.append((start, stop))
            if b:
                length = _range(parse(a), parse(b))
            else:
                value = parse(a)
                if pattern is _ZH_BARE and (value < 100 or (match["a2"] and not _ZH_CUE_WORD.search(text))):
                    continue  # "，不超过5000。" is a length only where the text speaks of 字数 (not of a budget)
                length = _bounded(text, start, match.end(), text[start:match.end()], value) if value > 0 else None
            if length is not None:
                found.append((length, _parts(text, start, match.end())))
    return found


def required_length(instruction: str) -> RequiredLength | None:
    """Extract the length in words (or 字) an instruction asks for, so outputs can be checked against it.

    Only numbers followed by "word(s)", "字" or "词", or led by a cue ("字数", "word count"), count: years, item
    counts, money and "characters" do not. The words around a number make it a floor ("at least", "不少于",
    "以上"), a ceiling ("no more than", "不超过", "以内") or a range; a floor and a ceiling stated apart make a
    range. A length of each part ("每篇400字", "500 words each") is multiplied by the count of parts; without a
    count it is a floor. When several lengths appear, the whole's largest wins (a section's is smaller).
    """
    text = unicodedata.normalize("NFKC", instruction)  # full-width digits and ～ become plain ones
    found = _stated(text)
    lengths = [length for length, parts in found if parts == 1]
    if not lengths:  # only lengths of each part: their whole
        lengths = [length.times(parts) if parts else RequiredLength.at_least(length.target) for length, parts in found]
    floors = [length.low for length in lengths if length.kind == "at_least"]
    ceilings = [length.high for length in lengths if length.kind == "at_most"]
    if floors and ceilings and max(floors) < min(ceilings):  # "不少于3000字，不超过5000字"
        lengths = [length for length in lengths if length.kind not in ("at_least", "at_most")]
        lengths.append(RequiredLength(max(floors), min(ceilings)))
    return max(lengths, key=lambda length: (length.target, length.low or 0), default=None)


def requirement(prompt: str, length: int | None = None) -> RequiredLength | None:
    """The requirement of an instruction whose source may give its length too (a pool's `length`, an export's
    `required_length`): the prompt's reading where it agrees (it knows floors and ceilings), else about `length`."""
    stated = required_length(prompt)
    if length is None or (stated is not None and stated.target == length):
        return stated
    return RequiredLength.about(length)


# Ways of asking for a length that required_length does not turn into words: pages, paragraphs, characters, a
# length word without a number. An instruction that has one gets no injected length on top (see pools.inject_length).
_LENGTH_CUE = re.compile(
    r"字数|篇幅|字符|word\s*(?:count|limit)|\b(?:pages?|paragraphs?|sentences?|characters?|chars|lines)\s+long\b"
    r"|(?:\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|a\s+few|several|hundred|thousand))[\s-]*"
    r"(?:k\s*)?(?:pages?|paragraphs?|sentences?|characters?|chars|words?)\b"
    r"|[\d二两三四五六七八九十]\s*(?:页|段|句|行)|[\d百千万]\s*(?:字|词)",  # not 一段 ("a piece of"), 十字路口
    re.IGNORECASE,
)


def mentions_length(prompt: str) -> bool:
    """Whether an instruction asks for a length in any form, read or not: "a 50-page novel", "分3段", "字数适中"."""
    return _LENGTH_CUE.search(unicodedata.normalize("NFKC", prompt)) is not None or required_length(prompt) is not None


def length_score(words: int, required: int) -> float:
    """LongBench-Write's S_l: 100 on target; falls to 0 at 4x the length above, or at a third of it below."""
    if required <= 0:
        raise ValueError(f"required length must be positive, got {required}")
    if words <= 0:
        return 0.0
    if words > required:
        return 100 * max(0.0, 1 - (words / required - 1) / 3)
    return 100 * max(0.0, 1 - (required / words - 1) / 2)


def benchmark_score(words: int, required: RequiredLength) -> float:
    """S_l as LongBench-Write reports it: against the requirement's one target."""
    return length_score(words, required.target)


def compliance_score(words: int, required: RequiredLength) -> float:
    """The length score filtering uses: 100 anywhere in the requirement's window (a floor is met above it, a
    ceiling below it, a range inside it), otherwise S_l against the nearer end of the window."""
    low, high = required.window
    if low <= words <= high:
        return 100.0
    return length_score(words, low if words < low else high)
