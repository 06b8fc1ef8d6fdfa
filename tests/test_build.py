"""`build` end to end through the real openai client against the loopback fake server."""

import json

import datasets
import pytest

from longwriter_data.cli import main
from longwriter_data.quality.length import count_words
from tests.conftest import jobs, write_config, write_pool

GOOD = [f"Write a 2400-word essay about topic {i}." for i in range(6)]


def build(config) -> int:
    return main(["build", "--config", str(config), "--no-progress"])


def test_build_writes_accepted_samples_and_a_chat_dataset(tmp_path, server):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD)
    config = write_config(tmp_path, server.base_url, pool, target=3)
    assert build(config) == 0
    run = tmp_path / "run"
    records = jobs(run)
    assert sum(r["status"] == "accepted" for r in records) >= 3
    accepted = [r for r in records if r["status"] == "accepted"]
    for record in accepted:
        assert 2000 <= record["word_count"] <= 32000
        assert record["usage"]["requests"] == len(record["plan"]) + 1
        assert record["plan"] and record["paragraph_words"] == [count_words(p) for p in record["paragraphs"]]

    dataset = datasets.load_from_disk(str(run / "dataset"))["train"]
    assert len(dataset) == 3
    assert dataset.features["messages"] == datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
    for row in dataset:
        user, assistant = row["messages"]
        assert user["role"] == "user" and user["content"] in GOOD
        assert assistant["role"] == "assistant"
        assert count_words(assistant["content"]) == row["word_count"] >= 2000
        assert "Paragraph" not in assistant["content"] and "Word Count" not in assistant["content"]
    parquet = datasets.load_dataset("parquet", data_files=str(run / "dataset" / "data" / "train-*.parquet"))["train"]
    assert parquet["messages"] == dataset["messages"]
    assert server.stats()["repeated"] == 0  # no request was sent twice


def test_band_filter_rejects_outputs_outside_min_and_max_words(tmp_path, server):
    pool = write_pool(tmp_path / "pool.jsonl", [
        "Write a 2400-word essay about rivers. [[short]]",
        "Write an essay about oceans. [[words=4000]]",
        "Write a 2400-word essay about lakes.",
    ])
    config = write_config(tmp_path, server.base_url, pool, target=3, filters={"min_words": 2000, "max_words": 3000})
    assert build(config) == 0
    by_prompt = {r["prompt"]: r for r in jobs(tmp_path / "run")}
    short = by_prompt["Write a 2400-word essay about rivers. [[short]]"]
    assert (short["status"], short["reason"]) == ("rejected", "too_short")
    assert short["word_count"] < 2000
    long = by_prompt["Write an essay about oceans. [[words=4000]]"]
    assert (long["status"], long["reason"]) == ("rejected", "too_long")
    assert by_prompt["Write a 2400-word essay about lakes."]["status"] == "accepted"


def test_chinese_instruction_uses_chinese_prompts_and_counts_characters(tmp_path, server):
    pool = write_pool(tmp_path / "pool.jsonl", ["请写一篇3000字的文章，介绍长江的历史。"])
    config = write_config(tmp_path, server.base_url, pool, target=1)
    assert build(config) == 0
    (record,) = jobs(tmp_path / "run")
    assert record["lang"] == "zh" and record["status"] == "accepted"
    text = "\n\n".join(record["paragraphs"])
    han = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    assert record["word_count"] == han >= 2900
    assert record["plan"][0]["main_point"].startswith("文章第1部分")


@pytest.mark.parametrize(
    "directive, reason, detail",
    [
        ("[[fail]]", "plan_failed", "500"),
        ("[[badplan]]", "plan_failed", "no steps"),
        ("[[empty]]", "plan_failed", "empty answer"),
        ("[[refuse]]", "plan_failed", "refusal"),
    ],
)
def test_a_failing_job_is_recorded_and_the_others_go_on(tmp_path, server, directive, reason, detail):
    bad = f"Write a 2400-word essay about storms. {directive}"
    pool = write_pool(tmp_path / "pool.jsonl", [bad, *GOOD[:3]])
    config = write_config(tmp_path, server.base_url, pool, target=3)
    assert build(config) == 0
    by_prompt = {r["prompt"]: r for r in jobs(tmp_path / "run")}
    failed = by_prompt[bad]
    assert (failed["status"], failed["reason"]) == ("failed", reason)
    assert detail in failed["detail"]
    assert sum(r["status"] == "accepted" for r in by_prompt.values()) == 3
    assert len(datasets.load_from_disk(str(tmp_path / "run" / "dataset"))["train"]) == 3


def test_json_plan_mode_yields_the_same_kind_of_samples(tmp_path, server):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD[:2])
    config = write_config(tmp_path, server.base_url, pool, target=2, generation={"plan_format": "json"})
    assert build(config) == 0
    records = jobs(tmp_path / "run")
    assert [r["status"] for r in records] == ["accepted", "accepted"]
    assert all(step["words"] == 400 for r in records for step in r["plan"])


@pytest.mark.parametrize("cutoff", ["retry", "trim"])
def test_cut_off_paragraphs_are_retried_or_trimmed_to_their_last_sentence(tmp_path, server, cutoff):
    pool = write_pool(tmp_path / "pool.jsonl", ["Write a 2400-word essay about storms. [[cutoff]]",
                                                 "写一篇2400字的文章，谈谈风暴。[[cutoff]]"])
    config = write_config(tmp_path, server.base_url, pool, target=2, filters={"check_language": False},
                          generation={"paragraph_cutoff": cutoff, "step_attempts": 2})
    assert build(config) == (1 if cutoff == "retry" else 0)  # a run whose every job failed does not exit 0
    records = jobs(tmp_path / "run")
    if cutoff == "retry":
        assert [(r["status"], r["reason"]) for r in records] == [("failed", "paragraph_failed")] * 2
        assert all("cut off" in r["detail"] for r in records)
        return
    assert [r["status"] for r in records] == ["accepted", "accepted"]
    for record in records:
        assert all(p.endswith((".", "。")) for p in record["paragraphs"]), record["paragraphs"][0][-40:]
        assert not any("ran on past" in p or "一直写下去" in p for p in record["paragraphs"])
    steps = [json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    assert {s["finish_reason"] for s in steps if s["step"] > 0} == {"trimmed"}


def test_pools_running_dry_ends_the_build_with_what_it_has(tmp_path, server, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD[:2])
    config = write_config(tmp_path, server.base_url, pool, target=5)
    assert build(config) == 0
    assert "pools ran dry" in capsys.readouterr().out
    assert len(datasets.load_from_disk(str(tmp_path / "run" / "dataset"))["train"]) == 2


def _summary_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("Build test:"))


def _new_records(run, before: int) -> dict[str, int]:
    """Jobs per status that a run appended after the first `before` records: what it did itself."""
    added = jobs(run)[before:]
    return {status: sum(r["status"] == status for r in added) for status in ("accepted", "rejected", "failed")}


def _in_this_run(counts: dict[str, int]) -> str:
    return f"{counts['accepted']} accepted, {counts['rejected']} rejected, {counts['failed']} failed in this run"


def test_the_summary_counts_only_what_this_run_did_after_a_resume_a_no_op_and_retry_failed(tmp_path, server, capsys):
    bad = "Write a 2400-word essay about storms. [[fail]]"
    pool = write_pool(tmp_path / "pool.jsonl", [bad, "Write a 2400-word essay about rivers. [[short]]", *GOOD])
    config = write_config(tmp_path, server.base_url, pool, target=2, engine={"max_jobs": 1})
    run = tmp_path / "run"
    assert build(config) == 0
    first = _new_records(run, 0)
    assert _in_this_run(first) in _summary_line(capsys.readouterr().out)

    before = len(jobs(run))  # resumed with a higher target: only the jobs this run finished count
    config.write_text(config.read_text().replace("target: 2", "target: 4"))
    assert build(config) == 0
    second = _new_records(run, before)
    assert second["accepted"] == 2  # not the 4 of the whole run
    out, err = capsys.readouterr()
    assert _in_this_run(second) in _summary_line(out)
    assert f"{first['accepted']} accepted, {first['rejected']} rejected, {first['failed']} failed" in err  # Resuming

    before = len(jobs(run))  # nothing left to do
    assert build(config) == 0
    assert len(jobs(run)) == before
    assert "no jobs to run in this run" in _summary_line(capsys.readouterr().out)

    assert main(["build", "--config", str(config), "--no-progress", "--retry-failed"]) == 0
    retried = _new_records(run, before)
    assert retried == {"accepted": 0, "rejected": 0, "failed": 1}  # the failed job, re-queued, failed again
    out = capsys.readouterr().out
    assert _in_this_run(retried) in out.split("Build test:")[-1]
    report = json.loads((run / "report.json").read_text())
    assert report["status"] == {"accepted": 4, "rejected": 1, "failed": 1}  # the whole run: each job once


def test_a_finished_run_has_nothing_in_progress_even_with_steps_of_cancelled_jobs(tmp_path, server, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD[:4])
    config = write_config(tmp_path, server.base_url, pool, target=2, engine={"max_jobs": 1})
    run = tmp_path / "run"
    assert build(config) == 0
    steps = (run / "steps.jsonl").read_text(encoding="utf-8").splitlines()
    plan = json.loads(steps[0])
    assert plan["seq"] == 0 and plan["step"] == 0
    # A job beyond the dataset's last row, cancelled when the target was met, after its plan was saved.
    with (run / "steps.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({**plan, "seq": 3}) + "\n")
    capsys.readouterr()
    assert build(config) == 0
    err = capsys.readouterr().err
    assert "2 accepted, 0 rejected, 0 failed, 0 in progress, 0 remaining" in err, err
    config.write_text(config.read_text().replace("target: 2", "target: 3"))  # now they are needed again
    half_done = {json.loads(line)["seq"] for line in (run / "steps.jsonl").read_text().splitlines()}
    half_done -= {r["seq"] for r in jobs(run)}
    assert 3 in half_done
    assert build(config) == 0
    assert f"2 accepted, 0 rejected, 0 failed, {len(half_done)} in progress, 1 remaining" in capsys.readouterr().err


def test_a_rebuild_keeps_the_format_and_test_split_of_the_users_last_export(tmp_path, server, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD)
    config = write_config(tmp_path, server.base_url, pool, target=3)
    run = tmp_path / "run"
    assert build(config) == 0
    assert main(["export", str(run), "--format", "sharegpt", "--test-size", "0.25"]) == 0
    for target in (3, 5):  # a re-run with nothing to do, then one that adds samples
        config.write_text(config.read_text().replace("target: 3", f"target: {target}"))
        capsys.readouterr()
        assert build(config) == 0
        loaded = datasets.load_from_disk(str(run / "dataset"))
        assert list(loaded) == ["train", "test"]
        assert sum(len(split) for split in loaded.values()) == target
        assert "conversations" in loaded["train"].column_names
        assert (f"Dataset ({target} samples, as sharegpt, test split 0.25 like its last export): {run / 'dataset'}"
                in capsys.readouterr().out)
    # An export by an earlier version, with a test split of a size it did not record, is left as it is.
    (run / "dataset" / ".longwriter-export.json").unlink()
    before = {p: p.read_bytes() for p in (run / "dataset").rglob("*") if p.is_file()}
    assert build(config) == 0
    assert f"{run / 'dataset'} was left as it is" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in (run / "dataset").rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("folder", ["a user's folder", "a user's file in the export"])
def test_a_build_refuses_before_any_work_when_run_dir_dataset_is_not_its_own(tmp_path, server, capsys, folder):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD[:3])
    config = write_config(tmp_path, server.base_url, pool, target=2)
    run = tmp_path / "run"
    if folder == "a user's folder":
        (run / "dataset").mkdir(parents=True)
    else:
        assert build(config) == 0
        config.write_text(config.read_text().replace("target: 2", "target: 3"))
    (run / "dataset" / "notes.txt").write_text("mine")
    requests = server.stats()["requests"]
    capsys.readouterr()
    assert build(config) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "notes.txt" in err and "export" in err
    assert server.stats()["requests"] == requests  # refused before any request
    assert (run / "dataset" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("broken", [b'{"seq":1,"id":"p0001","status":"accepted","prompt":"\xe6\x96',  # cut mid-UTF-8
                                    b"\x00\xff\x1b[31m"])
def test_a_corrupt_jobs_line_stops_a_build_with_one_error_line(tmp_path, server, capsys, broken):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD[:4])
    config = write_config(tmp_path, server.base_url, pool, target=3)
    assert build(config) == 0
    path = tmp_path / "run" / "jobs.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[1] = broken
    path.write_bytes(b"\n".join(lines))
    capsys.readouterr()
    assert build(config) == 2
    err = capsys.readouterr().err.strip().splitlines()  # a line whose head is intact is found by the report pass,
    errors = [line for line in err if not line.startswith("Resuming ")]  # after "Resuming ..."
    assert len(errors) == 1 and "jobs.jsonl:2: corrupt record" in errors[0], err


def _screen(stream: str) -> list[str]:
    """The lines a terminal shows for `stream`: a carriage return goes back to the line's start and overwrites."""
    lines, line, column = [], [], 0
    for char in stream:
        if char == "\n":
            lines.append("".join(line).rstrip())
            line, column = [], 0
        elif char == "\r":
            column = 0
        else:
            line[column:column + 1] = [char]
            column += 1
    return [*lines, "".join(line).rstrip()]


def test_the_ctrl_c_message_gets_its_own_line_beside_the_progress_bar(tmp_path, server):
    import signal
    import subprocess
    import sys

    pool = write_pool(tmp_path / "pool.jsonl", GOOD)
    config = write_config(tmp_path, server.base_url, pool, target=5)
    proc = subprocess.Popen([sys.executable, "-m", "longwriter_data", "build", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server.arm(proc.pid, 3, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    shown = _screen(err)
    assert any(line.startswith("accepted:") for line in shown), err  # the bar was drawn
    stopping = [line for line in shown if "Stopping: no new jobs" in line]
    assert len(stopping) == 1 and stopping[0].startswith("Stopping: no new jobs"), shown
    assert any(line.startswith("Interrupted: everything finished so far is saved") for line in shown), shown


def test_on_engine_done_sees_this_runs_summary_before_the_report_and_the_export(tmp_path, server):
    """The seam scripts/bench_engine.py measures through: called once, when the engine has stopped."""
    from longwriter_data.build import build as run_build

    config = write_config(tmp_path, server.base_url, write_pool(tmp_path / "pool.jsonl", GOOD), target=3)
    run = tmp_path / "run"
    seen = []

    def engine_done(summary) -> None:
        seen.append((summary.accepted >= 3, (run / "report.json").exists(), (run / "dataset").exists()))

    assert run_build(config, progress=False, on_engine_done=engine_done) == 0
    assert seen == [(True, False, False)]
    assert (run / "report.json").exists() and (run / "dataset").exists()


def test_report_json_and_config_json_keep_their_keys_and_the_summary_prints_the_report(tmp_path, server, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", [f"Write a 1200-word essay about subject {i}." for i in range(4)])
    config = write_config(tmp_path, server.base_url, pool, target=2, filters={"min_words": 1000})
    assert build(config) == 0
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    assert list(report) == ["jobs", "status", "reasons", "skipped_instructions"]
    accepted = report["status"]["accepted"]  # jobs in flight when the target was met finish too
    assert report["status"] == {"accepted": accepted, "rejected": 0, "failed": 0} and report["jobs"] == accepted >= 2
    assert list(json.loads((run / "config.json").read_text())) == ["format", "config", "pool_fingerprints"]
    out = capsys.readouterr().out
    assert f"status    reason  count\naccepted        {accepted}\ntotal           {accepted}\n" in out
