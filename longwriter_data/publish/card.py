"""The dataset card: README.md with YAML front matter (license, languages, task, size, configs, features), then
the build recipe, the length histogram and bands, languages and types, token usage, and how to load the data.

Export writes recipe.json beside the Parquet shards: what the shards cannot say (the recipe with secrets removed,
job counts, tokens, prompts). The card is always rendered from the folder itself, so it describes exactly the rows
there, and `push` can render it again with the repository id it pushes to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from .views import (Table, band_table, group_table, png_title, quality_report, required_table, scatter_summary,
                    usage_lines, write_png)
from ..config import backend_settings_model
from ..prompts import packaged, template
from ..quality.length import approx_tokens
from ..redact import without_secrets
from ..text import TEMPLATE_LANGS, plural
from .stats import Scan, describe, scan_dataset
from ..store import write_atomic

RECIPE = "recipe.json"
CARD = "README.md"
IMAGE = "length_histogram.png"
PLACEHOLDER_REPO = "ORG/NAME"

# Meaningless to whoever reads the card: where the run lived, and the names of the variables its keys were in
# (config.json keeps those: `judge RUN_DIR` calls the endpoint again).
_LOCAL_ONLY = ("run_dir", "api_key_env")


def public_config(value: Any) -> Any:
    """The recipe as it may be published: without secrets (the rules config.json follows too) or local folders."""
    return without_secrets(value, drop=_LOCAL_ONLY)


def _prompt_templates(config: dict) -> dict[str, str]:
    """The AgentWrite templates of the plan format the run used, for both languages."""
    plan = "plan_json" if (config.get("generation") or {}).get("plan_format") == "json" else "plan"
    names = [f"{stem}_{lang}" for stem in (plan, "write") for lang in TEMPLATE_LANGS]
    judge = (config.get("quality") or {}).get("judge")
    if judge and not judge.get("prompt_file"):  # the quality judge's packaged template
        names.append("judge_en")
    return {f"{name}.txt": template(name) for name in names if name in packaged()}


def _version() -> str:
    try:
        return metadata.version("longwriter-data")
    except metadata.PackageNotFoundError:
        return "unknown"


def _public_backend(config: dict) -> dict:
    """The backend settings as their kind's settings model shows them (an embedded build: its model file's name)."""
    backend = config.get("backend")
    if not isinstance(backend, dict):
        return config
    return {**config, "backend": backend_settings_model(backend).public(backend)}


def recipe(config: dict | None, fmt: str, run: Scan) -> dict:
    """What recipe.json holds: the public recipe, what the build did and paid, and its prompts."""
    config = _public_backend(public_config(config or {}))
    counts = run.counts()
    return {
        "generator": f"longwriter-data {_version()}",
        "format": fmt,
        "config": config,
        "jobs": {"accepted": counts["accepted"], "rejected": counts["rejected"], "failed": counts["failed"],
                 "in_progress": run.in_progress,
                 "reasons": {status: dict(reasons.most_common()) for status, reasons in run.reasons().items()}},
        "usage": _usage(run),
        "prompts": _prompt_templates(config),
    }


def _usage(run: Scan) -> dict:
    """Everything the run paid for; where it synthesized instructions, their share under "synthesis"."""
    usage = run.usage.as_dict()
    if run.synthesis is not None:
        usage["synthesis"] = run.synthesis.as_dict()
    return usage


def write_recipe(folder: Path, data: dict) -> None:
    write_atomic(folder / RECIPE, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def features_yaml(folder: Path) -> list:
    """The columns as `datasets` writes them into a card (the form `push_to_hub` writes), from the Parquet schema."""
    import datasets
    import pyarrow.parquet as pq

    shard = sorted((folder / "data").glob("*.parquet"))[0]
    return datasets.Features.from_arrow_schema(pq.read_schema(shard))._to_yaml_list()


def split_sizes(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Per split: rows, uncompressed bytes and file bytes, from the Parquet footers (no data is read)."""
    import pyarrow.parquet as pq

    sizes: dict[str, tuple[int, int, int]] = {}
    order = {"train": 0, "validation": 1, "test": 2}
    for split, shard in sorted((f.name.split("-", 1)[0], f) for f in (folder / "data").glob("*.parquet")):
        meta = pq.read_metadata(shard)
        rows, nbytes, size = sizes.get(split, (0, 0, 0))
        nbytes += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        sizes[split] = (rows + meta.num_rows, nbytes, size + shard.stat().st_size)
    return dict(sorted(sizes.items(), key=lambda item: (order.get(item[0], 3), item[0])))


def front_matter(scan: Scan, folder: Path) -> dict:
    config = scan.config or {}
    langs = sorted({job.lang for job in scan.jobs})
    splits = list(scan.splits)
    # `datasets` reads a split only with name, num_bytes and num_examples (else it warns at every load_dataset)
    sizes = split_sizes(folder)
    return {
        "license": (config.get("export") or {}).get("license") or "apache-2.0",
        "language": langs,
        "task_categories": ["text-generation"],
        "tags": ["long-context", "long-output", "agentwrite", "synthetic", "sft"],
        "pretty_name": config.get("name") or folder.name,
        "size_categories": [size_category(len(scan.jobs))],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": name, "path": f"data/{name}-*"} for name in splits]}],
        "dataset_info": {"features": features_yaml(folder),
                         "splits": [{"name": name, "num_bytes": sizes[name][1], "num_examples": n}
                                    for name, n in scan.splits.items()],
                         "download_size": sum(size for _, _, size in sizes.values()),
                         "dataset_size": sum(nbytes for _, nbytes, _ in sizes.values())},
    }


def markdown(table: Table) -> str:
    lines = ["| " + " | ".join(table.header) + " |", "|" + "|".join("---" if i == 0 else "---:"
                                                                 for i in range(len(table.header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines)


# The texts of one row, by export format: every turn a trainer tokenizes.
_TEXTS = {
    "messages": ("messages", lambda turns: [turn["content"] for turn in turns]),
    "sharegpt": ("conversations", lambda turns: [turn["value"] for turn in turns]),
}
TOKEN_MARGIN = 1.25  # the estimate is within ~25% of real BPE tokenizers; settings cover the longest row with this


@dataclass
class TokenLengths:
    """Estimated tokens per row (all splits), and the trainer setting that keeps the longest one whole."""

    median: int
    p90: int
    p99: int
    longest: int

    @property
    def setting(self) -> int:
        """The longest row plus the margin, rounded up to a multiple of 1,024."""
        return -(-int(self.longest * TOKEN_MARGIN) // 1024) * 1024


def token_lengths(folder: Path) -> TokenLengths:
    """Tokens of each row's turns together, estimated as length.approx_tokens does (no tokenizer is downloaded)."""
    import pyarrow.parquet as pq

    counts = []
    for shard in sorted((folder / "data").glob("*.parquet")):
        reader = pq.ParquetFile(shard)
        names = reader.schema_arrow.names
        column, texts = next((_TEXTS[key] for key in _TEXTS if _TEXTS[key][0] in names),
                             (None, lambda row: [row.get(key) or "" for key in ("instruction", "input", "output")]))
        for batch in reader.iter_batches(batch_size=256, columns=[column] if column else None):
            for row in batch.to_pylist():
                counts.append(sum(approx_tokens(text) for text in texts(row[column] if column else row)))
    counts.sort()

    def at(q: float) -> int:
        return counts[min(len(counts) - 1, int(q * len(counts)))]

    return TokenLengths(median=at(0.5), p90=at(0.9), p99=at(0.99), longest=counts[-1])


def _train_shards(folder: Path) -> list[str]:
    return [f"data/{shard.name}" for shard in sorted((folder / "data").glob("train-*.parquet"))]


def _load_section(repo_id: str, fmt: str, tokens: TokenLengths, train_shards: list[str], splits: list[str],
                  judged: bool = False) -> str:
    column = {"messages": "messages", "sharegpt": "conversations", "alpaca": "instruction, input, output"}[fmt]
    fit = tokens.setting
    tags = {"messages": {"formatting": "sharegpt", "columns": {"messages": "messages"},
                         "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                  "assistant_tag": "assistant"}},
            "sharegpt": {"formatting": "sharegpt", "columns": {"messages": "conversations"}},
            "alpaca": {"columns": {"prompt": "instruction", "query": "input", "response": "output"}}}[fmt]
    name = repo_id.split("/")[-1]
    hub = json.dumps({name: {"hf_hub_url": repo_id, "split": "train", **tags}}, indent=2)
    local = json.dumps({name: {"file_name": f"/path/to/{name}/{train_shards[0]}" if train_shards else "", **tags}},
                       indent=2)
    others = [name for name in splits if name != "train"]
    why = "the export folder mixes file types" + (
        f", and `data/` also holds the {' and '.join(others)} split{'s' if len(others) > 1 else ''}, which would be "
        "trained on" if others else "")
    axolotl = {
        "messages": "    type: chat_template\n    field_messages: messages",
        "sharegpt": "    type: chat_template\n    field_messages: conversations\n"
                    "    message_property_mappings: {role: from, content: value}",
        "alpaca": "    type: alpaca",
    }[fmt]
    schema = {"messages": "LongWriter-6k's chat schema: a user turn and an assistant turn",
              "sharegpt": "ShareGPT turns (`from`: human/gpt, `value`)",
              "alpaca": "Alpaca fields"}[fmt]
    if fmt == "messages":
        trl = f"""TRL (this `messages` format is the one it reads as conversations):

```python
from datasets import load_dataset
from trl import SFTConfig, SFTTrainer

trainer = SFTTrainer(
    model="Qwen/Qwen2.5-0.5B-Instruct",
    train_dataset=load_dataset("{repo_id}", split="train"),
    args=SFTConfig(max_length={fit}),  # TRL's default of 1024 would cut every sample short
)
trainer.train()
```"""
    else:
        trl = (f"TRL reads only the `messages` format as conversations (this {fmt} export would not train as chat): "
               f"export again with `--format messages` for TRL, and set `SFTConfig(max_length={fit})`.")
    quality_columns = ("" if not judged else " The quality judge's scores: `quality_score` (S_q, 0-100), "
                       "`quality_relevance`, `quality_accuracy`, `quality_coherence`, `quality_clarity`, "
                       "`quality_breadth_and_depth`, `quality_reading_experience` (1-5 each) and `quality_judge` (the "
                       "judge model and its prompt's hash).")
    return f"""## Load it

```python
from datasets import load_dataset

dataset = load_dataset("{repo_id}")
```

Columns: `{column}` ({schema}), and `id`, `lang`, `type`, `word_count` (words exactly as LongBench-Write counts
them: one per character in U+4E00-U+9FFF, plus one per match of `\\b[a-zA-Z]+\\b`), `required_length` (the length the
instruction asks for, when it states one: the number LongBench-Write scores against) and `model`.{quality_columns}

## Train on it

Samples are long: a trainer's default length cuts them short (or drops them). Tokens per sample, user and
assistant turns together, estimated at 4 characters a token (1.5 per Chinese character) without a tokenizer;
real tokenizers differ by up to about a quarter, and a chat template adds a few dozen:

| median | 90% | 99% | longest |
|---:|---:|---:|---:|
| {tokens.median:,} | {tokens.p90:,} | {tokens.p99:,} | {tokens.longest:,} |

Each setting below is the longest sample plus {TOKEN_MARGIN - 1:.0%}, rounded up to a multiple of 1,024: {fit:,}.

{trl}

LLaMA-Factory reads this {fmt} format as it is; set `cutoff_len: {fit}` in the training YAML. In
`data/dataset_info.json`, from the Hub:

```json
{hub}
```

or from a local copy: `file_name` must name the train shard itself ({why}):

```json
{local}
```

axolotl (`messages` or `sharegpt` through `chat_template`; `alpaca` as alpaca):

```yaml
sequence_len: {fit}
datasets:
  - path: {repo_id}
    split: train
{axolotl}
```
"""


def _build_section(scan: Scan) -> str:
    recipe = scan.recipe or {}
    config = _public_backend(scan.config or {})
    backend, generation = config.get("backend") or {}, config.get("generation") or {}
    pools = config.get("pools") or {}
    sources = pools.get("sources", []) if isinstance(pools, dict) else pools
    lines = ["## How it was built", "",
             "Generated with longwriter-data by AgentWrite "
             "([LongWriter](https://arxiv.org/abs/2408.07055)): the model first plans the answer as paragraphs with a "
             "main point and a word count each, then writes the paragraphs in order, each call seeing the "
             "instruction, the plan and everything written so far.", ""]
    model = backend.get("model", "unknown")
    plan_model = backend.get("plan_model") or model
    lines.append(f"- Writer model: `{model}`" + (f"; plan model: `{plan_model}`" if plan_model != model else "")
                 + backend_settings_model(backend).runs_on(backend))
    plans, temperature = generation.get("plan_format", "text"), generation.get("temperature", "–")
    lines.append(f"- Plans: {plans}; temperature {temperature}")
    for source in sources:
        lines.append(f"- Instructions: `{Path(str(source.get('path', '?'))).name}` (weight {source.get('weight', 1)})")
    if isinstance(pools, dict) and pools.get("inject_length"):
        lines.append(f"- Length requirements added to instructions without one: `{json.dumps(pools['inject_length'])}`")
    filters = config.get("filters") or {}
    if filters:
        lines.append("- Filters: " + ", ".join(f"`{k}: {json.dumps(v)}`" for k, v in filters.items()))
    jobs = recipe.get("jobs")
    if jobs:
        lines.append(f"- Jobs: {jobs['accepted']:,} accepted, {jobs['rejected']:,} rejected, {jobs['failed']:,} failed")
        for status, reasons in (jobs.get("reasons") or {}).items():
            lines.append(f"  - {status}: " + ", ".join(f"{reason} {n:,}" for reason, n in reasons.items()))
    lines += [f"- {line}" for line in usage_lines(scan, hint=False)]
    prompts = recipe.get("prompts") or {}
    if prompts:
        lines += ["", "### Prompts", ""]
        for name, text in prompts.items():
            lines += [f"<details><summary><code>{name}</code></summary>", "", "```text", text.rstrip(), "```", "",
                      "</details>", ""]
    lines += ["", "### Recipe (secrets removed)", "", "<details><summary>config</summary>", "", "```yaml",
              yaml.safe_dump(config, sort_keys=False, allow_unicode=True).rstrip(), "```", "", "</details>"]
    return "\n".join(lines)


def render(scan: Scan, folder: Path, repo_id: str | None) -> str:
    report = describe(scan.jobs)
    fmt = (scan.recipe or {}).get("format", "messages")
    repo = repo_id or ((scan.config or {}).get("export") or {}).get("hub_repo") or PLACEHOLDER_REPO
    meta = yaml.safe_dump(front_matter(scan, folder), sort_keys=False, allow_unicode=True)
    words = sorted(job.words for job in scan.jobs if job.words is not None)
    splits = ", ".join(f"{name}: {n:,}" for name, n in scan.splits.items())
    title = (scan.config or {}).get("name") or folder.name
    sections = [
        f"---\n{meta}---",
        f"# {title}",
        f"Long-output SFT data in the way of [LongWriter-6k](https://huggingface.co/datasets/THUDM/LongWriter-6k): "
        f"{plural(len(scan.jobs), 'sample')} ({splits}) whose answers run {words[0]:,} to {words[-1]:,} words "
        f"(median {words[len(words) // 2]:,}), written by AgentWrite.",
        _load_section(repo, fmt, token_lengths(folder), _train_shards(folder), list(scan.splits),
                      judged=any(job.quality_score is not None for job in scan.jobs)),
        "## Lengths",
        f"![Output length histogram and required vs actual length]({IMAGE})",
        markdown(band_table(report)),
        "Required vs actual length: " + scatter_summary(report),
    ]
    if any(pair[2] == "accepted" for pair in report.pairs):
        sections.append(markdown(required_table(report)))
    sections += [
        "## Languages and types",
        markdown(group_table("language", report.langs, ["accepted"])),
        markdown(group_table("type", report.types, ["accepted"])),
    ]
    if quality := quality_report(scan.jobs):
        sections += ["## Quality", quality.summary + " The judge does not measure length (see S_l above), and "
                     "cannot check facts it does not know.", *(markdown(table) for table in quality.tables),
                     f"Lowest S_q: {quality.lowest}"]
    sections += [
        _build_section(scan),
    ]
    return "\n\n".join(sections) + "\n"


def write_card(folder: Path, repo_id: str | None = None, image: bool = True) -> Path:
    """(Re)write README.md (and, with `image`, the histogram it shows) of an exported folder; returns its path."""
    scan = scan_dataset(folder)
    if image or not (folder / IMAGE).is_file():
        write_png(describe(scan.jobs), folder / IMAGE, png_title(scan))
    card = folder / CARD
    write_atomic(card, render(scan, folder, repo_id))
    return card
