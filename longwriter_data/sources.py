"""Reading instruction sources, streamed: JSONL, CSV, Parquet, plain text, and Hugging Face datasets.

Each source yields (where, record) pairs: `where` names the file and line (or row) for error messages, and the
record is a plain dict. Field mapping and chat-format prompts (first user turn of a `messages`/`conversation`
column, as in WildChat) are resolved here, so everything downstream sees {prompt, id, lang, type, length}.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from .config import PoolSource
from .errors import UserError
from .textclean import strip_control

CHAT_COLUMNS = ("messages", "conversation", "conversations")
_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


def source_name(source: PoolSource) -> str:
    return source.name or (str(source.path) if source.path else f"hf:{source.hf}")


def _format(source: PoolSource) -> str:
    if source.format != "auto":
        return source.format
    kind = _FORMATS.get(source.path.suffix.lower())
    if kind is None:
        raise UserError(f"{source.path}: cannot tell the format from the extension; set `format:` "
                        f"(jsonl, csv, parquet or text) on this pool.")
    return kind


def raw_records(source: PoolSource) -> Iterator[tuple[str, dict]]:
    """(where, record) for every row of a source, without loading it whole."""
    if source.hf:
        yield from _hf_records(source)
        return
    kind, path = _format(source), source.path
    if kind == "jsonl":
        with path.open("rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    record = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise UserError(f"{where}: not valid JSON ({exc}); each line must be one JSON object.") from None
                if not isinstance(record, dict):
                    raise UserError(f"{where}: expected a JSON object with a '{source.field}' field.")
                yield where, record
    elif kind == "csv":
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            for record in reader:
                yield f"{path}:{reader.line_num}", record
    elif kind == "text":
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    yield f"{path}:{number}", {source.field: line.strip()}
    else:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise UserError(f"{path}: not a readable Parquet file ({exc}).") from None
        row = 0
        for batch in parquet.iter_batches(batch_size=2048):
            for record in batch.to_pylist():
                row += 1
                yield f"{path}: row {row}", record


def _hf_records(source: PoolSource) -> Iterator[tuple[str, dict]]:
    """A dataset saved with `save_to_disk` (a local folder) or a Hub id, streamed."""
    import datasets

    local = Path(source.hf)
    if local.is_dir():
        loaded = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.DatasetDict):
            if source.split not in loaded:
                raise UserError(f"{local}: no split {source.split!r} (has {', '.join(loaded)}); set `split:`.")
            loaded = loaded[source.split]
        rows = loaded.to_iterable_dataset()
    else:
        try:
            rows = datasets.load_dataset(source.hf, split=source.split, streaming=True)
        except Exception as exc:  # network, auth, missing dataset: all end the same way for the user
            raise UserError(f"pool hf: {source.hf}: cannot open the dataset ({type(exc).__name__}: {exc}).") from None
    for row, record in enumerate(rows, start=1):
        yield f"{source.hf}: row {row}", record


def first_user_turn(turns: object) -> str | None:
    """The first user message of a chat column (OpenAI `role/content` or ShareGPT `from/value` turns)."""
    if not isinstance(turns, list):
        return None
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        role = turn.get("role", turn.get("from"))
        if role in ("user", "human"):
            content = turn.get("content", turn.get("value"))
            return content if isinstance(content, str) else None
    return None


def normalized(source: PoolSource, where: str, record: dict) -> dict:
    """{prompt, id, lang, type, length} from a raw record, by the source's field mapping."""
    prompt = record.get(source.field)
    if prompt is None:
        chat = source.messages_field or next((c for c in CHAT_COLUMNS if c in record), None)
        if chat is not None:
            prompt = first_user_turn(record.get(chat))
            if prompt is None:
                raise UserError(f"{where}: column '{chat}' has no user turn to use as the prompt.")
    if isinstance(prompt, str):
        prompt = strip_control(prompt)  # NUL, ANSI colour codes and the like never reach the dataset
    if not isinstance(prompt, str) or not prompt.strip():
        raise UserError(f"{where}: field '{source.field}' is missing or not a non-empty string "
                        f"(map another column with `field:`).")
    out = {"prompt": prompt.strip()}
    for key, kind in (("id", (str, int)), ("lang", str), ("type", str), ("length", int)):
        value = record.get(source.fields.get(key, key))
        if value in (None, ""):
            continue
        if key == "length" and isinstance(value, str) and value.strip().isdigit():
            value = int(value)  # CSV cells are text
        if isinstance(value, bool) or not isinstance(value, kind):
            raise UserError(f"{where}: field '{key}' has the wrong type ({type(value).__name__}).")
        out[key] = str(value) if key == "id" else value
    return out
