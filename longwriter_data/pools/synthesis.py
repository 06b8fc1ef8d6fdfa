"""Instruction synthesis: a small pool grown with the backend ("write N new long-form writing requests of type T,
in language L, in the style of these examples").

Every answered request is appended to the run directory's synthesized.jsonl, fsync'd, before it counts. The kept
instructions are derived from that file alone, request by request in order: duplicates of the pool or of earlier
kept ones, and answers in the wrong language, are dropped, and the first `count` survivors are kept. So a resumed
synthesis sends no request twice and ends with the same instructions as an uninterrupted one. A stored answer
counts only while its request key (backends/base.request_key) matches the request as the recipe now makes it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ..quality.answer_checks import answer_problem
from ..backends.base import ChatRequest, Completion, request_key
from ..config import BuildConfig, SynthesizeConfig
from ..prompts import template
from ..quality.dedupe import NearDuplicates, SignatureCache, signature
from .instructions import DrawSettings, PreparedPools, draw
from ..text import TEMPLATE_LANGS, detect_lang, template_lang
from ..records import RunSnapshot, SynthesisRecord, Usage
from ..store import SynthesisLog, read_synthesis
from ..generate.attempts import Rejected, StepFailed, ask
from ..generate.stop import Drain

Send = Callable[[ChatRequest], Awaitable[Completion]]

SOURCE_NAME = "synthesized"  # the pool name synthesized instructions are drawn under
MAX_CONCURRENCY = 8  # a few requests at once: synthesis is short, and each answer decides whether more are needed
DRY_STREAK = 5  # this many requests in a row keeping nothing: the model has run out of new ideas; stop asking
TEMPLATES = {lang: template(f"synthesize_{lang}") for lang in TEMPLATE_LANGS}


def drawable_count(config: BuildConfig, pools: PreparedPools, minhashes: SignatureCache | None = None,
                   at_most: int | None = None) -> int:
    """How many instructions the draw yields from the pools as they stand (near-duplicates skipped), counting
    no further than `at_most`."""
    settings = DrawSettings(config.seed, near_duplicates=config.filters.near_duplicate_threshold)  # no injection:
    drawn = draw(pools, settings, minhashes=minhashes)  # it changes no instruction's place
    return sum(1 for _ in itertools.islice(drawn, at_most))


def synthesis_count(config: BuildConfig, pools: PreparedPools, minhashes: SignatureCache | None = None,
                    saved: RunSnapshot | None = None) -> int:
    """How many instructions synthesis is to keep: the recipe's `count`; for `auto`, the count recorded when the
    run started (`saved`, its config.json: a resumed run keeps the same instructions and draw order whatever the
    target says now), else what the pools, before synthesis, fall short of target / acceptance jobs (each
    instruction is generation.samples_per_instruction jobs)."""
    settings = config.pools.synthesize
    if settings.count != "auto":
        return settings.count
    if saved and saved.synthesize_count is not None:
        return saved.synthesize_count
    jobs = math.ceil(config.target / settings.acceptance)
    needed = math.ceil(jobs / config.generation.samples_per_instruction)
    return max(0, needed - drawable_count(config, pools, minhashes, at_most=needed))


def instructions_schema(count: int) -> dict:
    """The JSON schema of an answer, so servers with structured output return exactly a list of strings."""
    return {
        "type": "object",
        "properties": {"instructions": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                        "maxItems": count}},
        "required": ["instructions"],
        "additionalProperties": False,
    }


_ITEM = re.compile(r"^\s*(?:[-*•]|[(（]?\d+[.)、:：）])\s*(.+)$")
_QUOTES = "\"'“”‘’「」"


def parse_instructions(text: str) -> list[str]:
    """The instructions in an answer: a JSON object {"instructions": [...]} or a bare list, on its own or
    embedded in prose or a code fence; failing that, its numbered or bulleted lines."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            value = value.get("instructions")
        items = [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
        if items:
            break
    else:
        items = [found.group(1) for line in text.splitlines() if (found := _ITEM.match(line))]
    cleaned = (item.strip().strip("*").strip().strip(_QUOTES).strip() for item in items)
    return [item for item in cleaned if item]


def _instructions_check(completion: Completion, request: ChatRequest) -> Completion:
    """An answer that holds writing requests, or Rejected (asked again like a step's bad answer)."""
    problem = answer_problem(completion) or (None if parse_instructions(completion.text)
                                             else "no instructions found in the answer")
    if problem:
        raise Rejected(problem)
    return completion


class _Keeper:
    """Turns answered requests into kept instructions, strictly in request order (k), whatever order the answers
    arrive in: the result is a function of the file and the pools only."""

    def __init__(self, pools: PreparedPools, count: int, threshold: float | None, minhashes: SignatureCache | None):
        self.pools = pools
        self.count = count
        self.hash = functools.partial(minhashes.signature if minhashes else signature, size=3)  # as draw() hashes
        self.near = NearDuplicates(threshold) if threshold else None
        if self.near:
            for record in pools.records():
                self.near.add(self.hash(record["prompt"]))
        self.prompts: set[str] = set()  # kept so far, for exact duplicates among the answers
        self.waiting: dict[int, SynthesisRecord] = {}  # answered, behind a request not answered yet
        self.next_k = 0
        self.kept: list[dict] = []
        self.dropped: Counter = Counter()
        self.written = 0
        self.dry = 0  # requests in a row (in k order) that kept nothing

    @property
    def done(self) -> bool:
        return len(self.kept) >= self.count or self.dry >= DRY_STREAK

    def offer(self, record: SynthesisRecord) -> None:
        self.waiting[record.k] = record
        while self.next_k in self.waiting:
            self._take(self.waiting.pop(self.next_k))
            self.next_k += 1

    def _take(self, record: SynthesisRecord) -> None:
        stopped = self.done  # for good: answers stored after the stop (requests cancelled then) change nothing
        before = len(self.kept)
        for index, text in enumerate(record.instructions):
            self.written += 1
            if stopped or len(self.kept) >= self.count:
                self.dropped["beyond_count" if len(self.kept) >= self.count else "after_stop"] += 1
                continue
            candidate = {"id": f"{SOURCE_NAME}:{record.k}:{index}", "prompt": text, "lang": record.lang,
                         "type": record.type}
            problem = self._problem(candidate)
            if problem:
                self.dropped[problem] += 1
            else:
                self.kept.append(candidate)
        if not stopped:
            self.dry = 0 if len(self.kept) > before or len(self.kept) >= self.count else self.dry + 1

    def _problem(self, candidate: dict) -> str | None:
        prompt = candidate["prompt"]
        if detect_lang(prompt) != template_lang(candidate["lang"]):
            return "language"
        problem = self.pools.problem(candidate)  # the pool's language and selection rules, its exact duplicates
        if problem:
            return problem
        if prompt in self.prompts:
            return "exact_duplicate"
        if self.near and self.near.check_and_add(self.hash(prompt)):
            return "near_duplicate"
        self.prompts.add(prompt)
        return None


@dataclass(frozen=True)
class SynthesisSettings:
    """What synthesis uses of a recipe: pools.synthesize, and the few run-wide settings its requests follow."""

    synthesize: SynthesizeConfig
    languages: list[str]  # those asked for, in turn
    run_dir: Path
    seed: int
    model: str
    extra_body: dict
    max_jobs: int
    step_attempts: int
    near_duplicates: float | None  # filters.near_duplicate_threshold, against the pools and each other

    @classmethod
    def of(cls, config: BuildConfig) -> SynthesisSettings:
        synthesize = config.pools.synthesize
        languages = synthesize.languages or [lang for lang in config.pools.languages or [] if lang in TEMPLATES]
        return cls(synthesize=synthesize, languages=languages or ["en"], run_dir=config.run_dir, seed=config.seed,
                   model=synthesize.model or config.backend.model, extra_body=config.generation.extra_body,
                   max_jobs=config.engine.max_jobs, step_attempts=config.generation.step_attempts,
                   near_duplicates=config.filters.near_duplicate_threshold)


class Synthesis:
    """The synthesized instructions of one run: those its file already holds, and the requests for more."""

    @classmethod
    def of(cls, config: BuildConfig, pools: PreparedPools, minhashes: SignatureCache | None = None,
           saved: RunSnapshot | None = None) -> Synthesis:
        """The recipe's synthesis, keeping the count its run started with (see synthesis_count)."""
        return cls(SynthesisSettings.of(config), pools, synthesis_count(config, pools, minhashes, saved), minhashes)

    def __init__(self, settings: SynthesisSettings, pools: PreparedPools, count: int,
                 minhashes: SignatureCache | None = None):
        self.settings = settings
        self.synthesize: SynthesizeConfig = settings.synthesize
        self.pools = pools
        self.count = count
        self.languages = settings.languages
        self._candidates = self._example_tiers()  # from the configured pools only, before anything is added
        self.keeper = _Keeper(pools, self.count, settings.near_duplicates, minhashes)
        self.records: dict[int, SynthesisRecord] = {}
        for record in read_synthesis(settings.run_dir):
            # An answer to a request since changed (another model, temperature, examples): asked again instead.
            if record.key == request_key(self.request(record.k)[0]):
                self.records[record.k] = record
                self.keeper.offer(record)
        self.new_requests = 0
        self._tasks: dict[int, asyncio.Task] = {}
        self.stop = Drain(self._tasks)  # Ctrl-C: build's handler calls self.stop.request_stop
        self._writes: list[asyncio.Task] = []

    def _example_tiers(self) -> dict[tuple, list[int]]:
        """Offsets of pool records by (lang, type), by (lang,), and all (): where examples are drawn from."""
        tiers: dict[tuple, list[int]] = {(): []}
        for (_, lang, kind), offsets in sorted(self.pools.strata.items()):
            for key in ((lang, kind), (lang,), ()):
                tiers.setdefault(key, []).extend(offsets)
        return {key: sorted(offsets) for key, offsets in tiers.items()}

    def examples(self, k: int, lang: str, kind: str) -> list[str]:
        """Pool instructions shown in request k, drawn with the run's seed and k: of the same language and type
        first, then of the same language, then any."""
        wanted = self.synthesize.examples
        rng = random.Random(f"synthesize:{self.settings.seed}:{k}")
        chosen: list[int] = []
        for key in ((lang, kind), (lang,), ()):
            tier = self._candidates.get(key, [])
            picks = rng.sample(tier, min(len(tier), wanted + len(chosen)))  # enough to skip those already chosen
            chosen += [offset for offset in picks if offset not in chosen][: wanted - len(chosen)]
            if len(chosen) == wanted:
                break
        return [self.pools.read(offset)["prompt"] for offset in chosen]

    def request(self, k: int) -> tuple[ChatRequest, str, str]:
        """Request k asks for instructions in languages[k % L] of types[(k // L) % T]: every pair in turn."""
        languages, types = self.languages, self.synthesize.types
        lang = languages[k % len(languages)]
        kind = types[(k // len(languages)) % len(types)]
        shown = "\n".join(f"{i}. {' '.join(text.split())}" for i, text in enumerate(self.examples(k, lang, kind), 1))
        prompt = (TEMPLATES[lang].replace("$N$", str(self.synthesize.per_request)).replace("$TYPE$", kind)
                  .replace("$EXAMPLES$", shown or "(none)"))
        request = ChatRequest(
            model=self.settings.model,
            prompt=prompt,
            max_tokens=self.synthesize.max_tokens,
            temperature=self.synthesize.temperature,
            json_schema=instructions_schema(self.synthesize.per_request),
            extra_body=self.settings.extra_body,
        )
        return request, lang, kind

    @property
    def kept(self) -> list[dict]:
        return self.keeper.kept

    def _wanted(self) -> bool:
        """Whether to send one more request: only while the answers in hand, and the most those still awaited
        can bring, fall short of `count`."""
        if self.stop.requested or self.keeper.done:
            return False
        awaited = len(self._tasks) + len(self.keeper.waiting)
        return not self._tasks or len(self.kept) + awaited * self.synthesize.per_request < self.count

    async def run(self, send: Send) -> None:
        """Send requests (several at once, in order of k, skipping those answered before) until enough are kept.
        A no-op when the file already holds enough."""
        if not self._wanted():
            return
        log = SynthesisLog(self.settings.run_dir)
        unanswered = (k for k in itertools.count() if k not in self.records)
        concurrency = min(self.settings.max_jobs, MAX_CONCURRENCY)
        try:
            while True:
                while len(self._tasks) < concurrency and self._wanted():
                    k = next(unanswered)
                    self._tasks[k] = asyncio.create_task(self._ask(k, send, log))
                if not self._tasks or self.keeper.done:
                    return  # answers still awaited cannot change the kept set: they come after it in k order
                await asyncio.wait(self._tasks.values(), return_when=asyncio.FIRST_COMPLETED)
                for k, task in [(k, task) for k, task in self._tasks.items() if task.done()]:
                    del self._tasks[k]
                    if not task.cancelled():
                        self.keeper.offer(task.result())  # a fatal backend error ends the build here
        finally:
            await self.stop.close()
            await asyncio.gather(*self._writes, return_exceptions=True)  # lines of cancelled requests: on disk first
            self._tasks.clear()
            log.close()

    async def _ask(self, k: int, send: Send, log: SynthesisLog) -> SynthesisRecord:
        """One request, its bad answers retried like a step's; the record is on disk before it is returned.
        A request that fails for good is stored too (with no instructions), so it is not paid for again."""
        request, lang, kind = self.request(k)
        started = time.monotonic()
        usage = Usage()
        try:  # every answer is paid for, the unusable ones too
            answer = await ask(send, request, self.settings.step_attempts, _instructions_check,
                               paid=usage.add_call)
        except StepFailed as exc:
            instructions, problem, attempts = [], exc.problem, exc.attempts
        else:
            instructions, problem, attempts = parse_instructions(answer.completion.text), "", answer.attempts
        record = SynthesisRecord(k=k, lang=lang, type=kind, instructions=instructions,
                                 error=None if instructions else problem, attempts=attempts,
                                 key=request_key(request), seconds=round(time.monotonic() - started, 3),
                                 usage=usage)
        write = asyncio.ensure_future(log.append(record))
        self._writes.append(write)
        await asyncio.shield(write)  # once paid for, the answer is stored even if this request is cancelled now
        self.records[k] = record
        self.new_requests += 1
        return record

    @property
    def interrupted(self) -> bool:
        return self.stop.requested

    def add_to_pools(self) -> int:
        """Make the kept instructions drawable, as one more source with the configured weight."""
        return self.pools.add(SOURCE_NAME, self.kept, self.synthesize.weight)

    @property
    def usage(self) -> Usage:
        """What every request stored so far paid, over all builds of the run."""
        total = Usage()
        for record in self.records.values():
            total += record.usage
        return total

    def report(self) -> dict:
        """The figures of the whole run directory, for report.json."""
        usage = self.usage.as_dict()
        return {
            "requests": len(self.records),
            "new_requests": self.new_requests,
            "failed_requests": sum(1 for record in self.records.values() if record.error),
            "written": self.keeper.written,
            "kept": len(self.kept),
            "wanted": self.count,
            "dropped": dict(self.keeper.dropped.most_common()),
            "paid_requests": usage.pop("requests"),  # answers paid for, retried ones included
            **usage,
        }

    def summary_line(self) -> str:
        """One line for the build's output: what was kept, what was dropped and why, what was paid for."""
        if not self.count and not self.records:
            return "Synthesized instructions: none needed, the sources hold enough for target / acceptance."
        dropped = self.keeper.dropped
        parts = [(dropped["exact_duplicate"] + dropped["near_duplicate"], "duplicates"),
                 (dropped["language"], "other language"), (dropped["beyond_count"], "beyond the count")]
        parts += [(n, reason.replace("_", " ")) for reason, n in dropped.items()
                  if reason not in ("exact_duplicate", "near_duplicate", "language", "beyond_count")]
        why = ", ".join(f"{n} {what}" for n, what in parts if n)
        line = (f"Synthesized instructions: {len(self.kept)} kept of {self.keeper.written} written"
                f"{f' ({why})' if why else ''}, {len(self.records)} requests ({self.new_requests} new this run)")
        failed = sum(1 for record in self.records.values() if record.error)
        if failed:
            line += f", {failed} without an answer"
        if len(self.kept) < self.count and self.keeper.dry >= DRY_STREAK:
            line += (f"; fewer than the {self.count} asked for: {DRY_STREAK} requests in a row brought "
                     "nothing new")
        return line + "."
