"""Which answers a step must not use (error text, placeholders, deferrals, template tokens, oversized), which real
writing it must keep, and the characters no answer or pool may bring into the dataset."""

from __future__ import annotations

import pytest

from longwriter_data.quality.answer_checks import MAX_CHARS_PER_TOKEN, answer_problem, template_leak
from longwriter_data.backends.openai_http import Completion
from longwriter_data.testing.fake_server import chinese, english


def problem(text: str, **kwargs) -> str | None:
    return answer_problem(Completion(text=text, finish_reason="stop"), **kwargs)


BAD = [
    # provider and gateway errors delivered as HTTP 200 content
    ("Upstream error: the model timed out... Please retry later.", "error message"),
    ("We're currently experiencing high demand, which may cause temporary errors.", "error message"),
    ("That model is currently overloaded with other requests. You can retry your request.", "error message"),
    ('Response: {"error": {"message": "upstream request timeout", "code": 504}}', "error message"),
    ('{"error": "rate_limit_exceeded"}', "error message"),
    ("502 Bad Gateway\nnginx", "error message"),
    ("Service Unavailable", "error message"),
    ("The server had an error while processing your request. Sorry about that! Please try again later.",
     "error message"),
    ("Error: upstream model timed out, please retry later.", "error message"),
    ("服务器繁忙，请稍后再试。", "error message"),
    ("当前访问人数过多，请稍后重试。", "error message"),
    ("上游错误：模型响应超时，请稍后重试。", "error message"),
    ("错误：请求失败（504）", "error message"),
    ("系统繁忙", "error message"),
    # placeholders instead of writing
    ("[Paragraph 3 content goes here]", "placeholder"),
    (english(300, 1) + "\n\n[Insert a concrete example from the case study here]", "placeholder"),
    (chinese(300, 1) + "【此处省略具体案例】", "placeholder"),
    ("[内容待补充]", "placeholder"),
    # deferrals: the writing promised for a later message
    (english(200, 2) + " I'll continue writing the rest of this section in my next response.", "deferred"),
    (english(200, 3) + "\n\nLet me know if you'd like me to continue with the next part.", "deferred"),
    (english(200, 4) + " Due to response length limits, I will stop here.", "deferred"),
    (english(200, 5) + "\n\n(To be continued in the next response...)", "deferred"),
    (chinese(200, 2) + "我将在下一条回复中继续写作剩余部分。", "deferred"),
    (chinese(200, 3) + "（未完待续）", "deferred"),
    (chinese(200, 4) + "如需我继续写下一部分，请回复“继续”。", "deferred"),
    # chat-template turns the model invented
    (english(300, 6) + "[/INST] [INST] Now write a poem about the sea.", "chat-template"),
    (english(300, 7) + "<|im_end|>\n<|im_start|>user\nThanks! Now a summary.", "chat-template"),
    (english(300, 8) + "<|eot_id|><|start_header_id|>user<|end_header_id|>", "chat-template"),
    (english(300, 9) + "</s>", "chat-template"),
    (english(300, 10) + "\n<|user|>\nMore please.", "chat-template"),
    (english(300, 11) + "<end_of_turn>\n<start_of_turn>user", "chat-template"),
    (chinese(300, 5) + "<｜end▁of▁sentence｜><｜User｜>继续", "chat-template"),
]


@pytest.mark.parametrize("text, kind", BAD)
def test_bad_answers_are_refused_with_their_kind(text, kind):
    assert kind in (problem(text) or "")


SERVERS = (
    "Error handling is where distributed systems show their character. When a request times out, the client cannot "
    "know whether the server did the work, so a careful design makes every operation idempotent and retries it "
    "with exponential backoff. A gateway that answers 502 Bad Gateway or 503 Service Unavailable is telling the "
    "client that something behind it failed; the message \"Please retry later\" is honest only if retrying can "
    "succeed. Internal server errors deserve the closest look, because they mean the server itself broke a promise. "
    "Teams that log every timeout, alert on the rate of 5xx responses and rehearse their outages learn to tell a "
    "passing overload from a real fault, and they write better error messages for the people who see them."
)
SERVERS_ZH = (
    "服务器繁忙是许多用户在节假日抢票时最常看到的提示。每当访问人数过多，系统就会返回“请稍后再试”，这句话背后其实是一整套限流与"
    "排队机制。工程师们会为每一个接口设置超时时间，当请求超时时，网关会返回错误码，而客户端则按照指数退避的方式重新发送请求。"
    "对用户来说，一条清楚的错误信息远比一个空白页面更友好；对开发者来说，把每一次上游错误都记录下来，才能在事后找出瓶颈。"
    "近年来，各大平台都在改进这套机制：有的增加了排队进度条，有的提前告知预计等待时间，让“服务器繁忙”不再只是一句冷冰冰的话。"
)
STORY = (
    "\"Please try again later,\" the clerk said without looking up, and Mara felt the familiar sinking of a morning "
    "wasted. She had been told the system was down, that the server had timed out, that an error had occurred "
    "somewhere in the capital and nobody here could fix it. She folded the form along its old creases and walked "
    "back into the rain, rehearsing what she would tell her brother, who had warned her that the office never "
    "worked on Mondays and who would, she knew, be unbearable about being right. By the time she reached the bus "
    "stop, she had decided to tell him nothing at all."
)
REAL = [
    SERVERS,
    SERVERS_ZH,
    STORY,
    "Error messages are the part of an interface that users read most closely. " + english(150, 20),
    "An error occurred in the first launch of the rocket, and the engineers spent a year finding it. " + english(150, 21),
    english(200, 22) + " In the next section, I will discuss how these reforms changed the countryside.",
    english(200, 23) + " Due to space limitations, the committee published only a summary of its findings.",
    "Dear Ms. Chen,\n\n" + english(200, 24) + "\n\nSincerely,\n[Your Name]",
    "INT. KITCHEN - NIGHT\n\n" + english(150, 25) + "\n\n(CONTINUED)",
    chinese(200, 26) + "限于篇幅，本文不再赘述，有兴趣的读者可以参阅相关文献。",
    chinese(200, 27) + "他犹豫着是否继续前行，最终还是转身回到了村子里。",
    "Markdown lets a writer strike out a word, as in <s>old</s> new. " + english(150, 28),
    "As an AI project manager, you will spend more time on data than on models. " + english(150, 29),
    "作为人工智能的一个重要分支，机器学习近年来取得了显著进展。" + chinese(200, 30),
    "Overall, the timeout was set too short, and the retry storm that followed took the service down. " + english(150, 31),
]


@pytest.mark.parametrize("text", REAL)
def test_real_writing_that_mentions_errors_or_continuations_is_kept(text):
    assert problem(text) is None


def test_an_answer_longer_than_its_max_tokens_allows_is_refused():
    limit = 4096 * MAX_CHARS_PER_TOKEN
    assert problem("word " * (limit // 5), max_chars=limit) is None
    assert "characters" in problem("word " * (limit // 5 + 1), max_chars=limit)
    assert "characters" in problem("x" * 5_000_000, max_chars=limit)


def test_strikethrough_markup_is_not_a_template_token_but_an_end_of_sequence_token_is():
    assert template_leak("a <s>b</s> c") is None
    assert template_leak("a b c</s>") == "</s>"
    assert template_leak("<<SYS>>be nice<</SYS>>") == "<<SYS>>"
