"""Is a model's answer usable writing? Empty, cut-off, filtered, refused or error-message answers are not."""

from __future__ import annotations

import re
from dataclasses import replace

from ..backends.base import MAX_RESPONSE_BYTES, Completion

# The assistant speaking of itself: "As an AI language model, I ...", "作为一个AI语言模型，我". Not "as an AI project
# manager" or "作为人工智能领域的先驱": an essay may talk about AI.
AI_SELF = (r"as an (?:ai|artificial intelligence)(?: (?:language |text-based )?model| assistant| chatbot| system)?\s*,?\s*I\b"
           r"|作为(?:一[个名款种])?(?:AI|人工智能)(?:语言模型|助手|模型|程序|系统)?\s*[，,]?\s*我")
_REFUSAL = re.compile(
    r"^\s*(?:(?:i['’]m|i am) sorry|sorry, (?:but )?i\b|i apologi[sz]e(?:,| but| for (?:the|any) (?:confusion|inconvenience))"
    r"|i can(?:no|['’])t (?:help|assist|write|fulfil|comply|provide)"
    rf"|i(?: am|['’]m) (?:unable|not able) to|{AI_SELF}|i won['’]t be able)"
    r"|^\s*(?:抱歉|对不起|很抱歉|非常抱歉|我无法|我不能(?:帮|提供|完成|满足))",
    re.IGNORECASE,
)
# Answers at most this many characters per token of max_tokens (a token averages about 4 English characters,
# fewer in Chinese): generous, and still bounds what a misbehaving server can feed into later prompts.
MAX_CHARS_PER_TOKEN = 10

# Provider and gateway errors sent as HTTP 200 content. Structural forms (a JSON error object, an HTML page, a
# traceback, "Error: ...") are recognised at the start of any answer.
_ERROR_START = re.compile(
    r"^\s*(?:(?:response|result|output|响应|返回)\s*[:：]\s*)?(?:\{\s*\"(?:error|errors|error_code|err_?msg|detail)\""
    r"|\[\s*\{\s*\"error\")"
    r"|^\s*(?:traceback \(most recent call last\)|<!doctype html|<html|<\?xml"
    r"|(?:upstream |api |server |internal |gateway |request )?error\s*(?:\d{3}\s*)?[:：]|(?:错误|报错|异常)\s*[:：]"
    r"|(?:http\s*)?[45]\d\d\s+(?:bad gateway|gateway time-?out|service unavailable|internal server error"
    r"|too many requests|bad request|not found|unauthorized|forbidden))",
    re.IGNORECASE,
)
# Worded errors only count in a short answer (a real paragraph is longer) that opens with one, or that names one
# and asks to retry: an essay about timeouts, gateways or "error" in software is left alone.
_SHORT_ANSWER = 600  # bytes of UTF-8: about 100 English words, or 200 Chinese characters
_ERROR_WORDS = (
    r"upstream (?:error|connect error|request timeout|timed out)|(?:request|connection|the model|model|server)"
    r" (?:has |have )?timed out|time-?out error|internal server error|bad gateway|gateway time-?out"
    r"|service (?:is )?(?:temporarily |currently )?unavailable|too many requests|rate limit(?:ed)?(?: (?:exceeded|reached))?"
    r"|quota (?:exceeded|exhausted)|(?:we(?:['’]re| are) )?(?:currently )?experiencing (?:unusually |very |extremely )?"
    r"(?:high|heavy) (?:demand|traffic|load|volume)|(?:the )?(?:server|model|service|engine|system|api) (?:is )?"
    r"(?:currently )?(?:overloaded|at capacity|busy)|(?:an )?(?:unexpected |internal )?error (?:has )?occurred"
    r"|something went wrong|error (?:while|when) processing (?:your|the) request|request failed"
    r"|上游错误|服务器?(?:繁忙|忙碌|异常|错误|暂时不可用|不可用|过载)|系统(?:繁忙|异常|错误)|网络(?:错误|异常|繁忙)"
    r"|请求(?:失败|超时|过于频繁|过多|量过大)|(?:当前|目前)?(?:访问|使用|请求)(?:人数|量)?(?:过多|过大|太多)"
    r"|内部(?:服务器)?错误|(?:发生|出现)了?(?:未知)?错误|出错了|额度(?:已)?(?:用尽|不足)|模型(?:超时|过载|繁忙)"
)
_ERROR_OPENING = re.compile(rf"^\s*(?:{_ERROR_WORDS})\s*(?:[:：,，.。!！;；(（\-—…]|$)", re.IGNORECASE)
_ERROR_NAMED = re.compile(_ERROR_WORDS, re.IGNORECASE)
_RETRY = re.compile(
    r"(?:retry|try again|resend|re-?submit|come back)\b[^.!?\n]{0,40}?\b(?:later|shortly|soon|in (?:a (?:few|moment)|\d+))"
    r"|please (?:retry|try again)|retry your request|请(?:稍后|稍候|过一会儿?)?(?:再试|重试|再来)|稍[后候](?:再试|重试|再来)|请重新(?:尝试|发送|提交)",
    re.IGNORECASE,
)
# Placeholders left instead of writing ("[Paragraph 3 content goes here]", "[Insert ...]", "【此处省略……】").
_PLACEHOLDER = re.compile(
    r"\[[^\[\]\n]{0,80}?\b(?:goes here|go here|content here|text here|placeholder|to be (?:written|added|filled in|inserted"
    r"|completed|continued)|TBD|TODO)\b[^\[\]\n]{0,80}\]|\[\s*insert\b[^\[\]\n]{0,80}\]|\blorem ipsum\b"
    r"|[\[【（(]\s*(?:此处|这里|在此)(?:省略|填写|插入|补充|添加|待)[^\]】）)\n]{0,40}[\]】）)]"
    r"|[\[【（(][^\]】）)\n]{0,30}(?:待补充|待续写|待完善|内容略|内容待定)[^\]】）)\n]{0,10}[\]】）)]",
    re.IGNORECASE,
)
# Deferrals: the model promises the writing for a later message instead of writing it now. They open or close an
# answer: only its first and last _EDGE characters are read.
_EDGE = 600
_DEFERRAL = re.compile(
    r"\b(?:I['’]ll|I will|I(?:['’]m| am) going to|let me|we['’]ll|we will)\s+(?:continue|proceed|pick up|resume|finish"
    r"|complete|write|cover|provide|go on|expand)\b[^\n]{0,150}?\b(?:in|with|on) (?:my|the|a|your) (?:next|following"
    r"|subsequent|separate) (?:response|message|reply|answer|turn|output)"
    r"|\b(?:continued|continues|to be continued) in (?:my|the) next (?:response|message|reply|answer)"
    r"|\b(?:let me know|tell me) if you(?:['’]d| would)? (?:like|want) me to (?:continue|proceed|go on|keep writing)"
    r"|\bwould you like me to (?:continue|proceed|go on|keep writing)[^\n]{0,80}\?\s*$"
    r"|\b(?:due to|because of) (?:the )?(?:response|character|token|output|message) (?:length )?(?:limits?|limitations?"
    r"|constraints?),? I\b"
    r"|[\[(（【]\s*(?:to be continued|continued in|continues in|continuing in|未完待续|待续)[^\])）】\n]{0,60}[\])）】]"
    r"|(?:to be continued|未完待续)[\s.。…!！]*$"
    r"|我(?:将|会)[^。\n]{0,20}?在下一?(?:条|个|次)?(?:回复|回答|消息)中(?:继续|完成|写|提供)"
    r"|由于(?:回复|回答|输出|消息)(?:的)?(?:长度|字数)(?:限制|所限)"
    r"|(?:如需|如果需要|需要我|是否需要我|要不要我)继续(?:写|撰写|生成|创作|扩写)|请回复[“\"]?继续",
    re.IGNORECASE,
)
# Every _PLACEHOLDER / _DEFERRAL match contains one of these (lower-cased): most answers contain none and skip the
# regex, which costs milliseconds on a long answer.
_PLACEHOLDER_HINTS = ("[", "lorem ipsum", "此处", "这里", "在此", "待补充", "待续写", "待完善", "内容略", "内容待定")
_DEFERRAL_HINTS = (
    *(f"{word} {kind}" for word in ("next", "following", "subsequent", "separate")
      for kind in ("response", "message", "reply", "answer", "turn", "output")),
    "let me know if", "tell me if", "would you like me to", "to be continued", "continued in", "continues in",
    "continuing in", "未完待续", "待续", "回复中", "回答中", "消息中", "长度限制", "字数限制", "长度所限", "字数所限",
    "继续写", "继续撰写", "继续生成", "继续创作", "继续扩写", "回复“继续", "回复\"继续", "回复继续",
    *(f"{what} {length}{limit}" for what in ("response", "character", "token", "output", "message")
      for length in ("", "length ") for limit in ("limit", "constraint")),
)
# Chat-template tokens: the model wrote past its own turn, often inventing the user's next message.
_TEMPLATE = re.compile(
    r"\[/?INST\]|<</?SYS>>|<\|[A-Za-z_][\w.-]{0,30}\|>|<｜[^｜\n]{1,40}｜>|</?(?:start|end)_of_turn>|</s>"
    r"|\[gMASK\]|<sop>|<eop>"
)


def answer_problem(completion: Completion, max_chars: int | None = None) -> str | None:
    """Why this answer must not be used (a short reason), or None when it is usable. `max_chars` bounds the size:
    an answer longer than its max_tokens could hold is a misbehaving server, and would be fed into every later
    prompt of its job."""
    if max_chars is not None and len(completion.text) > max_chars:
        return f"answer of {len(completion.text):,} characters, over the {max_chars:,} its max_tokens allows"
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
    if looks_like_error(text):
        return "error message instead of writing"
    if token := template_leak(text):
        return f"chat-template token {token!r} in the answer"
    lowered = text.lower()
    if any(hint in lowered for hint in _PLACEHOLDER_HINTS) and (match := _PLACEHOLDER.search(text)):
        return f"placeholder instead of writing: {match.group(0)[:60]!r}"
    edges = lowered if len(text) <= 2 * _EDGE else lowered[:_EDGE] + "\n" + lowered[-_EDGE:]
    if any(hint in edges for hint in _DEFERRAL_HINTS) and (match := _DEFERRAL.search(edges)):
        return f"writing deferred to a later message: {match.group(0)[:60]!r}"
    return None


def looks_like_error(text: str) -> bool:
    """A provider's or gateway's error message delivered as the answer (English or Chinese)."""
    if _ERROR_START.match(text):
        return True
    if len(text) >= _SHORT_ANSWER or len(text.encode()) >= _SHORT_ANSWER:  # bytes: a Han character says more
        return False
    return bool(_ERROR_OPENING.match(text) or (_ERROR_NAMED.search(text) and _RETRY.search(text)))


def template_leak(text: str) -> str | None:
    """The first chat-template token in `text` ("<|im_start|>", "[INST]", "</s>", ...), or None. `</s>` closes
    HTML strikethrough too: it counts only in a text without an `<s>`."""
    for match in _TEMPLATE.finditer(text):
        if match.group(0) != "</s>" or "<s>" not in text:
            return match.group(0)
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
