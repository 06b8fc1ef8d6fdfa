"""The run directory's store: job heads read without parsing whole records, when a run is complete."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(
    "status, target, complete",
    [
        ({0: "accepted", 1: "accepted"}, 2, True),
        ({0: "accepted"}, 2, False),
        ({0: "accepted", 2: "accepted"}, 2, False),  # job 1 was in flight when the run died: it may displace job 2
        ({0: "accepted", 1: "rejected", 2: "accepted", 5: "accepted"}, 2, True),  # later jobs do not matter
        ({1: "accepted", 2: "accepted", 3: "failed"}, 2, False),
    ],
)
def test_a_run_is_complete_only_when_no_earlier_job_can_change_the_dataset(status, target, complete):
    from longwriter_data.records import JobKey
    from longwriter_data.store import RunState

    assert RunState(status={JobKey(seq): s for seq, s in status.items()}).complete(target) is complete


@pytest.mark.parametrize(
    "status, complete",
    [
        ({(0, 0): "accepted", (0, 1): "accepted"}, True),
        ({(0, 0): "accepted", (1, 0): "accepted"}, False),  # sample 1 of instruction 0 may still displace (1, 0)
        ({(0, 0): "rejected", (0, 1): "accepted", (1, 0): "accepted"}, True),
    ],
)
def test_with_samples_per_instruction_the_cutoff_counts_every_sample_before_it(status, complete):
    from longwriter_data.records import JobKey
    from longwriter_data.store import RunState

    state = RunState(status={JobKey(*key): s for key, s in status.items()}, samples=2)
    assert state.complete(2) is complete


def test_job_heads_read_key_status_and_minhash_at_the_head_of_records_the_store_wrote(tmp_path):
    import asyncio

    from longwriter_data.records import JobKey, JobRecord
    from longwriter_data.store import RunStore, job_heads, read_jobs

    store = RunStore(tmp_path)
    store.open_logs()
    records = [
        JobRecord(paragraphs=["x" * 100], status="accepted", minhash="AAAA", seq=0, sample=0, id="a"),
        JobRecord(id='b"q', seq=1, sample=0, status="rejected", reason="too_short"),
        JobRecord(seq=1, sample=1, id="c", status="accepted", paragraphs=['"minhash":"fake"'], minhash="BBBB"),
    ]

    async def write() -> None:
        for record in records:
            await store.append_job(record)

    asyncio.run(write())
    store.close()
    lines = (tmp_path / "jobs.jsonl").read_bytes().splitlines()
    assert all(line.startswith(b'{"seq":') for line in lines)  # the head the resume scan matches
    assert list(job_heads(tmp_path / "jobs.jsonl")) == [(JobKey(0, 0), "accepted", "AAAA"),
                                                        (JobKey(1, 0), "rejected", None),
                                                        (JobKey(1, 1), "accepted", "BBBB")]
    assert list(read_jobs(tmp_path / "jobs.jsonl")) == records


def test_a_job_record_writes_its_head_first_and_leaves_out_what_the_job_did_not_write():
    from longwriter_data.quality.length import RequiredLength
    from longwriter_data.records import JobRecord, Usage

    failed = JobRecord(seq=2, sample=1, id="p2", status="failed", reason="plan_failed", prompt="Write.",
                       required=RequiredLength.at_least(3000))
    line = failed.as_record()
    assert list(line)[:6] == ["seq", "sample", "id", "status", "minhash", "reason"]
    assert line["required_length"] == 3000 and line["required"]["kind"] == "at_least"
    assert not {"paragraphs", "plan", "usage", "word_count", "quality_score"} & set(line)
    assert JobRecord.from_record(json.loads(json.dumps(line))) == failed

    written = JobRecord(seq=0, sample=0, id="p0", status="accepted", paragraphs=["a b", "c"], word_count=3,
                        usage=Usage(requests=3, prompt_tokens=10, completion_tokens=5))
    assert written.text == "a b\n\nc"
    assert written.as_record()["usage"]["requests"] == 3
    assert JobRecord.from_record(json.loads(json.dumps(written.as_record()))) == written


def test_step_records_round_trip_with_their_tags_and_carry_their_job_key(tmp_path):
    import asyncio

    from longwriter_data.records import JobKey, StepRecord
    from longwriter_data.store import RunStore

    store = RunStore(tmp_path)
    store.open_logs()
    step = StepRecord(step=4, text="t", finish_reason="stop", key="k", prompt_tokens=3, seconds=1.5,
                      tags={"extends": 2})
    asyncio.run(store.append_step(JobKey(7, 1), step, {"prompt": "p"}))
    store.close()
    state = RunStore(tmp_path).load_state()
    assert state.steps[JobKey(7, 1)][4] == step
    assert state.instructions[JobKey(7, 1)] == {"prompt": "p"}


@pytest.mark.parametrize("line", ['{"seq": 1, "sample": 0, "text": "no step number"}',
                                  '{"seq": "1", "sample": 0, "step": 0, "key": "k", "text": "t"}',
                                  '{"seq": 1, "sample": 0, "step": 0, "text": "no key"}',
                                  '{"seq": 1, "sample": 0, "step": 0, "key": "k", "text": "t", "finish_reason": "stop", '
                                  '"requests": "2"}',
                                  '{"seq": 1, "sample": 0, "step": 0, "key": "k", "text": "t", "finish_reason": "stop", '
                                  '"requests": null}'])
def test_a_corrupt_step_record_is_one_error_naming_the_file(tmp_path, line):
    from longwriter_data.errors import UserError
    from longwriter_data.store import RunStore

    (tmp_path / "steps.jsonl").write_text(line + "\n")
    with pytest.raises(UserError, match="steps.jsonl:1: corrupt step record"):
        RunStore(tmp_path).load_state()


def test_an_older_run_directory_is_refused_in_one_line(tmp_path):
    from longwriter_data.errors import UserError
    from longwriter_data.records import RunSnapshot
    from longwriter_data.store import RUN_FORMAT, RunStore, read_snapshot

    (tmp_path / "config.json").write_text(json.dumps({"config": {}, "pools_fingerprint": "x"}))
    with pytest.raises(UserError, match="earlier development version.*new run_dir"):
        read_snapshot(tmp_path)
    RunStore(tmp_path).save_config(RunSnapshot(recipe={}, format=0))
    assert read_snapshot(tmp_path).format == RUN_FORMAT


def test_config_json_keeps_its_shape_and_reads_back_as_the_snapshot_saved(tmp_path):
    from longwriter_data.records import RunSnapshot
    from longwriter_data.store import RunStore, read_snapshot

    for count in (None, 0, 7):  # synthesize_count: written only where synthesis fixed one, 0 included
        snapshot = RunSnapshot(recipe={"name": "t"}, pool_fingerprints=["a", "b"], synthesize_count=count)
        RunStore(tmp_path).save_config(snapshot)
        written = json.loads((tmp_path / "config.json").read_text())
        assert list(written) == ["format", "config", "pool_fingerprints"] + (["synthesize_count"] if count is not None
                                                                             else [])
        assert read_snapshot(tmp_path) == snapshot


def test_a_format_1_run_directory_whose_step_keys_hashed_only_prompts_is_refused_in_one_line(tmp_path):
    from longwriter_data.errors import UserError
    from longwriter_data.store import read_snapshot

    (tmp_path / "config.json").write_text(json.dumps({"format": 1, "config": {}, "pool_fingerprints": []}))
    with pytest.raises(UserError, match=r"written by format 1; this version reads run-directory format 2 only"):
        read_snapshot(tmp_path)


def test_judgements_are_kept_per_job_not_per_instruction(tmp_path):
    import json

    from longwriter_data.records import JobKey
    from longwriter_data.store import JUDGEMENTS, read_judgements

    lines = [{"seq": 3, "sample": 0, "judge": "a"}, {"seq": 3, "sample": 1, "judge": "a"}, {"seq": 3, "judge": "b"}]
    lines = [{**line, "quality_scores": {}} for line in lines]
    (tmp_path / JUDGEMENTS).write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert set(read_judgements(tmp_path, "a")) == {JobKey(3, 0), JobKey(3, 1)}
    assert set(read_judgements(tmp_path, "b")) == {JobKey(3, 0)}  # a line without a sample is sample 0


def test_a_judgement_round_trips_with_what_it_paid(tmp_path):
    import asyncio

    from longwriter_data.records import JobKey, JudgementRecord, Usage
    from longwriter_data.store import RunStore, judgement_records, read_judgements

    paid = JudgementRecord(seq=2, sample=1, id="p2", judge="o3@ab", quality_score=75.0,
                           quality_scores={"Relevance": 4}, quality_analysis="Fine.", judge_excerpt=False,
                           usage=Usage(1, 900, 100, 300, 120), step_key="k2")
    kept = JudgementRecord(seq=3, sample=0, id="p3", judge="fake@cd", quality_score=50.0,
                           quality_scores={"Relevance": 3}, from_build=True)
    store = RunStore(tmp_path)
    store.open_judgements()

    async def append() -> None:
        for record in (paid, kept):
            await store.append_judgement(record)

    asyncio.run(append())
    store.close()
    records = list(judgement_records(tmp_path))
    assert records == [paid, kept]
    assert records[1].usage is None and records[1].from_build
    assert set(read_judgements(tmp_path, "o3@ab")) == {JobKey(2, 1)}


@pytest.mark.parametrize("line", ['{"seq": 1, "sample": 0, "judge": "a"', '{"seq": "1", "judge": "a"}',
                                  '{"seq": 1, "sample": 0}', '[1, 2]'])
def test_a_corrupt_judgement_line_is_one_error_naming_file_and_line(tmp_path, capsys, line):
    from longwriter_data.cli import main
    from longwriter_data.store import JUDGEMENTS
    from longwriter_data.testing.synthetic_run import SyntheticJob, write_run

    run = write_run(tmp_path / "run", [SyntheticJob(words=2000)])
    good = {"seq": 0, "sample": 0, "id": "p0", "judge": "a", "quality_scores": {}}
    (run / JUDGEMENTS).write_text(json.dumps(good) + "\n" + line + "\n" + json.dumps(good) + "\n")
    assert main(["inspect", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / JUDGEMENTS}:2: corrupt" in err and err.count("\n") == 1, err


def test_a_damaged_quality_json_is_one_error_naming_it(tmp_path, capsys):
    from longwriter_data.cli import main
    from longwriter_data.store import ACTIVE_JUDGE
    from longwriter_data.testing.synthetic_run import SyntheticJob, write_run

    run = write_run(tmp_path / "run", [SyntheticJob(words=2000)])
    (run / ACTIVE_JUDGE).write_text('{"judge": ')
    assert main(["inspect", str(run)]) == 2
    err = capsys.readouterr().err
    assert str(run / ACTIVE_JUDGE) in err and err.count("\n") == 1, err


def test_a_record_cache_reads_whole_records_and_cuts_a_torn_one_only_when_it_appends(tmp_path):
    from longwriter_data.store import RecordCache

    path = tmp_path / "cache.bin"
    cache = RecordCache(path, 4)
    assert cache.read() == b""
    cache.close()
    assert not path.exists()  # nothing appended, nothing created
    path.write_bytes(b"aaaabbbbcc")  # two records and a torn third
    cache = RecordCache(path, 4)
    assert cache.read() == b"aaaabbbb"
    assert path.read_bytes() == b"aaaabbbbcc"  # reading changes nothing
    cache.append(b"dddd")
    cache.close()
    assert path.read_bytes() == b"aaaabbbbdddd"


def _edit_first_line(path, **changes) -> None:
    record = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    record.update(changes)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, separators=(",", ":")) + "\n")


@pytest.mark.parametrize("file, changes", [
    ("jobs.jsonl", {"usage": [1]}),  # a value of the wrong type inside a well-formed line
    ("jobs.jsonl", {"paragraphs": 5}),
    ("jobs.jsonl", {"word_count": "many"}),
    ("steps.jsonl", {"prompt_tokens": "x"}),
    ("judgements.jsonl", {"quality_scores": None}),  # a judgement without its scores
])
def test_a_record_with_a_field_of_the_wrong_type_is_one_error_naming_file_and_line(tmp_path, capsys, file, changes):
    from longwriter_data.cli import main
    from longwriter_data.testing.synthetic_run import SyntheticJob, write_run

    run = write_run(tmp_path / "run", [SyntheticJob(words=2000)])
    if file == "steps.jsonl":
        (run / file).write_text(json.dumps({"seq": 5, "sample": 0, "step": 0, "text": "t", "finish_reason": "stop",
                                            "key": "k"}) + "\n")
    if file == "judgements.jsonl":
        (run / file).write_text(json.dumps({"seq": 0, "sample": 0, "id": "p0", "judge": "a",
                                            "quality_scores": {}}) + "\n")
    lines = len((run / file).read_text().splitlines())
    _edit_first_line(run / file, **changes)
    assert main(["inspect", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / file}:{lines + 1}: corrupt" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("changes", [{"pool_fingerprints": 5}, {"synthesize_count": "x"}])
def test_a_config_json_with_a_field_of_the_wrong_type_is_one_damaged_snapshot_error(tmp_path, changes):
    from longwriter_data.errors import UserError
    from longwriter_data.store import read_snapshot

    (tmp_path / "config.json").write_text(json.dumps({"format": 2, "config": {}, "pool_fingerprints": [], **changes}))
    with pytest.raises(UserError, match=r"config.json: damaged run snapshot"):
        read_snapshot(tmp_path)


@pytest.mark.parametrize("written, message", [
    ('"2"', 'damaged run snapshot ("format": "2" is no format number)'),
    ("null", 'damaged run snapshot ("format": null is no format number)'),
    ("true", 'damaged run snapshot ("format": true is no format number)'),
    ("3", "written by a newer version (run-directory format 3; this one reads format 2): use that version"),
])
def test_a_format_that_is_no_number_or_a_newer_one_is_named_for_what_it_is(tmp_path, written, message):
    from longwriter_data.errors import UserError
    from longwriter_data.store import read_snapshot

    (tmp_path / "config.json").write_text('{"format": %s, "config": {}}' % written)
    with pytest.raises(UserError) as raised:
        read_snapshot(tmp_path)
    assert message in str(raised.value)
