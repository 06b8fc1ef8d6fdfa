"""Seed instructions: sources selected and deduplicated into one indexed work file, then drawn by weight,
deterministically for a seed, each instruction at most once."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import tempfile
from array import array
from collections import Counter
from collections.abc import Container, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..config import BuildConfig, LengthInjection, PoolsConfig, Selection
from ..quality.dedupe import NearDuplicates, SignatureCache, signature
from ..errors import UserError
from .sources import SourceUnavailable, normalized, raw_records, source_name
from ..text import detect_lang, template_lang
from ..quality.length import RequiredLength, mentions_length, requirement
from ..textclean import strip_control


@dataclass(frozen=True)
class Instruction:
    """One writing instruction as drawn: `seq` is its place in the run's draw order, the key for resume."""

    seq: int
    id: str
    prompt: str
    lang: str
    type: str | None = None
    length: int | None = None
    pool: str = ""
    required: RequiredLength | None = None  # from the pool's `length`, the prompt's own words, or injection
    injected: bool = False

    def to_record(self) -> dict:
        """What a job's first step stores, so a resumed build restarts the job without replaying the draw."""
        record = asdict(self)
        del record["seq"]
        return record

    @classmethod
    def from_record(cls, seq: int, record: dict) -> Instruction:
        required = record.get("required")
        return cls(seq=seq, **{**record, "required": RequiredLength(**required) if required else None})


_LONG_FORM = re.compile(
    r"\b(?:essays?|reports?|articles?|stor(?:y|ies)|novels?|novellas?|chapters?|guides?|tutorials?|papers?|thesis"
    r"|proposals?|white\s*papers?|blog\s*posts?|features?|speech(?:es)?|scripts?|screenplays?|manuals?|handbooks?"
    r"|reviews?|analys[ie]s|biograph(?:y|ies)|memoirs?|lesson\s*plans?|curricul(?:um|a)|narratives?|in\s*detail"
    r"|detailed|comprehensive|in-depth|long-form)\b"
    r"|论文|报告|小说|故事|文章|散文|指南|教程|综述|方案|计划书|演讲稿|剧本|传记|回忆录|教案|报道|评论|分析|详细|长文|深度",
    re.IGNORECASE,
)


def selection_problem(record: dict, rules: Selection) -> str | None:
    """Why an instruction does not call for long output (a rule name), or None to keep it."""
    prompt = record["prompt"]
    if len(prompt) < rules.min_prompt_chars:
        return "prompt_too_short"
    if len(prompt) > rules.max_prompt_chars:
        return "prompt_too_long"
    required = requirement(prompt, record.get("length") or None)
    if required is not None:
        return None if required.target >= rules.min_required_words else "required_length_too_short"
    if rules.keywords and _LONG_FORM.search(prompt):
        return None
    return "not_long_form"


class PreparedPools:
    """Every source streamed once through field mapping, language and selection rules and exact dedupe, into
    one normalized JSONL work file; only byte offsets, grouped by (source, language, type), stay in memory.

    The work file is an unnamed temporary file: it vanishes with the process, even one killed with SIGKILL."""

    def __init__(self, config: PoolsConfig):
        self.config = config
        self.strata: dict[tuple[int, str, str], array] = {}
        self.names = [source_name(source) for source in config.sources]  # per source index; add() appends
        self.weights = [source.weight for source in config.sources]
        self.kept: Counter = Counter()  # per source name
        self.dropped: Counter = Counter()  # per rule
        self.seen: set[bytes] = set()  # digests of every prompt kept, for exact dedupe across sources
        self.unavailable: dict[str, str] = {}  # Hub sources that could not be read (to the end): name -> why
        # Per configured source, what it holds (normalized records, wherever the file lives and whatever it is
        # called), so that a resumed run can tell which source changed. Only the configured sources: what add()
        # appends later is derived from them and the run directory.
        self.fingerprints: list[str] = []
        self._fh = tempfile.TemporaryFile(prefix="longwriter-pools-")
        try:
            for index, source in enumerate(config.sources):
                stem = Path(source.path).stem if source.path else source.hf.rstrip("/").split("/")[-1]
                content = hashlib.blake2b(digest_size=16)
                kept = row = 0
                rows = raw_records(source)
                try:
                    for row, (where, raw) in enumerate(rows, start=1):
                        if source.max_instructions and kept >= source.max_instructions:
                            break  # read no further
                        record = normalized(source, where, raw)
                        content.update(json.dumps(record, ensure_ascii=False, sort_keys=True).encode() + b"\n")
                        record.setdefault("id", f"{stem}:{row}")
                        line = self._admit(index, record, source.select)
                        if line:
                            kept += 1
                except SourceUnavailable as exc:
                    self.unavailable[self.names[index]] = str(exc)
                finally:
                    rows.close()
                if row == 0 and self.names[index] not in self.unavailable:
                    what = "pool file" if source.path else "dataset"
                    raise UserError(f"{source.path or source.hf}: the {what} holds no instructions (it is empty); "
                                    "fill it or remove it from pools.")
                self.fingerprints.append(content.hexdigest())
        except BaseException:
            self._fh.close()
            raise

    def add(self, name: str, records: Iterable[dict], weight: float) -> int:
        """Append records ({prompt, id, lang?, type?, length?}) as one more source with its own mixing weight,
        through the same rules as the configured sources; returns how many were kept."""
        index = len(self.names)
        self.names.append(name)
        self.weights.append(weight)
        self._fh.seek(0, os.SEEK_END)  # read() may have moved the shared handle
        return sum(1 for record in records
                   if self._admit(index, {**record, "prompt": strip_control(record["prompt"])}, select=True))

    def _admit(self, index: int, record: dict, select: bool) -> bytes | None:
        """Append a record to the work file and its stratum, or count why not; the line written, or None."""
        problem = self.problem(record, select)
        if problem:
            self.dropped[problem] += 1
            return None
        self.seen.add(_digest(record["prompt"]))
        record.setdefault("lang", detect_lang(record["prompt"]))
        record["source"] = index
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        key = (index, record["lang"], record.get("type") or "")
        self.strata.setdefault(key, array("q")).append(self._fh.tell())
        self._fh.write(line)
        self.kept[self.names[index]] += 1
        return line

    def problem(self, record: dict, select: bool = True) -> str | None:
        """Why a record may not join the pools (a rule name: language, selection, exact duplicate), or None.
        Nothing is remembered: synthesis asks this of candidates before it keeps them."""
        config = self.config
        if len(record["prompt"]) > config.max_prompt_chars:  # before anything reads the whole prompt
            return "prompt_too_long"
        lang = record.get("lang") or detect_lang(record["prompt"])
        if config.languages and lang not in config.languages:
            return "language"
        if config.select and select:
            problem = selection_problem(record, config.select)
            if problem:
                return problem
        if _digest(record["prompt"]) in self.seen:  # an instruction already drawable elsewhere is used once only
            return "exact_duplicate"
        return None

    def warnings(self) -> list[str]:
        """One line per Hub source that could not be read, for every command that prepares pools to show."""
        return [f"Warning: pool {name}: {why}; going on "
                + (f"with the {self.kept[name]:,} instructions kept from it" if self.kept[name] else "without it")
                + " and with the other sources." for name, why in self.unavailable.items()]

    def records(self) -> Iterator[dict]:
        """Every record of the pools, stratum by stratum."""
        for offsets in self.strata.values():
            for offset in offsets:
                yield self.read(offset)

    def __len__(self) -> int:
        return sum(len(offsets) for offsets in self.strata.values())

    def read(self, offset: int) -> dict:
        self._fh.seek(offset)
        return json.loads(self._fh.readline())

    def weight(self, key: tuple[int, str, str]) -> float:
        source, lang, kind = key
        config = self.config
        return self.weights[source] * config.lang_weights.get(lang, 1.0) * config.type_weights.get(kind, 1.0)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> PreparedPools:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _digest(prompt: str) -> bytes:
    return hashlib.blake2b(prompt.encode(), digest_size=12).digest()


_INJECTED = {"en": "\n\nThe answer should be about {n} words long.", "zh": "\n\n全文约{n}字。"}


def inject_length(instruction: Instruction, injection: LengthInjection, seed: int) -> Instruction:
    """Add a length requirement, drawn from the configured distribution, in the instruction's language; not to
    an instruction that asks for a length in a form we do not read ("a 50-page novel"): two lengths would conflict."""
    if instruction.required is not None or mentions_length(instruction.prompt):
        return instruction
    rng = random.Random(seed * 1_000_003 + instruction.seq)
    if rng.random() >= injection.share:
        return instruction
    low, high = injection.min_words, injection.max_words
    if injection.distribution == "log_uniform":
        words = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        words = rng.uniform(low, high)
    step = 100 if words < 10_000 else 500
    words = min(high, max(low, int(round(words / step) * step)))
    lang = template_lang(instruction.lang)
    prompt = instruction.prompt + _INJECTED[lang].format(n=words)
    return replace(instruction, prompt=prompt, required=RequiredLength.about(words), injected=True)


@dataclass(frozen=True)
class DrawSettings:
    """The recipe's settings the draw depends on: with the pools, they fix the run's order of instructions."""

    seed: int
    injection: LengthInjection | None = None  # pools.inject_length
    near_duplicates: float | None = None  # filters.near_duplicate_threshold: a MinHash Jaccard threshold

    @classmethod
    def of(cls, config: BuildConfig) -> DrawSettings:
        return cls(config.seed, config.pools.inject_length, config.filters.near_duplicate_threshold)


def draw(pools: PreparedPools, settings: DrawSettings, *, skipped: Counter | None = None,
         minhashes: SignatureCache | None = None, done: Container[int] = ()) -> Iterator[Instruction]:
    """Yield instructions in the run's fixed order: a (source, language, type) group chosen by its mixing
    weight, then that group's next instruction in a seeded shuffle.

    With `settings.near_duplicates`, an instruction too similar to one drawn before is skipped (counted in
    `skipped`); the order stays a function of the settings and the pools alone. `minhashes` remembers instruction
    signatures across builds of a run directory. Places in `done` (jobs finished by an earlier build) keep their
    place in the order but are not yielded, nor read when nothing needs their text."""
    seed, injection = settings.seed, settings.injection
    seen = NearDuplicates(settings.near_duplicates) if settings.near_duplicates else None
    rng = random.Random(seed)
    keys = sorted(pools.strata)
    orders = []
    for key in keys:
        order = array("q", pools.strata[key])
        rng.shuffle(order)
        orders.append(order)
    weights = [pools.weight(key) for key in keys]
    cursors = [0] * len(keys)
    seq = 0
    while True:
        live = [i for i in range(len(keys)) if cursors[i] < len(orders[i]) and weights[i] > 0]
        if not live:
            return
        chosen = rng.choices(live, weights=[weights[i] for i in live])[0]
        offset = orders[chosen][cursors[chosen]]
        cursors[chosen] += 1
        record = None
        if seen is not None:  # every instruction's text is needed: it decides which ones hold a place
            record = pools.read(offset)
            prompt = record["prompt"]
            minhash = minhashes.signature(prompt, size=3) if minhashes else signature(prompt, size=3)
            if seen.check_and_add(minhash):
                if skipped is not None:
                    skipped["near_duplicate_instruction"] += 1
                continue
        if seq in done:
            seq += 1
            continue
        record = record or pools.read(offset)
        prompt = record["prompt"]
        length = record.get("length")
        instruction = Instruction(
            seq=seq,
            id=record["id"],
            prompt=prompt,
            lang=record["lang"],
            type=record.get("type"),
            length=length,
            pool=pools.names[record["source"]],
            required=requirement(prompt, length or None),
        )
        yield inject_length(instruction, injection, seed) if injection else instruction
        seq += 1
