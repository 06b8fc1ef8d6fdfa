"""Seed instructions: JSONL pools indexed by byte offset, drawn by weight, deterministically, each at most once."""

from __future__ import annotations

import hashlib
import json
import math
import random
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from .config import LengthInjection, PoolSource
from .dedupe import NearDuplicates, signature
from .errors import UserError
from .length import RequiredLength, required_length

_CJK = range(0x4E00, 0xA000)


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


def detect_lang(text: str) -> str:
    """'zh' when a noticeable share of the letters are Han characters, else 'en'."""
    han = sum(1 for ch in text if ord(ch) in _CJK)
    letters = sum(1 for ch in text if ch.isalpha())
    return "zh" if letters and han / letters > 0.2 else "en"


class Pool:
    """One JSONL source, validated and indexed once: only line offsets stay in memory, never the prompts."""

    def __init__(self, source: PoolSource, seen: set[bytes]):
        self.path = source.path
        self.weight = source.weight
        self.offsets = array("q")
        self.lines = array("l")
        with self.path.open("rb") as fh:
            offset = 0
            for number, raw in enumerate(fh, start=1):
                record = _parse_line(self.path, number, raw)
                if record is not None:
                    digest = hashlib.blake2b(record["prompt"].strip().encode(), digest_size=12).digest()
                    if digest not in seen:  # an instruction already drawable elsewhere is used once only
                        seen.add(digest)
                        self.offsets.append(offset)
                        self.lines.append(number)
                offset += len(raw)

    def read(self, index: int) -> tuple[int, dict]:
        with self.path.open("rb") as fh:
            fh.seek(self.offsets[index])
            return self.lines[index], json.loads(fh.readline())


def _parse_line(path: Path, number: int, raw: bytes) -> dict | None:
    if not raw.strip():
        return None
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}:{number}: not valid JSON ({exc}); each line must be one JSON object.") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}:{number}: expected a JSON object with a 'prompt' field.")
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UserError(f"{path}:{number}: field 'prompt' is missing or not a non-empty string.")
    for key, kind in (("id", (str, int)), ("lang", str), ("type", str), ("length", int)):
        if record.get(key) is not None and not isinstance(record[key], kind):
            raise UserError(f"{path}:{number}: field '{key}' has the wrong type ({type(record[key]).__name__}).")
    return record


def load_pools(sources: list[PoolSource]) -> list[Pool]:
    """Validate and index every pool up front, so a bad line fails the run before anything is written."""
    seen: set[bytes] = set()
    return [Pool(source, seen) for source in sources]


_INJECTED = {"en": "\n\nThe answer should be about {n} words long.", "zh": "\n\n全文约{n}字。"}


def inject_length(instruction: Instruction, injection: LengthInjection, seed: int) -> Instruction:
    """Add a length requirement, drawn from the configured distribution, in the instruction's language."""
    if instruction.required is not None:
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
    lang = "zh" if instruction.lang == "zh" else "en"
    prompt = instruction.prompt + _INJECTED[lang].format(n=words)
    return replace(instruction, prompt=prompt, required=RequiredLength(words, words), injected=True)


def draw(pools: list[Pool], seed: int, injection: LengthInjection | None = None,
         near_duplicates: float | None = None, skipped: Counter | None = None) -> Iterator[Instruction]:
    """Yield instructions in the run's fixed order: a pool chosen by weight, then its next line in a seeded shuffle.

    With `near_duplicates` (a MinHash Jaccard threshold), an instruction too similar to one drawn before is
    skipped (counted in `skipped`); the order stays a function of the seed and the pools alone."""
    seen = NearDuplicates(near_duplicates) if near_duplicates else None
    rng = random.Random(seed)
    orders = []
    for pool in pools:
        order = array("q", range(len(pool.offsets)))
        rng.shuffle(order)
        orders.append(order)
    cursors = [0] * len(pools)
    seq = 0
    while True:
        live = [i for i, pool in enumerate(pools) if cursors[i] < len(orders[i])]
        if not live:
            return
        chosen = rng.choices(live, weights=[pools[i].weight for i in live])[0]
        pool = pools[chosen]
        line, record = pool.read(orders[chosen][cursors[chosen]])
        cursors[chosen] += 1
        prompt = record["prompt"].strip()
        if seen is not None and seen.check_and_add(signature(prompt, size=3)):
            if skipped is not None:
                skipped["near_duplicate_instruction"] += 1
            continue
        length = record.get("length")
        instruction = Instruction(
            seq=seq,
            id=str(record.get("id") or f"{pool.path.stem}:{line}"),
            prompt=prompt,
            lang=record.get("lang") or detect_lang(prompt),
            type=record.get("type"),
            length=length,
            pool=str(pool.path),
            required=RequiredLength(length, length) if length else required_length(prompt),
        )
        yield inject_length(instruction, injection, seed) if injection else instruction
        seq += 1


def pools_fingerprint(sources: list[PoolSource]) -> str:
    """A hash of every pool's bytes: a resumed run must draw from exactly the same instructions."""
    digest = hashlib.blake2b(digest_size=16)
    for source in sources:
        with source.path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()
