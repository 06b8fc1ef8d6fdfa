"""The typed records of a run directory: a job's key, a step's answer, a finished job, a judgement, token usage,
the run's snapshot (config.json). The store (store.py) writes and reads them as JSON lines; everything above it
handles these types, never the raw lines, so the record's shape lives here only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

from .quality.length import RequiredLength

if TYPE_CHECKING:
    from .config import BuildConfig, PricesConfig

# The run directory's format: a build writes it into config.json, and every command refuses a directory of another
# format (those of earlier development versions have none) rather than misread it.
RUN_FORMAT = 2  # 2: step and synthesis keys hash the whole request (backends/base.request_key)


class JobKey(NamedTuple):
    """A job's identity: its instruction's place in the draw order, and which sample of that instruction it writes.
    Ordered as the dataset is: by draw order, then sample."""

    seq: int
    sample: int = 0


class TokenCounts(Protocol):
    """What one call paid for: a stored step (StepRecord) or an answer as it arrives (backends.base.Completion)."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    reasoning_tokens: int


@dataclass
class Usage:
    """Tokens paid for, summed from step, job or judgement records: for a job's record, and for every completed LLM
    call of a run, whether its job ended accepted or not."""

    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0  # reasoning tokens included, as providers bill them
    reasoning_tokens: int = 0

    @classmethod
    def from_record(cls, counts: dict) -> Usage:
        """From a record's counts (a job's `usage`, a synthesis line, recipe.json's); a count not there is 0."""
        return cls(**{name: int(counts.get(name) or 0) for name in _USAGE_FIELDS})

    def __iadd__(self, other: Usage) -> Usage:
        for name in _USAGE_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def __sub__(self, other: Usage) -> Usage:
        return Usage(**{name: getattr(self, name) - getattr(other, name) for name in _USAGE_FIELDS})

    def add_call(self, call: TokenCounts, requests: int = 1) -> None:
        """An answer as it arrives, or a stored step: the answers its attempts paid for (`requests` of them)."""
        self.requests += requests
        self.prompt_tokens += call.prompt_tokens
        self.cached_tokens += call.cached_tokens
        self.completion_tokens += call.completion_tokens
        self.reasoning_tokens += call.reasoning_tokens

    def as_dict(self) -> dict[str, int]:
        """As a job record's `usage` holds it (and recipe.json's)."""
        return {name: getattr(self, name) for name in _USAGE_FIELDS}

    def cost(self, prices: PricesConfig | None) -> float | None:
        """US dollars, or None when no prices are configured."""
        if prices is None:
            return None
        return prices.cost(self.prompt_tokens, self.cached_tokens, self.completion_tokens)


_USAGE_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")


@dataclass
class StepRecord:
    """One completed step of a job (an LLM answer that passed its checks), as steps.jsonl holds it: replayed on
    resume instead of being paid again. Its token counts are what all its answers cost (`requests` of them: those
    its checks rejected and asked again included). `key` hashes the whole request (backends/base.request_key);
    `tags` are what the step's caller marks it with (an extension's paragraph, the judge's key), part of its identity
    on replay."""

    step: int
    text: str
    finish_reason: str | None
    key: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    prompt_chars: int = 0
    attempts: int = 1
    seconds: float = 0.0
    tags: dict = field(default_factory=dict)
    requests: int = 1  # answers paid for

    _FIELDS = ("step", "text", "finish_reason", "prompt_tokens", "completion_tokens", "cached_tokens",
               "reasoning_tokens", "requests", "prompt_chars", "key", "attempts", "seconds")

    def as_record(self) -> dict:
        record = {name: getattr(self, name) for name in self._FIELDS}
        record.update(self.tags)
        return record

    @classmethod
    def from_record(cls, record: dict) -> StepRecord:
        fields = {name: record[name] for name in cls._FIELDS if name in record}
        tags = {name: value for name, value in record.items()
                if name not in cls._FIELDS and name not in _STEP_ENVELOPE}
        return cls(**fields, tags=tags)


_STEP_ENVELOPE = ("seq", "sample", "instruction")  # what the store adds around a step: whose it is


@dataclass
class SynthesisRecord:
    """One answered instruction-synthesis request (pools/synthesis.py), as synthesized.jsonl holds it: request k's
    language and type, the instructions it wrote (none when it failed for good: `error` says why), and what every
    answer to it cost, the unusable ones included. Its usage is written as flat token fields beside the rest."""

    k: int
    lang: str
    type: str
    instructions: list[str]
    error: str | None = None
    attempts: int = 1
    key: str = ""
    seconds: float = 0.0
    usage: Usage = field(default_factory=Usage)

    def as_record(self) -> dict:
        return {"k": self.k, "lang": self.lang, "type": self.type, "instructions": self.instructions,
                "error": self.error, "attempts": self.attempts, "key": self.key, "seconds": self.seconds,
                **self.usage.as_dict()}

    @classmethod
    def from_record(cls, record: dict) -> SynthesisRecord:
        """A parsed line (its usage as flat token fields, `requests` included)."""
        usage = Usage.from_record(record)
        return cls(k=record["k"], lang=record["lang"], type=record["type"], instructions=record["instructions"],
                   error=record.get("error"), attempts=record.get("attempts", 1), key=record.get("key", ""),
                   seconds=record.get("seconds", 0.0), usage=usage)


@dataclass
class JobRecord:
    """One finished job (one sample of one instruction), as jobs.jsonl holds it: what it was asked, what it wrote,
    what it cost and its verdict. A job judged again (`judge`) or retried gets a later record; the last one wins."""

    seq: int
    sample: int
    id: str
    status: str  # accepted, rejected or failed
    minhash: str | None = None  # an accepted output's MinHash (base64), read on resume for near-duplicate checks
    reason: str | None = None  # why it was rejected or failed
    detail: str | None = None
    # What it was asked.
    prompt: str = ""
    lang: str = "en"
    type: str | None = None
    required: RequiredLength | None = None  # the length the instruction asks for (the pool's, the prompt's or injected)
    length_injected: bool = False
    pool: str | None = None
    model: str | None = None
    plan_model: str | None = None
    # What it wrote: None for a job that wrote nothing (failed, or not selected).
    plan: list[dict] | None = None  # {"main_point", "words"} per planned paragraph
    paragraphs: list[str] | None = None
    paragraph_words: list[int] | None = None
    planned_words: int | None = None
    word_count: int | None = None  # LongBench-Write's count of the joined paragraphs
    usage: Usage | None = None  # every answer its steps paid for (asked again, failed, the judge's included)
    seconds: float | None = None  # summed over its calls
    # The LLM judge's scores, when one judged it (see generate/judging.py).
    judge: str | None = None
    quality_score: float | None = None
    quality_scores: dict[str, int] | None = None
    quality_analysis: str | None = None
    judge_excerpt: bool | None = None
    wall_seconds: float | None = None

    @property
    def key(self) -> JobKey:
        return JobKey(self.seq, self.sample)

    @property
    def text(self) -> str:
        """The assistant turn: the paragraphs joined by blank lines (the plan is not part of it)."""
        return "\n\n".join(self.paragraphs or ())

    def as_record(self) -> dict:
        """The JSON object of its line: the head keys first (seq, sample, id, status, minhash, which a resume reads
        without parsing the rest: see store.job_heads), then the rest; what the job did not write is left out."""
        record = {}
        for name, value in ((f.name, getattr(self, f.name)) for f in fields(self)):
            if value is None and name not in _ALWAYS:
                continue
            if name == "required":
                record["required_length"] = value.target if value else None  # the benchmark's single target
                value = value.as_record() if value else None
            elif name == "usage":
                value = value.as_dict()
            record[name] = value
        return record

    @classmethod
    def from_record(cls, record: dict) -> JobRecord:
        """A parsed line (store.parse_job checked its seq, sample and status); keys of no field are ignored."""
        values = {name: record[name] for name in _FIELD_NAMES if name in record}
        for name, kind in _TYPED.items():  # what readers compute with: a wrong type is a corrupt line, not a crash
            if values.get(name) is not None and not isinstance(values[name], kind):
                raise TypeError(f"{name} is not a {kind.__name__}")
        if not all(isinstance(paragraph, str) for paragraph in values.get("paragraphs") or ()):
            raise TypeError("paragraphs are not strings")
        if values.get("required") is not None:
            values["required"] = RequiredLength.from_record(values["required"])
        if values.get("usage") is not None:
            values["usage"] = Usage.from_record(values["usage"])
        return cls(**values)

    def judged(self, judgement: JudgementRecord) -> JobRecord:
        """This record with a judge's scores (JUDGED_FIELDS) in place of any it had."""
        return replace(self, **{name: getattr(judgement, name) for name in JUDGED_FIELDS})


_FIELD_NAMES = tuple(f.name for f in fields(JobRecord))
_TYPED = {"required": dict, "usage": dict, "plan": list, "paragraphs": list, "paragraph_words": list,
          "word_count": int, "quality_scores": dict}
# Written even when None: the head (the resume's pattern expects minhash), and what every record states.
_ALWAYS = frozenset(("minhash", "reason", "detail", "type", "required", "pool", "model", "plan_model"))
# What a job record keeps of an LLM judge's verdict (a JudgementRecord's scores; judgements.jsonl has them too).
JUDGED_FIELDS = ("judge", "quality_score", "quality_scores", "quality_analysis", "judge_excerpt")


@dataclass
class JudgementRecord:
    """One judge's scores of one job, as a judgements.jsonl line holds them (the `judge` command's file, one line per
    job and judge), and what a build's judge gives a job record (JUDGED_FIELDS of it)."""

    seq: int
    sample: int
    id: str
    judge: str  # model@template hash
    quality_score: float | None = None  # S_q
    quality_scores: dict[str, int] | None = None  # dimension -> 1..5
    quality_analysis: str | None = None
    judge_excerpt: bool | None = None  # the judge saw only the beginning and end of a long answer
    # What this judgement paid; None for scores copied from the build's own judge (steps.jsonl paid for those).
    usage: Usage | None = None
    from_build: bool = False
    step_key: str | None = None  # the request's hash, as steps.jsonl's `key`

    @property
    def key(self) -> JobKey:
        return JobKey(self.seq, self.sample)

    def as_record(self) -> dict:
        record = {"seq": self.seq, "sample": self.sample, "id": self.id,
                  **{name: getattr(self, name) for name in JUDGED_FIELDS}}
        if self.usage is not None:
            record["usage"] = self.usage.as_dict()
        if self.step_key is not None:
            record["key"] = self.step_key
        if self.from_build:
            record["from_build"] = True
        return record

    @classmethod
    def from_record(cls, record: dict) -> JudgementRecord:
        """A parsed line; KeyError, TypeError or ValueError when it is not a judgement."""
        seq, sample, judge = record["seq"], record.get("sample", 0), record["judge"]
        if not (isinstance(seq, int) and isinstance(sample, int) and isinstance(judge, str)):
            raise ValueError("seq, sample or judge of the wrong type")
        if not isinstance(record.get("quality_scores"), dict):
            raise ValueError("no quality_scores")
        usage = Usage.from_record(record["usage"]) if isinstance(record.get("usage"), dict) else None
        return cls(seq=seq, sample=sample, id=record.get("id") or "", judge=judge,
                   **{name: record.get(name) for name in JUDGED_FIELDS[1:]}, usage=usage,
                   from_build=bool(record.get("from_build")), step_key=record.get("key"))


@dataclass(frozen=True)
class RunSnapshot:
    """config.json: the recipe a run was started with (no secrets, paths as written), its pools' fingerprints and,
    for `count: auto`, synthesis's count fixed when the run started. A resumed build checks drift against it; judge,
    inspect and export read the recipe back through build_config()."""

    recipe: dict  # as saved, not validated: build_config() names a recipe this version cannot read
    pool_fingerprints: list[str] = field(default_factory=list)
    synthesize_count: int | None = None
    format: int = RUN_FORMAT
    path: Path | None = field(default=None, compare=False)  # the config.json it was read from, for errors

    def build_config(self) -> BuildConfig:
        """The saved recipe, validated; one this version does not read is one error naming the file and the key."""
        from .config import saved_recipe

        return saved_recipe(self.recipe, self.path or Path("config.json"))

    def as_record(self) -> dict:
        """config.json's object: synthesize_count only where synthesis fixed one."""
        record = {"format": self.format, "config": self.recipe, "pool_fingerprints": self.pool_fingerprints}
        if self.synthesize_count is not None:
            record["synthesize_count"] = self.synthesize_count
        return record

    @classmethod
    def from_record(cls, record: dict, path: Path | None = None) -> RunSnapshot:
        """A parsed config.json (store.read_snapshot checked its format and that `config` is an object)."""
        return cls(recipe=record["config"], pool_fingerprints=list(record.get("pool_fingerprints") or ()),
                   synthesize_count=record.get("synthesize_count"), format=record["format"], path=path)
