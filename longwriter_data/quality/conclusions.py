"""Premature conclusions: a paragraph that is not the last one but ends with a closing summary ("In summary, ...",
"综上所述，……"). AgentWrite writes one paragraph per call, and models tend to wrap each one up as if it were the
whole piece, which the write prompt asks them not to do: the joined text then reads as a string of mini-essays.

Only the tail of a paragraph is read, so the check costs the same however long the paragraph is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_OPENERS_EN = (r"in summary|in conclusion|to sum up|to sum it up|summing up|to summari[sz]e|in sum|overall|all in all"
                r"|in short|in closing|to conclude|in a nutshell")
_OPENERS_ZH = r"综上所述|综上|总之|总而言之|总的来说|总的看来|总体而言|总体来说|总体来看|概括(?:而言|来说)|概而言之|简而言之|一言以蔽之"
# An opener where a sentence or a line starts (after markdown emphasis or a heading mark; English ones followed by a
# comma or colon: "Overall, ..." but not "Overall performance ..."), or a heading line that names the conclusion
# ("### Conclusion", "**总结**").
_CLOSING = re.compile(
    r"(?:^|(?<=[.!?…。！？；;])|(?<=[.!?…;]\s)|(?<=[.!?][\"'”’)\]]\s))[ \t*_#>]*"
    rf"(?:(?:{_OPENERS_EN})(?:\*\*)?\s*[,，:：]|{_OPENERS_ZH}"
    r"|(?:conclusions?|summary|总结|结论|结语|小结)\s*(?:\*\*)?\s*[:：]?\s*$)",
    re.IGNORECASE | re.MULTILINE,
)
# Every _CLOSING match contains one of these (lower-cased): most tails contain none and skip the regex.
_HINTS = ("summar", "conclu", "sum up", "sum it up", "summing up", "in sum", "overall", "all in all", "in short",
          "in closing", "nutshell", "综上", "总之", "总而言之", "总的", "总体", "概括", "概而言之", "简而言之", "一言以蔽之",
          "总结", "结论", "结语", "小结")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)|[。！？]+[”’」』）]*")
_TAIL = 1500  # characters: more than the last three sentences of any paragraph worth judging
_LAST_SENTENCES = 3  # a summary that opens one of the paragraph's last three sentences closes the paragraph


def ends_with_conclusion(paragraph: str) -> bool:
    """Whether one of the paragraph's last three sentences opens with a closing summary."""
    tail = paragraph.rstrip()[-_TAIL:]
    lowered = tail.lower()
    if not any(hint in lowered for hint in _HINTS):
        return False
    last = None
    for last in _CLOSING.finditer(tail):
        pass
    if last is None:
        return False
    return len(_SENTENCE_END.findall(tail, last.end())) <= _LAST_SENTENCES


def premature_conclusions(paragraphs: Sequence[str]) -> int:
    """How many paragraphs other than the last end with a closing summary."""
    return sum(ends_with_conclusion(p) for p in paragraphs[:-1])
