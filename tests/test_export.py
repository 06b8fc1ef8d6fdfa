"""`export`: every format loads with `datasets` (save_to_disk and Parquet), the dataset card's front matter and
content, secrets kept out of it, and bad input answered with one line and status 2."""

import json
import logging
import re
import warnings

import datasets
import pyarrow.parquet as pq
import pytest
import yaml
from huggingface_hub import DatasetCard

from longwriter_data.cli import main
from longwriter_data.quality.length import count_words
from longwriter_data.testing.synthetic_run import SyntheticJob, write_run

TURNS = {
    "messages": ("messages", lambda row: (row["messages"][0]["content"], row["messages"][1]["content"])),
    "sharegpt": ("conversations", lambda row: (row["conversations"][0]["value"], row["conversations"][1]["value"])),
    "alpaca": ("instruction", lambda row: (row["instruction"], row["output"])),
}
ROLES = {
    "messages": lambda row: [(t["role"]) for t in row["messages"]],
    "sharegpt": lambda row: [(t["from"]) for t in row["conversations"]],
    "alpaca": lambda row: ["instruction", "output"],
}
METADATA = ["id", "lang", "type", "word_count", "required_length", "model"]


def export(*args) -> int:
    return main(["export", *map(str, args)])


def _run(path, **config):
    jobs = [
        SyntheticJob(words=2100, required=(2000, 2000)),
        SyntheticJob(words=1000, status="rejected", reason="too_short"),
        SyntheticJob(words=2600, lang="zh", type="story", required=(2000, 3000)),
        SyntheticJob(words=None),
        SyntheticJob(words=4100),
        SyntheticJob(words=3000, lang="zh"),
    ]
    return write_run(path, jobs, target=4, **config)


def _records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "jobs.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("fmt", ["messages", "sharegpt", "alpaca"])
def test_every_format_loads_with_load_from_disk_and_as_parquet(tmp_path, fmt):
    run = _run(tmp_path / "run")
    out = tmp_path / "out"
    assert export(run, "--out", out, "--format", fmt) == 0
    column, turns = TURNS[fmt]
    train = datasets.load_from_disk(str(out))["train"]
    parquet = datasets.load_dataset("parquet", data_files={"train": str(out / "data" / "train-*.parquet")})["train"]
    assert train.column_names == parquet.column_names
    assert [c for c in train.column_names if c not in METADATA] in ([column], ["instruction", "input", "output"])
    assert train.to_list() == parquet.to_list()
    accepted = [r for r in _records(run) if r["status"] == "accepted"]
    assert len(train) == 4  # the target: the first four accepted in draw order
    for row, record in zip(train, accepted):
        prompt, answer = turns(row)
        assert prompt == record["prompt"] and answer == "\n\n".join(record["paragraphs"])
        assert count_words(answer) == row["word_count"] == record["word_count"]
        assert [row[key] for key in METADATA] == [record[key] for key in METADATA]
    assert ROLES[fmt](train[0]) in (["user", "assistant"], ["human", "gpt"], ["instruction", "output"])


def test_a_test_split_is_written_beside_train_and_named_in_the_card(tmp_path, capsys):
    run = _run(tmp_path / "run")
    assert export(run, "--test-size", "0.25") == 0
    assert f"Exported 4 samples (3 train, 1 test; messages format) with its card to {run / 'dataset'}" in \
        capsys.readouterr().out
    folder = run / "dataset"
    loaded = datasets.load_from_disk(str(folder))
    assert {name: len(split) for name, split in loaded.items()} == {"train": 3, "test": 1}
    assert sorted(p.name for p in (folder / "data").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet"]
    meta = DatasetCard.load(folder / "README.md").data.to_dict()
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-*"}, {"split": "test", "path": "data/test-*"}]}]
    splits = meta["dataset_info"]["splits"]
    assert [(split["name"], split["num_examples"]) for split in splits] == [("train", 3), ("test", 1)]
    assert all(split["num_bytes"] > 0 for split in splits)


def test_the_card_has_valid_front_matter_and_the_folder_loads_by_its_configs(tmp_path):
    run = _run(tmp_path / "run", export={"license": "cc-by-4.0", "hub_repo": "lab/long-essays"})
    assert export(run, "--format", "sharegpt") == 0
    folder = run / "dataset"
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta == DatasetCard.load(folder / "README.md").data.to_dict()
    assert meta["license"] == "cc-by-4.0"
    assert meta["language"] == ["en", "zh"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert [f["name"] for f in meta["dataset_info"]["features"]] == ["conversations", *METADATA]
    # `load_dataset` on the folder reads the card's configs: the Parquet shards, with the card's features
    loaded = datasets.load_dataset(str(folder))
    assert list(loaded) == ["train"] and len(loaded["train"]) == 4
    assert loaded["train"].features == datasets.load_from_disk(str(folder))["train"].features
    # the body: how to load it, the histogram and bands, languages and types, the recipe and the prompts
    assert 'load_dataset("lab/long-essays")' in text
    assert "![Output length histogram and required vs actual length](length_histogram.png)" in text
    assert (folder / "length_histogram.png").read_bytes()[:4] == b"\x89PNG"
    assert "| [2k, 4k) | 3 | 75.0% |" in text and "| [4k, 8k) | 1 | 25.0% |" in text
    assert "| en | 2 | 3,100 |" in text and "| zh | 2 | 2,800 |" in text
    assert "| story | 1 |" in text
    assert "Jobs: 4 accepted, 1 rejected, 1 failed" in text and "too_short 1" in text
    assert "Writer model: `synthetic`" in text and "<code>write_en.txt</code>" in text
    assert "Tokens: 5,000 input" in text


def test_card_and_recipe_drop_secrets(tmp_path):
    run = _run(tmp_path / "run",
               backend={"base_url": "https://llm.example.com/v1?api_key=abc123&region=eu",
                        "api_key_env": "MY_SECRET_KEY_VAR"},
               generation={"extra_body": {"api_key": "sk-live-0123456789", "top_p": 0.9,
                                          "note": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                                          "session": "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"}})
    assert export(run) == 0
    folder = run / "dataset"
    published = (folder / "README.md").read_text(encoding="utf-8") + (folder / "recipe.json").read_text()
    for secret in ("pa55word", "alice:", "abc123", "sk-live", "MY_SECRET_KEY_VAR", "ghp_", "A1b2C3d4E5f6",
                   "api_key", str(tmp_path)):
        assert secret not in published
    recipe = json.loads((folder / "recipe.json").read_text())
    assert recipe["config"]["backend"]["base_url"] == "https://llm.example.com/v1?region=eu"
    assert recipe["config"]["generation"]["extra_body"] == {"top_p": 0.9, "note": "(removed)"}  # session: by its name
    assert recipe["config"]["generation"]["plan_max_tokens"] == 4096  # settings named like tokens stay


def test_a_requeued_job_counts_once_with_its_last_record(tmp_path):
    run = _run(tmp_path / "run")
    records = _records(run)
    failed = next(r for r in records if r["status"] == "failed")
    retried = {**records[0], "seq": failed["seq"], "id": failed["id"], "prompt": "Retried and accepted."}
    with (run / "jobs.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(retried) + "\n")
    assert export(run) == 0
    ids = datasets.load_from_disk(str(run / "dataset"))["train"]["id"]
    assert ids == ["syn000000", "syn000002", "syn000003", "syn000004"]  # seq 3 now accepted, in draw order


def test_export_of_a_run_being_written_ignores_the_torn_last_line(tmp_path):
    run = _run(tmp_path / "run")
    with (run / "jobs.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"seq": 6, "status": "accepted", "prom')
    assert export(run) == 0
    assert len(datasets.load_from_disk(str(run / "dataset"))["train"]) == 4


@pytest.mark.parametrize(
    "setup, args, message",
    [
        ("run", ["--format", "jsonl"], "unknown export format 'jsonl'; choose one of messages, sharegpt, alpaca"),
        ("run", ["--test-size", "1.5"], "--test-size must be in [0, 1)"),
        ("run", ["--test-size", "0.9"], "--test-size 0.9 leaves no training rows of the 4 samples"),  # ceil(3.6) = 4
        ("none_accepted", [], "has no accepted samples to export yet"),
        ("empty", [], "is not a run directory"),
    ],
)
def test_bad_input_is_one_error_line_and_status_2(tmp_path, capsys, setup, args, message):
    run = tmp_path / "run"
    if setup == "run":
        _run(run)
    elif setup == "none_accepted":
        write_run(run, [SyntheticJob(words=100, status="rejected", reason="too_short"), SyntheticJob(words=None)])
    else:
        run.mkdir()
    assert export(run, *args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err
    assert not (run / "dataset").exists()


def _tree(root) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for a folder): what a refused command must leave as it was."""
    return {p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(
    "out, message",
    [
        ("run", "is the run directory"),
        (".", "the current directory"),
        ("", "holds the run directory"),  # the folder above the run directory
        ("mine", "was not written by export (notes.txt)"),
        ("mine/notes.txt", "exists and is not a folder"),
        ("mine/notes.txt/out", "cannot write the export beside"),
        ("exported", "holds a file its export did not write (data/mine.csv)"),
        ("exported-before-marker", "holds a file its export did not write (todo.md)"),
        ("run/jobs.jsonl", "exists and is not a folder"),
    ],
)
def test_export_refuses_any_folder_it_did_not_make_and_touches_nothing(tmp_path, capsys, monkeypatch, out, message):
    run = _run(tmp_path / "run")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    assert export(run, "--out", tmp_path / "exported") == 0
    (tmp_path / "exported" / "data" / "mine.csv").write_text("a user's file inside an export")
    assert export(run, "--out", tmp_path / "exported-before-marker") == 0
    legacy = tmp_path / "exported-before-marker"
    (legacy / ".longwriter-export.json").unlink(missing_ok=True)  # as an older version wrote it
    (tmp_path / "exported-before-marker" / "todo.md").write_text("mine")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "draft.txt").write_text("work in progress")
    monkeypatch.chdir(tmp_path / "work")
    capsys.readouterr()
    before = _tree(tmp_path)
    assert export(run, "--out", tmp_path / out if out != "." else ".") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("earlier", ["export", "export before the marker", "empty folder"])
def test_export_replaces_its_own_earlier_export_or_an_empty_folder(tmp_path, earlier):
    run = _run(tmp_path / "run")
    out = tmp_path / "out"
    if earlier == "empty folder":
        out.mkdir()
    else:
        assert export(run, "--out", out, "--test-size", "0.25") == 0
    if earlier == "export before the marker":
        (out / ".longwriter-export.json").unlink(missing_ok=True)
    if earlier != "empty folder":
        (out / "README.md.tmp").write_text("what a push killed while it rewrote the card left")
    assert export(run, "--out", out, "--format", "alpaca") == 0
    loaded = datasets.load_from_disk(str(out))
    assert list(loaded) == ["train"] and len(loaded["train"]) == 4 and "instruction" in loaded["train"].column_names
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000-of-00001.parquet"]  # the old test split
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left behind


def _killed_staging(parent, name: str):
    """What an export killed mid-write leaves: its staging folder, written by the real code, its process dead."""
    import subprocess
    import sys

    code = ("import os, signal, sys; from pathlib import Path; from longwriter_data.publish.outdir import staging\n"
            "with staging(Path(sys.argv[1])) as tmp:\n"
            "    (tmp / 'out').mkdir(); (tmp / 'out' / 'data-00000.arrow').write_bytes(b'x' * 1000)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    before = set(parent.iterdir())
    proc = subprocess.run([sys.executable, "-c", code, str(parent / name)])
    assert proc.returncode == -9
    (left,) = set(parent.iterdir()) - before
    assert left.name.startswith(f".{name}.staging-")
    return left


def test_staging_folders_of_killed_exports_are_removed_by_the_next_export_and_build(tmp_path, server):
    import json
    import os
    import socket

    from tests.conftest import write_config, write_pool

    pool = write_pool(tmp_path / "pool.jsonl", [f"Write a 2400-word essay about topic {i}." for i in range(3)])
    config = write_config(tmp_path, server.base_url, pool, target=2)
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    dead = [_killed_staging(run, "dataset") for _ in range(2)]
    # Left alone: a live export's, another machine's (a shared disk), and a folder that only looks like one.
    live = run / f".dataset.staging-{os.getpid()}-abc123"
    other_host = run / ".dataset.staging-999999-def456"
    lookalike = run / ".dataset.staging-999998-ghi789"
    for folder, host in ((live, socket.gethostname()), (other_host, "another-machine"), (lookalike, None)):
        folder.mkdir()
        if host:
            pid = int(folder.name.split("-")[1])
            (folder / "owner.json").write_text(json.dumps({"pid": pid, "host": host}))
    assert export(run) == 0
    assert not any(p.exists() for p in dead)
    assert live.exists() and other_host.exists() and lookalike.exists()

    again = _killed_staging(run, "dataset")
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    assert not again.exists()
    out = tmp_path / "elsewhere" / "export"
    out.parent.mkdir()
    stale = _killed_staging(out.parent, "export")
    assert export(run, "--out", out) == 0
    assert not stale.exists()


@pytest.mark.parametrize(
    "line, where",
    [
        ("cut mid-UTF-8", 2),
        ("binary garbage", 2),
        ("not a job record", 2),
    ],
)
@pytest.mark.parametrize("command", ["export", "inspect"])
def test_a_corrupt_line_in_jobs_jsonl_is_one_error_line(tmp_path, capsys, line, where, command):
    run = _run(tmp_path / "run")
    lines = (run / "jobs.jsonl").read_bytes().split(b"\n")
    broken = {
        "cut mid-UTF-8": "文章".encode()[:4],  # a record cut inside a character, then the next record
        "binary garbage": b"\x00\xff\xfe\x80garbage\x1b[31m",
        "not a job record": b"[1, 2, 3]",
    }[line]
    lines[where - 1] = lines[where - 1][:200] + broken if line == "cut mid-UTF-8" else broken
    (run / "jobs.jsonl").write_bytes(b"\n".join(lines))
    capsys.readouterr()
    assert main([command, str(run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"jobs.jsonl:{where}: corrupt record" in err, err
    assert not (run / "dataset").exists()


def test_a_last_line_cut_mid_utf8_is_a_torn_record_and_ignored(tmp_path):
    run = _run(tmp_path / "run")
    with (run / "jobs.jsonl").open("ab") as fh:
        fh.write(b'{"seq": 6, "status": "accepted", "prompt": "' + "文章".encode()[:4])
    assert export(run) == 0
    assert main(["inspect", str(run)]) == 0
    assert len(datasets.load_from_disk(str(run / "dataset"))["train"]) == 4


def _private_mounts_work() -> bool:
    """A user namespace with its own mounts (unshare -rm), where a small tmpfs is a real full disk; no root needed."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "tmpfs", "/mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _private_mounts_work(), reason="needs unshare -rm (user and mount namespaces)")
def test_a_full_disk_during_export_is_one_line_status_1_and_the_run_and_its_last_export_stay(tmp_path):
    import shlex
    import subprocess
    import sys

    run = _run(tmp_path / "run")
    assert export(run) == 0  # an earlier export, which must survive the failed one
    before = _tree(run)
    used = sum(-(-len(data) // 4096) * 4096 for data in before.values() if data is not None)
    dataset = sum(len(data) for name, data in before.items() if name.startswith("dataset/") and data)
    disk, after = tmp_path / "disk", tmp_path / "after"
    disk.mkdir()
    # The run on a disk with room for half a new export: the staging copy fills it.
    script = (f"mount -t tmpfs -o size={used + dataset // 2} tmpfs {disk} && cp -a {run} {disk}/run && "
              f"{shlex.quote(sys.executable)} -m longwriter_data export {disk}/run; status=$?; "
              f"cp -a {disk}/run {after}; exit $status")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no space left on the disk of ") and "export again" in err[0], err
    assert _tree(after) == before  # the run and its last export as they were, no staging folder left behind


def test_loading_the_export_logs_no_warning_about_its_card(tmp_path, monkeypatch, caplog):
    run = _run(tmp_path / "run")
    assert export(run, "--test-size", "0.25") == 0
    monkeypatch.setattr(logging.getLogger("datasets"), "propagate", True)  # datasets keeps its logs to itself
    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = datasets.load_dataset(str(run / "dataset"), cache_dir=str(tmp_path / "cache"))
    assert {name: len(split) for name, split in loaded.items()} == {"train": 3, "test": 1}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [str(w.message) for w in caught] == []


def _snippet(text: str, after: str, lang: str) -> str:
    """The first ```lang block of the card after the sentence `after`."""
    return re.search(rf"```{lang}\n(.*?)```", text[text.index(after):], re.S).group(1)


def test_the_card_gives_token_lengths_and_trainer_settings_that_fit_the_longest_sample(tmp_path):
    from longwriter_data.quality.length import approx_tokens

    run = _run(tmp_path / "run")
    assert export(run, "--test-size", "0.25") == 0
    folder = run / "dataset"
    text = (folder / "README.md").read_text(encoding="utf-8")
    rows = [row for shard in sorted((folder / "data").glob("*.parquet")) for row in pq.read_table(shard).to_pylist()]
    tokens = sorted(sum(approx_tokens(turn["content"]) for turn in row["messages"]) for row in rows)
    assert f"| {tokens[len(tokens) // 2]:,} | {tokens[-1]:,} | {tokens[-1]:,} | {tokens[-1]:,} |" in text
    assert "estimated at 4 characters a token" in text
    fit = int(re.search(r"rounded up to a multiple of 1,024: ([\d,]+)", text).group(1).replace(",", ""))
    assert fit % 1024 == 0 and fit >= 1.25 * tokens[-1] and fit - 1024 < 1.25 * tokens[-1]
    assert f"args=SFTConfig(max_length={fit})" in text
    assert f"cutoff_len: {fit}" in text
    assert f"sequence_len: {fit}\ndatasets:\n  - path: ORG/NAME\n    split: train\n" in text
    assert "this `messages` format is the one it reads as conversations" in text
    # LLaMA-Factory from local files: the train shard itself, which holds the train rows and no others
    local = json.loads(_snippet(text, "from a local copy", "json"))["NAME"]
    shard = local.pop("file_name")
    assert shard == "/path/to/NAME/data/train-00000-of-00001.parquet"
    assert pq.read_metadata(folder / shard.removeprefix("/path/to/NAME/")).num_rows == 3
    assert local["formatting"] == "sharegpt" and local["columns"] == {"messages": "messages"}
    assert "`data/` also holds the test split, which would be trained on" in text
    assert json.loads(_snippet(text, "from the Hub", "json"))["NAME"]["split"] == "train"


def test_a_card_of_another_format_tells_trl_users_to_export_messages(tmp_path):
    run = _run(tmp_path / "run")
    assert export(run, "--format", "sharegpt") == 0
    text = (run / "dataset" / "README.md").read_text(encoding="utf-8")
    assert "TRL reads only the `messages` format as conversations" in text and "--format messages" in text
    assert "SFTTrainer(" not in text


@pytest.mark.parametrize("model_path, shown", [(None, "SmolLM2-135M-Instruct.Q4_1.gguf"),
                                               ("/home/alice/models/qwen-7b.Q4_K_M.gguf", "qwen-7b.Q4_K_M.gguf")])
def test_a_local_build_shows_its_model_file_not_an_unused_base_url(tmp_path, model_path, shown):
    run = _run(tmp_path / "run", backend={"kind": "local", "model": "smollm2-135m", "model_path": model_path})
    assert export(run) == 0
    folder = run / "dataset"
    published = (folder / "README.md").read_text(encoding="utf-8") + (folder / "recipe.json").read_text()
    assert "api.openai.com" not in published and "base_url" not in published and "/home/alice" not in published
    assert f"(model file `{shown}`, run by llama.cpp)" in published
    assert json.loads((folder / "recipe.json").read_text())["config"]["backend"]["model_path"] == shown


def test_a_later_sample_of_an_instruction_gets_a_row_id_of_its_own():
    from dataclasses import replace

    from longwriter_data.publish.export import to_row
    from longwriter_data.records import JobRecord

    record = JobRecord(seq=7, id="p7", sample=0, status="accepted", prompt="Write.", paragraphs=["Text."])
    assert to_row(record, "messages")["id"] == "p7"
    assert to_row(replace(record, sample=2), "messages")["id"] == "p7#2"
