"""Instruction sources of every kind, field mapping, selection, languages, mixing, and the `pools` preview."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from longwriter_data.cli import main
from longwriter_data.config import PoolsConfig, PoolSource, Selection
from longwriter_data.errors import UserError
from longwriter_data.pools.instructions import DrawSettings, PreparedPools, draw, selection_problem
from tests.conftest import jobs, write_config, write_pool

ROWS = [
    {"instruction": "Write a 3000-word report on river pollution.", "key": "a", "category": "Academic and Monograph"},
    {"instruction": "写一篇关于城市交通的长篇报告。", "key": "b", "category": "News Report"},
    {"instruction": "Write an essay about the sea.", "key": "c", "category": "Literature and Creative Writing"},
]


def prepared(sources: list[dict], **options) -> PreparedPools:
    config = PoolsConfig(sources=[PoolSource(**s) for s in sources], **options)
    return PreparedPools(config)


def drawn(pools: PreparedPools, seed: int = 0) -> list:
    return list(draw(pools, DrawSettings(seed)))


def write_csv(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["instruction", "key", "category"])
        writer.writeheader()
        writer.writerows(ROWS)
    return path


MAPPING = {"field": "instruction", "fields": {"id": "key", "type": "category"}}


def test_every_file_kind_with_field_mapping_gives_the_same_instructions(tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    parquet = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), parquet)
    expected = {(r["key"], r["instruction"], r["category"]) for r in ROWS}
    for path in (jsonl, write_csv(tmp_path / "p.csv"), parquet):
        got = {(i.id, i.prompt, i.type) for i in drawn(prepared([{"path": path, **MAPPING}]))}
        assert got == expected, path.suffix
    text = tmp_path / "p.txt"
    text.write_text("\n".join(r["instruction"] for r in ROWS) + "\n\n", encoding="utf-8")
    instructions = drawn(prepared([{"path": text}]))
    assert {i.prompt for i in instructions} == {r["instruction"] for r in ROWS}
    assert {i.lang for i in instructions} == {"en", "zh"}
    assert {i.id for i in instructions} == {"p:1", "p:2", "p:3"}


def test_hugging_face_dataset_folder_with_chat_column_uses_the_first_user_turn(tmp_path):
    chats = [
        {"conversation": [{"role": "user", "content": "Write a long story about a fox."},
                          {"role": "assistant", "content": "Once..."}], "language": "English"},
        {"conversation": [{"role": "system", "content": "Be nice."},
                          {"role": "user", "content": "写一篇关于熊猫的文章。"}], "language": "Chinese"},
    ]
    folder = tmp_path / "wildchat_like"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(chats)}).save_to_disk(str(folder))
    got = drawn(prepared([{"hf": str(folder), "split": "train"}]))
    assert sorted(i.prompt for i in got) == sorted(["Write a long story about a fox.", "写一篇关于熊猫的文章。"])
    sharegpt = tmp_path / "sharegpt"
    datasets.Dataset.from_list([{"conversations": [{"from": "human", "value": "Write a guide to tea."}]}]).save_to_disk(
        str(sharegpt))
    assert [i.prompt for i in drawn(prepared([{"hf": str(sharegpt)}]))] == ["Write a guide to tea."]


@pytest.mark.parametrize(
    "content, kind, message",
    [
        ('{"prompt": "ok"}\n{broken\n', "jsonl", r"p.jsonl:2: not valid JSON"),
        ("instruction,key\nWrite an essay,a\n,b\n", "csv", r"p.csv:3: field 'instruction' is missing"),
        ('{"instruction": "ok", "key": "a", "category": 7}\n', "jsonl", r"p.jsonl:1: field 'type' has the wrong type"),
    ],
)
def test_malformed_sources_fail_with_file_and_line(tmp_path, content, kind, message):
    path = tmp_path / f"p.{kind}"
    path.write_text(content, encoding="utf-8")
    source = {"path": path, **MAPPING} if "instruction" in content else {"path": path}
    with pytest.raises(UserError, match=message):
        prepared([source])


def test_unreadable_parquet_and_unknown_extension_are_clear_errors(tmp_path):
    bad = tmp_path / "p.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(UserError, match="p.parquet: not a readable Parquet file"):
        prepared([{"path": bad}])
    odd = tmp_path / "p.dat"
    odd.write_text("x\n")
    with pytest.raises(UserError, match="set `format:`"):
        prepared([{"path": odd}])


@pytest.mark.parametrize(
    "prompt, problem",
    [
        ("Write a 5000-word report on rivers.", None),
        ("写一篇3000字的文章。", None),
        ("Write a 500-word summary of this email.", "required_length_too_short"),
        ("Write a detailed guide to composting at home.", None),
        ("帮我写一篇关于春节的散文。", None),
        ("What is the capital of France?", "not_long_form"),
        ("hi", "prompt_too_short"),
        ("Write an essay. " + "x" * 5000, "prompt_too_long"),
    ],
)
def test_rule_based_selection(prompt, problem):
    assert selection_problem({"prompt": prompt}, Selection()) == problem


def test_selection_languages_and_dedupe_are_counted_per_rule(tmp_path):
    path = tmp_path / "p.jsonl"
    prompts = ["Write a 5000-word report on rivers.", "What time is it?", "Write a 5000-word report on rivers.",
               "Écris un long essai sur la mer, s'il te plaît.", "写一篇3000字的文章，介绍长江。"]
    langs = ["en", "en", "en", "fr", "zh"]
    path.write_text("".join(json.dumps({"prompt": p, "lang": l}, ensure_ascii=False) + "\n"
                            for p, l in zip(prompts, langs)), encoding="utf-8")
    pools = prepared([{"path": path}], languages=["en", "zh"], select=Selection())
    assert len(pools) == 2
    assert pools.dropped == Counter({"not_long_form": 1, "exact_duplicate": 1, "language": 1})
    curated = prepared([{"path": path, "select": False}], languages=["en", "zh"], select=Selection())
    assert len(curated) == 3  # a source may skip the selection rules, not the language or dedupe ones


def test_language_and_type_weights_shape_the_mix_deterministically(tmp_path):
    path = tmp_path / "p.jsonl"
    records = [{"prompt": f"Write essay {i}", "lang": "en", "type": "A" if i % 2 else "B"} for i in range(200)]
    records += [{"prompt": f"写文章{i}", "lang": "zh", "type": "A"} for i in range(200)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    pools = prepared([{"path": path}], lang_weights={"en": 3.0, "zh": 1.0}, type_weights={"B": 0.0})
    first = drawn(pools, seed=3)
    assert [i.prompt for i in first] == [i.prompt for i in drawn(pools, seed=3)]
    assert all(i.type != "B" for i in first)  # weight 0 leaves a type out
    head = Counter(i.lang for i in first[:100])
    assert head["en"] > 2 * head["zh"]


def test_pools_command_previews_the_mix(tmp_path, capsys):
    source = write_csv(tmp_path / "p.csv")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "name": "preview", "run_dir": str(tmp_path / "run"), "target": 10,
        "pools": {"sources": [{"path": str(source), **MAPPING}], "select": {"keywords": True}},
    }))
    assert main(["pools", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "3 instructions to draw" in out  # all three are long-form: a report, a 报告, an essay
    assert "Per language:" in out and "Per type:" in out
    assert "Per required length" in out and "2k-4k" in out
    assert ("Warning: the pools' 3 instructions would give about 2 accepted samples at 85% acceptance, short of the target of 10"
            in out)
    assert not (tmp_path / "run").exists()  # a preview writes nothing


def test_a_reader_that_leaves_early_ends_the_command_quietly():
    """`pools --config X | head -1`: no traceback about a broken pipe, and the status other tools give."""
    proc = subprocess.Popen([sys.executable, "-m", "longwriter_data", "pools", "--config", "configs/6k.yaml",
                             "--samples", "600"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})  # the recipe's Hub source: offline here
    assert proc.stdout.readline().startswith(b"longwriter-6k:")
    proc.stdout.close()  # the output is far larger than a pipe holds: the command meets the closed pipe
    assert proc.wait(timeout=120) == 141
    assert b"Traceback" not in proc.stderr.read()


def wildchat_rows(prompts: list[tuple[str, str]]) -> list[dict]:
    """Rows with allenai/WildChat-1M's columns (conversation_hash, conversation of turns, turn, language, toxic)."""
    return [{"conversation_hash": f"h{i}", "model": "gpt-4-0314", "turn": 1, "language": language, "toxic": False,
             "conversation": [{"role": "user", "content": prompt, "language": language, "toxic": False},
                              {"role": "assistant", "content": "Sure.", "language": language, "toxic": False}]}
            for i, (language, prompt) in enumerate(prompts)]


WILDCHAT = {"messages_field": "conversation", "fields": {"lang": "language"}}


def test_a_wildchat_stand_in_gives_first_user_turns_in_the_wanted_languages_up_to_max_instructions(tmp_path):
    rows = wildchat_rows([("English", "Write a 3000-word essay on tides."), ("Russian", "Напиши эссе о море."),
                          ("Chinese", "写一篇关于长江的报告。"), ("English", "hi"),
                          ("English", "Write a detailed guide to bread."), ("English", "Write a long story.")])
    folder = tmp_path / "wildchat"
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    pools = prepared([{"hf": str(folder), **WILDCHAT, "max_instructions": 3}], languages=["en", "zh"],
                     select=Selection())
    got = {(i.lang, i.prompt) for i in drawn(pools)}
    assert got == {("en", "Write a 3000-word essay on tides."), ("zh", "写一篇关于长江的报告。"),
                   ("en", "Write a detailed guide to bread.")}  # the third kept ends the reading
    assert pools.dropped == {"language": 1, "prompt_too_short": 1}


def _pools_command(tmp_path: Path, source: dict, **pools) -> subprocess.CompletedProcess:
    """`pools` in a process of its own with the Hub offline (huggingface_hub reads HF_HUB_OFFLINE at import)."""
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"prompt": r["instruction"]}, ensure_ascii=False) + "\n" for r in ROWS),
                     encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"name": "hub", "run_dir": str(tmp_path / "run"), "target": 10,
                                      "pools": {"sources": [{"path": str(seeds)}, source], **pools}}))
    return subprocess.run([sys.executable, "-m", "longwriter_data", "pools", "--config", str(config)],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)


def test_an_unreachable_hub_source_is_a_warning_and_the_other_sources_are_drawn(tmp_path):
    done = _pools_command(tmp_path, {"hf": "allenai/WildChat-1M", **WILDCHAT}, synthesize={"acceptance": 1.0})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert ("Warning: pool hf:allenai/WildChat-1M: cannot open the dataset (ConnectionError" in done.stdout
            and "going on without it and with the other sources." in done.stdout)
    assert "3 instructions to draw" in done.stdout
    assert "the build will first have the backend write 7 more instructions (count: auto" in done.stdout
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("folder", ["{tmp}/wildchat_typo", "data/wildchat_typo", "./wildchat_typo"])
def test_a_missing_local_dataset_folder_is_still_an_error(tmp_path, folder):
    done = _pools_command(tmp_path, {"hf": folder.format(tmp=tmp_path), **WILDCHAT})
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: pool hf: {folder.format(tmp=tmp_path)}: no such folder (a dataset saved " \
                                  "with save_to_disk, or a Hub id such as allenai/WildChat-1M)."


def test_pools_help_shows_the_default_of_samples(capsys):
    with pytest.raises(SystemExit):
        main(["pools", "--help"])
    assert "first in draw order (default: 5)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("p.csv", b"prompt\nWrite an essay\nWrite a caf\xe9 guide\n", r"p.csv:3: not UTF-8 text"),
        ("p.txt", b"Write an essay\n\nWrite a caf\xe9 guide\n", r"p.txt:3: not UTF-8 text"),
        ("p.csv", b'prompt\n"' + b"x" * 140_000 + b'"\n', r"p.csv:2: .*131,072 characters"),
        ("p.jsonl", b"", r"p.jsonl: the pool file holds no instructions"),
        ("p.jsonl", b"\n\n", r"p.jsonl: the pool file holds no instructions"),
        ("p.csv", b"prompt\n", r"p.csv: the pool file holds no instructions"),
        ("p.txt", b"  \n", r"p.txt: the pool file holds no instructions"),
    ],
)
def test_unreadable_or_empty_pool_files_are_refused_before_anything_is_created(tmp_path, capsys, name, content,
                                                                                message):
    import re

    pool = tmp_path / name
    pool.write_bytes(content)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"name": "t", "run_dir": str(tmp_path / "run"), "target": 1,
                                      "backend": {"api_key_env": None}, "pools": [{"path": str(pool)}]}))
    for command in ("build", "pools", "estimate"):
        assert main([command, "--config", str(config)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(message, err), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("make", [lambda d: None, lambda d: (d / "notes.txt").write_text("hello")])
def test_a_folder_that_is_not_a_saved_dataset_is_a_clear_error(tmp_path, make):
    folder = tmp_path / "folder"
    folder.mkdir()
    make(folder)
    with pytest.raises(UserError, match=r"folder: not a dataset saved with save_to_disk"):
        prepared([{"hf": str(folder)}])


DIRTY = "Write a \x1b[1;31m5000-word\x1b[0m report\x00 on rivers\x07 and \x9bdeltas.\r\nCover the \ud800floods."
CLEAN = "Write a 5000-word report on rivers and deltas.\nCover the floods."


def test_control_characters_never_leave_a_pool_of_any_kind(tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(json.dumps({"prompt": DIRTY}) + "\n", encoding="utf-8")  # \u escapes: NUL, ESC, a surrogate
    csv_path = tmp_path / "p.csv"
    with csv_path.open("w", newline="", encoding="utf-8", errors="surrogatepass") as fh:
        csv.writer(fh).writerows([["prompt"], [DIRTY.replace("\ud800", "")]])
    text = tmp_path / "p.txt"
    text.write_text(DIRTY.replace("\ud800", "").replace("\r\n", " ") + "\n", encoding="utf-8")
    for path, expected in ((jsonl, CLEAN), (csv_path, CLEAN), (text, CLEAN.replace("\n", " "))):
        (instruction,) = drawn(prepared([{"path": path}]))
        assert instruction.prompt == expected, path.suffix
    pools = prepared([{"path": jsonl}])
    assert pools.add("synthesized", [{"prompt": "\x1b[32mWrite a novel.\x1b[0m", "id": "s"}], weight=1.0) == 1
    assert {i.prompt for i in drawn(pools)} == {CLEAN, "Write a novel."}


def test_a_prompt_of_only_control_characters_names_its_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "Write a story."}) + "\n" + json.dumps({"prompt": "\x1b[0m\x00"}) + "\n")
    with pytest.raises(UserError, match=r"p\.jsonl:2: field 'prompt' is missing"):
        prepared([{"path": path}])


def test_huge_pool_prompts_are_skipped_and_counted_in_preview_and_report(tmp_path, server, capsys):
    huge = "Write a 2400-word essay about this text: " + "lorem " * 400_000  # 2.4 MB, sent with every step
    pool = write_pool(tmp_path / "pool.jsonl", ["Write a 2400-word essay about rivers.", huge])
    config = write_config(tmp_path, server.base_url, pool, target=1)
    assert main(["pools", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "1 instruction to draw" in out
    assert "prompt_too_long: 1 (skipped: longer than pools.max_prompt_chars (20,000 characters))" in out
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    assert "prompt_too_long: 1" in capsys.readouterr().out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["skipped_instructions"] == {"prompt_too_long": 1}
    assert max(len(p) for p in server.stats(keys=True)["per_prompt"]) < 100  # (keys are hashes: nothing huge sent)
    assert [r["prompt"] for r in jobs(tmp_path / "run")] == ["Write a 2400-word essay about rivers."]
