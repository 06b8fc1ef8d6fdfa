"""Is a model's answer usable writing? Empty, cut-off, filtered, refused or error-message answers are not."""

from __future__ import annotations

import re
from dataclasses import replace

from ..backends.openai_http import MAX_RESPONSE_BYTES, Completion

_REFUSAL = re.compile(
    r"^\s*(?:i['’]m sorry|i am sorry|sorry,|i apologi[sz]e|i can(?:no|['’])t (?:help|assist|write|fulfil|comply|provide)"
    r"|i(?: am|['’]m) (?:unable|not able) to|as an ai(?: language model)?|i won['’]t be able)"
    r"|^\s*(?:抱歉|对不起|很抱歉|非常抱歉|作为一个?(?:AI|人工智能)|我无法|我不能(?:帮|提供|完成|满足))",
    re.IGNORECASE,
)
_ERROR_TEXT = re.compile(
    r"^\s*(?:error[:\s]|traceback \(most recent call last\)|internal server error|rate limit(?:ed)? exceeded"
    r"|\{\s*\"error\"|<!doctype html|<html|request failed|service unavailable|bad gateway)",
    re.IGNORECASE,
)


def answer_problem(completion: Completion) -> str | None:
    """Why this answer must not be used (a short reason), or None when it is usable."""
    if completion.finish_reason == "length":
        if completion.reasoning_tokens:  # a reasoning model's limit bounds its hidden reasoning too
            return (f"cut off (finish_reason=length) after {completion.reasoning_tokens} reasoning tokens: raise "
                    "generation.plan_max_tokens / paragraph_max_tokens")
        return "cut off (finish_reason=length)"
    if completion.finish_reason == "unreadable":
        return "the server's answer was not a chat completion"
    if completion.finish_reason == "oversized":
        return f"the server's answer was larger than {MAX_RESPONSE_BYTES:,} bytes"
    if completion.finish_reason == "content_filter":
        return "blocked by the provider's content filter"
    text = completion.text.strip()
    if not text:
        return "empty answer"
    if looks_like_refusal(text):
        return "refusal"
    if _ERROR_TEXT.match(text):
        return "error message instead of writing"
    return None


def looks_like_refusal(text: str) -> bool:
    """A refusal or apology at the start of an answer ("I'm sorry, I can't", "抱歉，我无法")."""
    return bool(_REFUSAL.match(text))


# The end of a sentence: Latin punctuation before a space, or CJK punctuation; closing quotes stay with it.
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(?=\s)|[.!?][\"'”’)\]]*$|[。！？…][”’」』）]*")


def trimmed(completion: Completion) -> Completion:
    """A cut-off answer kept up to the end of its last complete sentence (empty when it has none)."""
    end = 0
    for match in _SENTENCE_END.finditer(completion.text):
        end = match.end()
    return replace(completion, text=completion.text[:end], finish_reason="trimmed")
