"""An OpenAI-compatible chat server that answers AgentWrite prompts with text of the requested length.

Plans come in the paper's text format (or as JSON when a schema is asked for); each paragraph has exactly the
word count its plan line asks for, in English or Chinese, deterministic for a given prompt. It counts every
request it serves per prompt (`per_prompt`, by a hash of the prompt) and per request (`per_request`, by the
request_key a build stores for the ChatRequest the body was sent for, as sample 0 and when a temperature is
sent), and the most requests it held at once, so tests can check that nothing was paid for twice and that the
engine really keeps many requests in flight.

Directives inside an instruction make that one job misbehave, for tests:
  [[short]]    paragraphs of a tenth of the asked length (the sample lands below the band)
  [[fail]]     every request answers HTTP 500
  [[empty]]    every answer is empty
  [[refuse]]   every answer is a refusal
  [[badplan]]  the plan has no parseable steps
  [[words=N]]  the plan totals N words (default: the instruction's "N words" / "N字", else 2400)
  [[repeat]]   every paragraph is one sentence said over and over
  [[english]]  English paragraphs even for a Chinese instruction
  [[meta]]     paragraphs leak plan text ("Word Count: 400 words") and "As an AI" asides
  [[same=K]]   paragraphs identical to those of every other job with the same K (near-duplicate outputs)
  [[notlong]]  the LLM selection question is answered "no"
  [[cutoff]]   paragraphs run on past their length and stop mid-sentence, with finish_reason "length"
  [[offtopic]] paragraphs leave out the instruction's topic words, which every other paragraph weaves in
  [[huge]]     every answer is a 12 MB chat completion (its Content-Length says so)
  [[gzipbomb]] every answer is a 100 KB gzip body that expands to a 100 MB chat completion
  [[junk=KIND]] the first answer to each paragraph prompt is junk (retries get good text): gateway, busy, zh_busy,
               json_error, placeholder, deferral, template, huge (200 KB) -- see JUNK
  [[control]]  paragraphs hold NUL, ANSI colour codes and other control characters
  [[conclude]] every paragraph ends with a closing summary ("In summary, ...", "综上所述，...")
  [[vary]]     the n-th request of a prompt gets the n-th variant of its text (seeded by prompt and n), as sampling
               at a temperature does: a second sample of an instruction is not a copy of the first. The texts then
               follow the order requests arrive in; reset starts every prompt at its first variant again

Judge prompts (prompts/judge_en.txt) are graded from the text itself: Relevance by how many of the instruction's
topic words the answer holds, Coherence, Clarity, Breadth and Depth and Reading Experience by how much of it
repeats (a looping answer scores 1s); as bare JSON when a schema is asked for, else as chatty text around a
fenced JSON block. Directives for the judge: [[judgeflaky]] the first answer to a prompt lacks a dimension;
[[judgebad]] every answer gives Relevance a 7.

Instruction synthesis prompts (prompts/synthesize_*.txt) get the number of new writing requests asked for, of
the asked type and language, distinct and deterministic for a given prompt ("Write a 2800-word academic paper
about ..."), as JSON when a schema is asked for, else as numbered lines. Directives in a shown example:
  [[dupes]]     the last four requests (of six or more) are the first example verbatim, the first example with a
                word added, the first request again, and the second request with a word added
  [[otherlang]] one more request, in the other language

Faults at given rates, for every request (`--fault NAME=RATE`, repeatable), for storm tests:
  rate_limit   HTTP 429 with Retry-After (or retry-after-ms)    server_error  HTTP 500, 502 or 503
  hang         no answer for --hang-s seconds                     drop          connection closed, no answer
  truncate     half an answer with finish_reason "length"         empty         an empty answer
  refuse       a refusal                                          error_text    an error message as content
  garbled      HTTP 200 whose body is not a chat completion (a proxy's HTML page)
A prompt that starts with `[[canned=NAME]]` gets one of the failures in CANNED (429 with Retry-After, 401, 403, 413,
400 context_length_exceeded, ...), for tests of how a backend classifies each.
`--api-key KEY` answers 401 to any other key. `--models a,b` serves only those models: any other answers 404
`model_not_found`, as OpenAI does (a wrong path, such as a base URL without /v1, is a 404 too).

Models named like OpenAI's reasoning models (o1, o3-mini, gpt-5, ...) behave like them: `max_tokens` or a
temperature other than 1 is refused with a 400 naming the parameter, and usage reports reasoning tokens
(`completion_tokens_details.reasoning_tokens`, included in `completion_tokens`).

Run: python -m longwriter_data.testing.fake_server [--port 0] [--latency 0.0] [--fault rate_limit=0.1 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import zlib
from collections import Counter

from aiohttp import web

from ..backends.base import ChatRequest, request_key
from ..quality.length import approx_tokens

_EN_WORDS = (
    "the river carried old stories past quiet towns where people built bridges gardens schools and markets "
    "while scholars measured light wind water stone and time to learn how cities grow change remember and heal "
    "every season brought new questions about work family memory trade language music science and hope"
).split()
_ZH_CHARS = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"

_DIRECTIVE = re.compile(
    r"\[\[(short|fail|empty|refuse|badplan|repeat|english|meta|words=\d+|same=\w+|notlong|cutoff|offtopic|judgeflaky"
    r"|judgebad|huge|gzipbomb|junk=\w+|control|conclude|vary)\]\]")
_REASONING_MODEL = re.compile(r"^(?:o\d|gpt-5)", re.IGNORECASE)
_EN_LENGTH = re.compile(r"(\d[\d,]*)[\s-]*words?\b", re.IGNORECASE)
_ZH_LENGTH = re.compile(r"(\d+)\s*字")
_SPLIT = {  # where the instruction starts and ends in each prompt (it may hold blank lines itself)
    "en": ("The writing instruction is as follows:\n\n", "\n\nPlease break it down"),
    "en_json": ("The writing instruction is as follows:\n\n", "\n\nAnswer with a JSON object"),
    "zh": ("写作指令如下：\n\n", "\n\n请按照以下格式"),
    "zh_json": ("写作指令如下：\n\n", "\n\n请只输出"),
    "write_en": ("Writing instruction:\n\n", "\n\nWriting steps:"),
    "write_zh": ("写作指令：\n\n", "\n\n写作步骤："),
}
_SYNTHESIZE = {  # the opening words of each synthesis template, and where it names the count and the type
    "en": ("Here are examples of writing requests", re.compile(r'Write (\d+) new writing requests of the type "([^"]*)"')),
    "zh": ("以下是用户向写作助手提出过的写作请求示例", re.compile(r"写出(\d+)条新的写作请求，类型为“([^”]*)”")),
}
_KINDS = {  # what a synthesized request asks for, per LongBench-Write type
    "Literature and Creative Writing": ("short story", "短篇小说"),
    "Academic and Monograph": ("academic paper", "学术论文"),
    "Popular Science": ("popular science article", "科普文章"),
    "Functional Writing": ("project proposal", "项目方案"),
    "News Report": ("news feature", "新闻特稿"),
    "Community Forum": ("forum post", "论坛长帖"),
    "Education and Training": ("training guide", "培训教程"),
}


def prompt_key(prompt: str) -> str:
    """A prompt's identity, whatever the request's settings: per_prompt counts requests by it."""
    return hashlib.blake2b(prompt.encode(), digest_size=10).hexdigest()


_SENT = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "response_format"}


def sent_request(body: dict) -> ChatRequest:
    """The ChatRequest that OpenAIBackend.send turned into this body (its temperature: 1 where none was sent)."""
    response_format = body.get("response_format") or {}
    schema = response_format.get("schema") or (response_format.get("json_schema") or {}).get("schema")
    return ChatRequest(model=body["model"], prompt=body["messages"][-1]["content"],
                       max_tokens=body.get("max_tokens", body.get("max_completion_tokens")),
                       temperature=body.get("temperature", 1), json_schema=schema,
                       extra_body={k: v for k, v in body.items() if k not in _SENT})


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def english(words: int, seed: int) -> str:
    """`words` words drawn at random (seeded): no long n-gram repeats, so repetition filters pass it."""
    out = random.Random(seed).choices(_EN_WORDS, k=words)
    for i in range(0, words, 12):
        out[i] = out[i].capitalize()
    for i in range(11, words, 12):
        out[i] += "."
    return " ".join(out) + ("" if out and out[-1].endswith(".") else ".")


def chinese(chars: int, seed: int) -> str:
    body = random.Random(seed).choices(_ZH_CHARS, k=chars)
    for i in range(19, chars, 20):
        body[i] += "。"
    return "".join(body) + "。"


def _between(text: str, start: str, end: str) -> str:
    head = text.find(start)
    if head < 0:
        return ""
    head += len(start)
    tail = text.find(end, head)
    return text[head: tail if tail >= 0 else None]


FAULTS = ("rate_limit", "server_error", "hang", "drop", "truncate", "empty", "refuse", "error_text", "garbled")


class FakeServer:
    def __init__(self, latency: float = 0.0, faults: dict[str, float] | None = None, api_key: str | None = None,
                 hang_s: float = 3600.0, seed: int = 0, models: list[str] | None = None):
        self.latency = latency
        self.served_models = models
        self.faults = faults or {}
        self.api_key = api_key
        self.hang_s = hang_s
        self.rng = random.Random(seed)
        self.times: list[float] = []
        self.fault_counts: Counter = Counter()
        self.per_prompt: Counter = Counter()
        self.per_request: Counter = Counter()
        self.requests = 0
        self.synthesis = 0  # synthesis requests served
        self.in_flight = 0
        self.max_in_flight = 0
        self.armed: tuple[int, int, int] | None = None  # (pid, after n requests, signal)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/stats", self.stats)
        app.router.add_post("/reset", self.reset)
        app.router.add_post("/arm", self.arm)
        return app

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": name, "object": "model"}
                                                             for name in self.served_models or ["fake"]]})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({
            "requests": self.requests,
            "max_in_flight": self.max_in_flight,
            "per_prompt": dict(self.per_prompt) if request.query.get("keys") else None,
            "per_request": dict(self.per_request) if request.query.get("keys") else None,
            "repeated": sum(1 for n in self.per_prompt.values() if n > 1),
            "synthesis": self.synthesis,
            "faults": dict(self.fault_counts),
            "times": self.times if request.query.get("times") else None,
        })

    async def reset(self, request: web.Request) -> web.Response:
        self.per_prompt.clear()
        self.per_request.clear()
        self.fault_counts.clear()
        self.times.clear()
        self.requests = self.max_in_flight = self.synthesis = 0
        return web.json_response({"ok": True})

    async def arm(self, request: web.Request) -> web.Response:
        """Send `signal` to `pid` when the request count reaches `after`, while that request is in flight:
        tests kill or interrupt a build at an exact point without sleeping."""
        body = await request.json()
        self.armed = (body["pid"], self.requests + body["after"], body.get("signal", signal.SIGKILL))
        return web.json_response({"ok": True})

    async def chat(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return web.json_response({"error": {"message": "Incorrect API key provided.", "type":
                                          "invalid_request_error", "code": "invalid_api_key"}}, status=401)
            body = await request.json()
            refusal = self.refusal(body)
            if refusal is not None:
                return refusal
            prompt = body["messages"][-1]["content"]
            self.requests += 1
            self.times.append(time.time())
            self.per_prompt[prompt_key(prompt)] += 1
            self.per_request[request_key(sent_request(body))] += 1
            self.synthesis += prompt.startswith(tuple(opening for opening, _ in _SYNTHESIZE.values()))
            if self.armed and self.requests >= self.armed[1]:
                pid, _, signum = self.armed
                self.armed = None
                os.kill(pid, signum)
            if self.latency:
                await asyncio.sleep(self.latency)
            if prompt.startswith("[[canned="):
                return _canned(request, prompt[len("[[canned="):prompt.index("]]")])
            fault = self._roll()
            if fault:
                self.fault_counts[fault] += 1
                return await self.misbehave(fault, request, body, prompt)
            return self.answer(body, prompt)
        finally:
            self.in_flight -= 1

    def refusal(self, body: dict) -> web.Response | None:
        """OpenAI's answers to an unknown model, and to parameters its reasoning models do not take."""
        model = str(body.get("model", ""))
        if self.served_models and model not in self.served_models:
            return _error(404, f"The model `{model}` does not exist or you do not have access to it.", None,
                          "model_not_found")
        if _REASONING_MODEL.match(model.rsplit("/", 1)[-1]):
            if "max_tokens" in body:
                return _error(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                              "'max_completion_tokens' instead.", "max_tokens", "unsupported_parameter")
            if body.get("temperature", 1) != 1:
                return _error(400, f"Unsupported value: 'temperature' does not support {body['temperature']} with "
                              "this model. Only the default (1) value is supported.", "temperature", "unsupported_value")
        return None

    def _roll(self) -> str | None:
        roll = self.rng.random()
        for name in FAULTS:
            roll -= self.faults.get(name, 0.0)
            if roll < 0:
                return name
        return None

    async def misbehave(self, fault: str, request: web.Request, body: dict, prompt: str) -> web.Response:
        if fault == "rate_limit":
            headers = {"retry-after-ms": "200"} if self.rng.random() < 0.5 else {"Retry-After": "1"}
            return web.json_response({"error": {"message": "Rate limit reached", "type": "requests",
                                                "code": "rate_limit_exceeded"}}, status=429, headers=headers)
        if fault == "server_error":
            status = self.rng.choice((500, 502, 503))
            return web.json_response({"error": {"message": "upstream failure", "type": "server_error"}}, status=status)
        if fault == "hang":
            await asyncio.sleep(self.hang_s)
        if fault in ("hang", "drop"):
            request.transport.close()
            raise ConnectionResetError("dropped on purpose")
        if fault == "truncate":
            full = self.answer(body, prompt)
            data = json.loads(full.body)
            content = data["choices"][0]["message"]["content"]
            data["choices"][0]["message"]["content"] = content[: len(content) // 2]
            data["choices"][0]["finish_reason"] = "length"
            return web.json_response(data)
        if fault == "garbled":
            return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        text = {
            "empty": "",
            "refuse": "抱歉，我无法完成这个请求。" if prompt.startswith(("你是", "我需要", "请把")) else
                      "I'm sorry, but I can't assist with that request.",
            "error_text": "Error: upstream model timed out, please retry later.",
        }[fault]
        return web.json_response(completion(body, prompt, text))

    def answer(self, body: dict, prompt: str) -> web.Response:
        if prompt.startswith(_JUDGE_OPENING) and "\n<answer>\n" in prompt:
            return web.json_response(completion(body, prompt, self.judged(body, prompt)))
        for lang, (opening, asked) in _SYNTHESIZE.items():
            if prompt.startswith(opening):
                return web.json_response(completion(body, prompt, self.synthesized(body, prompt, lang, asked)))
        is_extend = "Expand the paragraph to about" in prompt or "请把这一段扩写到约" in prompt
        is_write = is_extend or "Already written text:" in prompt or "已写文本：" in prompt
        zh = prompt.startswith(("你是", "我需要", "请把", "下面这条指令"))
        lang = "zh" if zh else "en"
        plan_kind = f"{lang}_json" if ("Answer with a JSON object" in prompt or "请只输出如下形式的JSON" in prompt) else lang
        instruction = _between(prompt, *_SPLIT[f"write_{lang}" if is_write else plan_kind])
        directives = set(_DIRECTIVE.findall(instruction))
        if "fail" in directives:
            return web.json_response({"error": {"message": "injected failure", "type": "server_error"}}, status=500)
        if "huge" in directives:
            return web.json_response(completion(body, prompt, english(2_000_000, 0)))
        if "gzipbomb" in directives:
            return web.Response(body=_gzip_bomb(), content_type="application/json", headers={"Content-Encoding": "gzip"})
        seed = _seed(prompt)
        if "vary" in directives:  # the n-th request of this prompt: variant n-1 (the first keeps the plain seed)
            seed += self.per_prompt[prompt_key(prompt)] - 1
        if prompt.startswith(("Does the following instruction call for a long", "下面这条指令是否需要")):
            instruction = prompt.rsplit("\n\n", 1)[-1]
            answer = "no" if "[[notlong]]" in instruction else "yes"
            return web.json_response(completion(body, prompt, answer if not zh else {"no": "否", "yes": "是"}[answer]))
        if "empty" in directives:
            text = ""
        elif "refuse" in directives:
            text = "抱歉，我无法完成这个请求。" if zh else "I'm sorry, but I can't help with that request."
        elif not is_write:
            text = self.plan(body, instruction, directives, lang)
        elif is_extend:  # an extension is written at full length, whatever the first draft did
            words = int(re.search(r"(?:to about |扩写到约)(\d+)", prompt).group(1))
            text = chinese(words, seed) if zh else english(words, seed)
            text = text if "offtopic" in directives else on_topic(text, topic_terms(instruction, zh), zh)
        else:
            text = self.paragraph(prompt, zh, directives, seed)
            junk = next((d.split("=")[1] for d in directives if d.startswith("junk=")), None)
            if junk and self.per_prompt[prompt_key(prompt)] == 1:
                text = JUNK[junk](text)
            if "cutoff" in directives:
                data = completion(body, prompt, text + ("然后这句话一直写下去没有" if zh else " And then it ran on past the"))
                data["choices"][0]["finish_reason"] = "length"
                return web.json_response(data)
        return web.json_response(completion(body, prompt, text))

    def paragraph(self, prompt: str, zh: bool, directives: set, seed: int) -> str:
        step = prompt.rsplit("Word Count: ", 1) if not zh else prompt.rsplit("字数要求：", 1)
        words = int(re.match(r"\d+", step[-1]).group()) if len(step) == 2 else 300
        if "short" in directives:
            words = max(1, words // 10)
        same = next((d for d in directives if d.startswith("same=")), None)
        if same:  # the same text for every job sharing the key: seeded by the key and the paragraph number
            number = re.findall(r"(?:continue writing Paragraph |继续写段落)(\d+)", prompt)
            seed = _seed(same + (number[-1] if number else ""))
        if "repeat" in directives:
            sentence = "数据很重要，我们需要更多数据。" if zh else "Data matters and we need more data. "
            return (sentence * (words // (len(sentence) if zh else 7) + 1)).strip()
        if "english" in directives:
            zh = False
        text = chinese(words, seed) if zh else english(words, seed)
        if not same and "offtopic" not in directives:
            text = on_topic(text, topic_terms(_between(prompt, *_SPLIT["write_zh" if zh else "write_en"]), zh), zh)
        if "meta" in directives:
            text += f" As an AI language model, I wrote this part. (Paragraph 2 - Word Count: {words} words)"
        if "control" in directives:
            middle = len(text) // 2
            text = "\x1b[31m" + text[:middle] + "\x00\x07\x1b[0m" + text[middle:] + "\x1b]0;title\x07\x9b2J"
        if "conclude" in directives:
            text += (" 综上所述，这一部分的讨论说明了问题的关键。" if zh else
                     " In summary, this part has shown what matters most here.")
        return text

    def judged(self, body: dict, prompt: str) -> str:
        """Six scores that follow the answer's real properties: topic words present, repetition."""
        instruction = _between(prompt, "<request>\n", "\n</request>")
        response = _between(prompt, "<answer>\n", "\n</answer>")
        directives = set(_DIRECTIVE.findall(instruction))
        zh = bool(_HAN.search(_DIRECTIVE.sub("", instruction)))
        terms = topic_terms(instruction, zh)
        present = sum(term in response.lower() for term in terms) / len(terms) if terms else 1.0
        tokens = _HAN.findall(response) if zh else response.lower().split()
        n = 6 if zh else 4
        total = max(0, len(tokens) - n + 1)
        repeats = 1 - len(set(zip(*(tokens[i:] for i in range(n))))) / total if total else 0.0
        relevance = 5 if present == 1 else 3 if present >= 0.5 else 1
        looping, some = repeats > 0.5, repeats > 0.2
        scores = {"Relevance": relevance, "Accuracy": 4, "Coherence": 1 if looping else 2 if some else 4,
                  "Clarity": 2 if looping else 4, "Breadth and Depth": 1 if looping else 2 if relevance == 1 else 4,
                  "Reading Experience": 1 if looping else 3 if relevance == 1 else 4}
        if "judgebad" in directives:
            scores["Relevance"] = 7
        if "judgeflaky" in directives and self.per_prompt[prompt_key(prompt)] == 1:
            del scores["Clarity"]
        analysis = f"{present:.0%} of the request's topic words appear; {repeats:.0%} of {n}-grams repeat."
        answer = json.dumps({"analysis": analysis, "scores": scores}, ensure_ascii=False)
        if (body.get("response_format") or {}).get("type") in ("json_schema", "json_object"):
            return answer
        return f"Here is my assessment of the answer.\n\n```json\n{answer}\n```\n\nI hope this helps."

    def synthesized(self, body: dict, prompt: str, lang: str, asked: re.Pattern) -> str:
        count, kind = asked.search(prompt).groups()
        examples = re.findall(r"^\d+\. (.+)$", prompt, re.MULTILINE)
        seed = _seed(prompt)
        items = [_writing_request(lang, kind, seed + i, i) for i in range(int(count))]
        if any("[[dupes]]" in example for example in examples) and len(items) >= 6:
            thanks = "谢谢" if lang == "zh" else " Thanks."
            items[-4:] = [examples[0], examples[0] + thanks, items[0], items[1] + thanks]
        if any("[[otherlang]]" in example for example in examples):
            items.append(_writing_request("en" if lang == "zh" else "zh", kind, seed - 1, 0))
        if (body.get("response_format") or {}).get("type") in ("json_schema", "json_object"):
            return json.dumps({"instructions": items}, ensure_ascii=False)
        return "Here are the new requests:\n\n" + "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))

    def plan(self, body: dict, instruction: str, directives: set, lang: str) -> str:
        if "badplan" in directives:
            return "Sure! Here is an outline with some ideas but no counts."
        total = next((int(d.split("=")[1]) for d in directives if d.startswith("words=")), None)
        if total is None:
            found = (_ZH_LENGTH if lang == "zh" else _EN_LENGTH).search(instruction)
            total = int(found.group(1).replace(",", "")) if found else 2400
        count = max(1, round(total / 400))
        each = max(50, total // count)
        if (body.get("response_format") or {}).get("type") in ("json_schema", "json_object"):
            points = [{"main_point": f"Part {i + 1} of the piece", "word_count": each} for i in range(count)]
            return json.dumps({"paragraphs": points})
        if lang == "zh":
            return "\n\n".join(f"段落{i + 1} - 主要内容：文章第{i + 1}部分 - 字数要求：{each}字" for i in range(count))
        return "\n\n".join(
            f"Paragraph {i + 1} - Main Point: Part {i + 1} of the piece - Word Count: {each} words" for i in range(count)
        )


_JUDGE_OPENING = "You are reviewing the answer an AI writing assistant gave"
_HAN = re.compile(r"[\u4e00-\u9fff]")
_COMMON = set("写一篇字的文章请介绍关于主题篇幅要求不少于以上万千百约")
_STOP = {"write", "words", "word", "about", "essay", "article", "report", "story", "guide", "paper", "please",
         "with", "that", "this", "from", "into", "your", "long", "piece", "detailed", "least", "than", "more"}


def topic_terms(instruction: str, zh: bool) -> list[str]:
    """Up to three words that name an instruction's topic (Chinese: pairs of Han characters), for the fake writer
    to weave in and the fake judge to look for."""
    text = _DIRECTIVE.sub("", instruction)
    if zh:
        pairs = re.findall(r"(?=([\u4e00-\u9fff]{2}))", text)
        terms = [p for p in pairs if not set(p) & _COMMON]
    else:
        terms = [w.lower() for w in re.findall(r"[A-Za-z]{4,}", text) if w.lower() not in _STOP]
    return list(dict.fromkeys(terms))[:3]


def on_topic(text: str, terms: list[str], zh: bool) -> str:
    """`text` with the topic terms woven in every so often, its word count unchanged."""
    if not terms:
        return text
    if zh:
        chars = list(text)
        for k, i in enumerate(range(5, len(chars) - 2, 40)):
            if _HAN.match(chars[i]) and _HAN.match(chars[i + 1]):
                chars[i:i + 2] = terms[k % len(terms)]
        return "".join(chars)
    words = text.split(" ")
    for k, i in enumerate(range(5, len(words), 12)):
        if words[i].isalpha() and words[i].islower():
            words[i] = terms[k % len(terms)]
    return " ".join(words)


# What a [[junk=KIND]] job gets as its first answer to each paragraph prompt (HTTP 200, finish_reason "stop").
JUNK = {
    "gateway": lambda text: "Upstream error: the model timed out while generating a response. Please retry later.",
    "busy": lambda text: "We're currently experiencing high demand, which may cause temporary errors. "
                         "Please try again in a few minutes.",
    "zh_busy": lambda text: "服务器繁忙，请稍后再试。",
    "json_error": lambda text: 'Response: {"error": {"message": "upstream request timeout", "code": 504}}',
    "placeholder": lambda text: "[Paragraph 3 content goes here]",
    "deferral": lambda text: text[:300] + " I'll continue writing the rest of this section in my next response.",
    "template": lambda text: text + "<|im_end|>\n<|im_start|>user\nNow write me a poem.<|im_end|>",
    "huge": lambda text: "word " * 40_000,
}


def _writing_request(lang: str, kind: str, seed: int, index: int) -> str:
    """A synthesized long-form request of a type, with a random topic: never a near-duplicate of another."""
    words = (2400, 2800, 3200)[index % 3]
    noun_en, noun_zh = _KINDS.get(kind, ("report", "报告"))
    if lang == "zh":
        return f"写一篇{words}字的{noun_zh}，主题是{chinese(10, seed).rstrip('。')}。"
    return f"Write a {words}-word {noun_en} about {english(8, seed).rstrip('.').lower()}."


def _error(status: int, message: str, param: str | None, code: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                        "code": code}}, status=status)


# What a `[[canned=NAME]]` prompt gets: (status, error code, param, headers), as OpenAI and gateways answer.
CANNED = {
    "rate_limit": (429, "rate_limit_exceeded", None, {"Retry-After": "3"}),
    "rate_limit_ms": (429, "rate_limit_exceeded", None, {"retry-after-ms": "250"}),
    "quota": (429, "insufficient_quota", None, {}),
    "server_error": (500, None, None, {}),
    "bad_gateway": (502, None, None, {}),  # a proxy's HTML page, not JSON
    "unauthorized": (401, "invalid_api_key", None, {}),
    "forbidden": (403, "content_filter", None, {}),
    "unknown_model": (404, "model_not_found", None, {}),
    "too_large": (413, None, None, {}),
    "context_length": (400, "context_length_exceeded", "messages", {}),
}


def _canned(request: web.Request, name: str) -> web.Response:
    if name == "drop":
        request.transport.close()
        raise ConnectionResetError("dropped on purpose")
    status, code, param, headers = CANNED[name]
    if name == "bad_gateway":
        return web.Response(status=status, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html",
                            headers=headers)
    response = _error(status, f"canned {name}", param, code)
    response.headers.update(headers)
    return response


_BOMB: list[bytes] = []


def _gzip_bomb() -> bytes:
    """A chat completion whose content is 100 MB of one letter: about 100 KB gzipped (made once)."""
    if not _BOMB:
        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        parts = [packer.compress(b'{"choices": [{"message": {"role": "assistant", "content": "')]
        block = b"a" * 2**20
        parts += [packer.compress(block) for _ in range(100)]
        parts.append(packer.compress(b'"}, "finish_reason": "stop"}]}') + packer.flush())
        _BOMB.append(b"".join(parts))
    return _BOMB[0]


def completion(body: dict, prompt: str, text: str) -> dict:
    prompt_tokens, completion_tokens = approx_tokens(prompt), approx_tokens(text)
    usage = {}
    if _REASONING_MODEL.match(str(body.get("model", "")).rsplit("/", 1)[-1]):
        reasoning = 16 + completion_tokens // 4  # hidden thinking, billed as output
        completion_tokens += reasoning
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            **usage,
        },
    }


class FakeServerProcess:
    """The fake server in a child process of its own (so the engine under test has its own CPU), for `with`."""

    def __init__(self, latency: float = 0.0, faults: dict[str, float] | None = None, api_key: str | None = None,
                 hang_s: float = 3600.0, models: list[str] | None = None):
        self.args = [sys.executable, "-m", "longwriter_data.testing.fake_server", "--port", "0",
                     "--latency", str(latency), "--hang-s", str(hang_s)]
        if models:
            self.args += ["--models", ",".join(models)]
        for name, rate in (faults or {}).items():
            self.args += ["--fault", f"{name}={rate}"]
        if api_key:
            self.args += ["--api-key", api_key]
        self.proc: subprocess.Popen | None = None
        self.base_url = ""

    def __enter__(self) -> FakeServerProcess:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.base_url = line.split()[-1]
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def _call(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        url = self.base_url.removesuffix("/v1") + path
        data = json.dumps(body or {}).encode() if method == "POST" else None
        with urllib.request.urlopen(urllib.request.Request(url, method=method, data=data)) as response:
            return json.loads(response.read())

    def arm(self, pid: int, after: int, signum: int = signal.SIGKILL) -> None:
        self._call("/arm", "POST", {"pid": pid, "after": after, "signal": int(signum)})

    def stats(self, keys: bool = False, times: bool = False) -> dict:
        query = "&".join(name + "=1" for name, wanted in (("keys", keys), ("times", times)) if wanted)
        return self._call(f"/stats?{query}")

    def reset(self) -> None:
        self._call("/reset", "POST")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port, printed)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each request takes")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=RATE",
                        help=f"inject a fault at a rate in [0, 1]; names: {', '.join(FAULTS)}")
    parser.add_argument("--hang-s", type=float, default=3600.0, help="how long a hung request hangs")
    parser.add_argument("--api-key", help="answer 401 unless this key is sent")
    parser.add_argument("--models", help="comma-separated models to serve; any other answers 404 (None: every model)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated text")
    args = parser.parse_args()
    faults = {}
    for item in args.fault:
        name, _, rate = item.partition("=")
        if name not in FAULTS:
            parser.error(f"unknown fault {name!r}; choose from {', '.join(FAULTS)}")
        faults[name] = float(rate)
    server = FakeServer(latency=args.latency, faults=faults, api_key=args.api_key, hang_s=args.hang_s, seed=args.seed,
                        models=args.models.split(",") if args.models else None)

    async def serve() -> None:
        runner = web.AppRunner(server.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        print(f"listening on http://{args.host}:{port}/v1", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
