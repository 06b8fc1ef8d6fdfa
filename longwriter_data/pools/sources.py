"""Reading instruction sources, streamed: JSONL, CSV, Parquet, plain text, and Hugging Face datasets.

Each source yields (where, record) pairs: `where` names the file and line (or row) for error messages, and the
record is a plain dict. Field mapping and chat-format prompts (first user turn of a `messages`/`conversation`
column, as in WildChat) are resolved here, so everything downstream sees {prompt, id, lang, type, length}.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..config import PoolSource
from ..errors import UserError
from ..textclean import strip_control

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
        with path.open("rb") as fh:
            reader = csv.DictReader(_utf8_lines(path, fh))
            try:
                for record in reader:
                    yield f"{path}:{reader.line_num}", record
            except csv.Error as exc:
                if "field larger than field limit" in str(exc):
                    raise UserError(f"{path}:{reader.line_num + 1}: a field is longer than "
                                    f"{csv.field_size_limit():,} characters; no instruction is that long "
                                    "(is a quote left open?).") from None
                raise UserError(f"{path}:{reader.line_num}: not valid CSV ({exc}).") from None
    elif kind == "text":
        with path.open("rb") as fh:
            for number, line in enumerate(_utf8_lines(path, fh), start=1):
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


class SourceUnavailable(Exception):
    """A Hub dataset could not be read (network, authorisation, missing or gated dataset), at the start or part
    way: the pools go on without the rest of it, and say so."""


def is_local_folder(name: str) -> bool:
    """Whether `hf:` names a folder on this machine rather than a Hub id: an existing folder, or a name written as
    a path (starting with . / ~, more than one slash, or under an existing folder such as data/), so that a typo
    in a local path is an error and not a Hub dataset that cannot be reached."""
    path = Path(name).expanduser()
    return (path.is_dir() or name.startswith((".", "/", "~")) or name.count("/") > 1
            or (name.count("/") == 1 and Path(name.split("/")[0]).is_dir()))


def _utf8_lines(path: Path, fh: BinaryIO) -> Iterator[str]:
    """The lines of a file, decoded one by one, so text that is not UTF-8 is reported with its line number."""
    for number, raw in enumerate(fh, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as "
                            "UTF-8.") from None


def _hf_records(source: PoolSource) -> Iterator[tuple[str, dict]]:
    """A dataset saved with `save_to_disk` (a local folder) or a Hub id, streamed."""
    import datasets

    local = Path(source.hf).expanduser()
    if is_local_folder(source.hf):
        if not local.is_dir():
            raise UserError(f"pool hf: {source.hf}: no such folder (a dataset saved with save_to_disk, or a Hub id "
                            f"such as allenai/WildChat-1M).")
        try:
            loaded = datasets.load_from_disk(str(local))
        except (OSError, ValueError) as exc:
            raise UserError(f"{local}: not a dataset saved with save_to_disk ({exc}); give `hf:` such a folder, "
                            "or a file with `path:`.") from None
        if isinstance(loaded, datasets.DatasetDict):
            if source.split not in loaded:
                raise UserError(f"{local}: no split {source.split!r} (has {', '.join(loaded)}); set `split:`.")
            loaded = loaded[source.split]
        for row, record in enumerate(loaded.to_iterable_dataset(), start=1):
            yield f"{source.hf}: row {row}", record
        return
    row = 0
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)  # its retries' chatter; a failure is said once, below
    try:
        rows = datasets.load_dataset(source.hf, split=source.split, streaming=True, revision=source.revision)
        for row, record in enumerate(rows, start=1):
            yield f"{source.hf}: row {row}", record
    except Exception as exc:  # network, auth, gated or missing dataset: all end the same way for the user
        where = "cannot open the dataset" if row == 0 else f"reading stopped after row {row}"
        raise SourceUnavailable(f"{where} ({type(exc).__name__}: {_first_line(exc)})") from None
    finally:
        hub_logger.setLevel(level)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


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
        if key == "lang":
            value = _LANGUAGE_NAMES.get(value.lower(), value)
        out[key] = str(value) if key == "id" else value
    return out


# Language names as datasets spell them (WildChat's `language` column: "English", "Chinese") -> our codes.
_LANGUAGE_NAMES = {"english": "en", "chinese": "zh"}
