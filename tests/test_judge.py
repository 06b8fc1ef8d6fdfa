"""The quality judge: prompt, answer parsing, S_q, long answers; a build that judges end to end over HTTP against
the fake server; the `judge` command on a finished run; kill -9 during judging."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import yaml

from longwriter_data.cli import main
from longwriter_data.prompts import template
from longwriter_data.quality.judge import (DIMENSIONS, BadAnswer, build_prompt, judge_key, parse_answer,
                                           quality_problem, quality_score)
from longwriter_data.quality.length import approx_tokens
from longwriter_data.publish.stats import scan_run
from longwriter_data.testing.fake_server import FakeServerProcess
from tests.conftest import dead_url, jobs, write_config, write_pool

ALL_FOURS = {dim: 4 for dim in DIMENSIONS}
GOOD_JSON = json.dumps({"analysis": "Solid.", "scores": ALL_FOURS})


@pytest.mark.parametrize("text", [
    GOOD_JSON,
    f"Here is my review:\n```json\n{GOOD_JSON}\n```\nThanks!",
    f"Sure. {GOOD_JSON} Let me know if you need more.",
    json.dumps({"Analysis": "Solid.", **ALL_FOURS}),  # flat, no "scores" object
    json.dumps({"analysis": "x", "scores": {"relevance": 4, "accuracy": "4", "coherence": 4.0, "clarity": "4/5",
                                            "breadth_and_depth": 4, "Reading experience": 4}}),
])
def test_answers_in_every_usual_shape_give_the_six_scores(text):
    judgement = parse_answer(text)
    assert judgement.scores == ALL_FOURS
    assert judgement.score == 75.0


@pytest.mark.parametrize("text, problem", [
    ("I think it is pretty good, 4 out of 5.", "no JSON object"),
    (json.dumps({"analysis": "x", "scores": {d: 4 for d in DIMENSIONS if d != "Clarity"}}), "no score for Clarity"),
    (json.dumps({"scores": {**ALL_FOURS, "Accuracy": 6}}), "Accuracy: 6 is not a score"),
    (json.dumps({"scores": {**ALL_FOURS, "Accuracy": 0}}), "Accuracy: 0 is not a score"),
    (json.dumps({"scores": {**ALL_FOURS, "Accuracy": 3.5}}), "Accuracy: 3.5 is not a score"),
    (json.dumps({"scores": {**ALL_FOURS, "Accuracy": True}}), "Accuracy: True is not a score"),
    (json.dumps({"scores": {**ALL_FOURS, "Accuracy": None}}), "Accuracy: None is not a score"),
])
def test_a_missing_or_out_of_range_score_is_a_bad_answer_never_a_default(text, problem):
    with pytest.raises(BadAnswer, match=problem):
        parse_answer(text)


@pytest.mark.parametrize("scores, expected", [
    ({d: 5 for d in DIMENSIONS}, 100.0),
    ({d: 1 for d in DIMENSIONS}, 0.0),
    ({**{d: 3 for d in DIMENSIONS}, "Relevance": 5}, 58.33),  # the mean of 100 and five 50s
])
def test_s_q_is_the_mean_of_score_minus_one_times_25(scores, expected):
    assert quality_score(scores) == expected


def test_the_bar_names_the_score_or_the_dimension_that_falls_short():
    judgement = parse_answer(json.dumps({"scores": {**ALL_FOURS, "Relevance": 2}}))
    assert quality_problem(judgement, 70, {}) == "S_q 66.7 < 70"
    assert quality_problem(judgement, 60, {"Relevance": 3}) == "Relevance 2 < 3"
    assert quality_problem(judgement, None, {}) is None


def test_the_prompt_holds_the_instruction_and_whole_answer_when_it_fits():
    prompt = build_prompt(template("judge_en"), "Write about tides.", "The sea rises twice a day.", 64000)
    assert not prompt.excerpt
    assert "Write about tides." in prompt.text and "The sea rises twice a day." in prompt.text
    assert "$" not in prompt.text and "left out" not in prompt.text
    for dim in DIMENSIONS:
        assert dim in prompt.text
    assert "length" in prompt.text.lower()  # told not to judge length


def test_placeholders_inside_the_instruction_or_answer_are_left_as_they_are():
    prompt = build_prompt("A: $INST$\nB: $RESPONSE$", "Explain $RESPONSE$ markers.", "Use $INST$ here.", None)
    assert prompt.text == "A: Explain $RESPONSE$ markers.\nB: Use $INST$ here."


def test_a_long_answer_is_judged_by_its_beginning_and_end_with_the_gap_announced():
    # letters only: a word as LongBench-Write counts it (digits would make "w12" no word at all)
    words = ["w" + "".join("abcdefghij"[int(d)] for d in str(i)) for i in range(40000)]
    answer = " ".join(words)
    prompt = build_prompt(template("judge_en"), "Write about tides.", answer, 8000)
    assert prompt.excerpt
    assert approx_tokens(prompt.text) <= 8000 + 50
    assert prompt.text.count("wa wb wc") == 1 and "wdjjjj" in prompt.text and "wcaaaa " not in prompt.text
    left_out = int(re.search(r"\[\.\.\. ([\d,]+) words left out", prompt.text).group(1).replace(",", ""))
    shown = set(prompt.text.split()) & set(words)
    assert 30000 < left_out < 40000 and "only its beginning and its end are shown" in prompt.text
    assert len(shown) + left_out == len(words)  # every word is shown or counted as left out, none cut in two


def test_the_judge_key_changes_with_model_and_template():
    text = template("judge_en")
    assert judge_key("a", text) != judge_key("b", text)
    assert judge_key("a", text) != judge_key("a", text + " ")
    assert judge_key("a", text).startswith("a@")
    settings = {"temperature": 0.0, "max_tokens": 1024}
    assert judge_key("a", text, settings) != judge_key("a", text, {**settings, "temperature": 0.5})


# ---- end to end over HTTP ----------------------------------------------------------------------------------------

GOOD = [f"Write a 2400-word essay about {topic}." for topic in ("volcanoes", "glaciers", "lighthouses", "orchards")]
OFF_TOPIC = "Write a 2400-word essay about submarines. [[offtopic]]"
LOOPING = "Write a 2400-word essay about bicycles. [[repeat]]"
LENIENT = {"max_repeated_ngram_ratio": 1, "max_paragraph_repetition": 1, "max_duplicate_paragraph_ratio": 1,
           "min_words": 1000}  # the loop must reach the judge: the cheap repetition filters are off here


def judged_config(tmp_path: Path, server_url: str, prompts: list[str], target: int, **judge) -> Path:
    pool = write_pool(tmp_path / "pool.jsonl", prompts)
    return write_config(tmp_path, server_url, pool, target=target, filters=LENIENT,
                        quality={"judge": {"min_score": 60, **judge}})


def test_a_build_judges_rejects_the_bad_keeps_the_good_and_exports_the_scores(tmp_path, server):
    config = judged_config(tmp_path, server.base_url, [GOOD[0], OFF_TOPIC, LOOPING, GOOD[1], GOOD[2]], target=3)
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    records = {r["prompt"]: r for r in jobs(tmp_path / "run")}
    for prompt in (OFF_TOPIC, LOOPING):
        assert (records[prompt]["status"], records[prompt]["reason"]) == ("rejected", "low_quality")
        assert records[prompt]["detail"].startswith("S_q ")
    assert records[LOOPING]["quality_scores"]["Coherence"] == 1
    assert records[OFF_TOPIC]["quality_scores"]["Relevance"] == 1
    for prompt in GOOD[:3]:
        record = records[prompt]
        assert record["status"] == "accepted" and record["quality_score"] >= 60
        assert set(record["quality_scores"]) == set(DIMENSIONS)
        assert record["usage"]["requests"] == len(record["plan"]) + 2  # plan, paragraphs, the judge
    steps = [json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    assert sum(1 for s in steps if s.get("judge")) == 5  # one judge call per sample that passed the cheap filters
    assert server.stats()["repeated"] == 0

    train = datasets.load_from_disk(str(tmp_path / "run" / "dataset"))["train"]
    assert len(train) == 3
    assert all(score >= 60 for score in train["quality_score"])
    assert train["quality_relevance"] == [5, 5, 5] and "quality_breadth_and_depth" in train.column_names

    assert main(["inspect", str(tmp_path / "run")]) == 0
    assert main(["inspect", str(tmp_path / "run" / "dataset")]) == 0
    card = (tmp_path / "run" / "dataset" / "README.md").read_text()
    assert "## Quality" in card and "Reading Experience" in card and "judge_en.txt" in card
    assert "`quality_breadth_and_depth`" in card  # the columns the export has, named where the others are


def test_inspect_shows_the_distribution_dimensions_groups_and_lowest_ids(tmp_path, server, capsys):
    config = judged_config(tmp_path, server.base_url, [GOOD[0], OFF_TOPIC, LOOPING, GOOD[1]], target=2)
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "Quality (S_q" in out and "Breadth and Depth" in out
    lowest = out.split("Lowest S_q:")[1].splitlines()[0]
    assert lowest.lstrip().startswith("p0002")  # the looping sample, scored lowest
    assert "low_quality 2" in out


def test_bad_judge_answers_are_retried_as_the_step_and_fail_the_job_when_they_stay_bad(tmp_path, server):
    flaky = "Write a 2400-word essay about kites. [[judgeflaky]]"
    bad = "Write a 2400-word essay about canals. [[judgebad]]"
    config = judged_config(tmp_path, server.base_url, [flaky, bad], target=2, json_schema=False)
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    records = {r["prompt"]: r for r in jobs(tmp_path / "run")}
    assert records[flaky]["status"] == "accepted" and set(records[flaky]["quality_scores"]) == set(DIMENSIONS)
    steps = [json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    assert [s["attempts"] for s in steps if s.get("judge")] == [2]
    assert (records[bad]["status"], records[bad]["reason"]) == ("failed", "judge_failed")
    assert "Relevance: 7 is not a score" in records[bad]["detail"]


def test_an_unknown_dimension_or_a_template_without_placeholders_is_a_config_error(tmp_path, server, capsys):
    config = judged_config(tmp_path, server.base_url, GOOD[:1], target=1, min_dimension={"Style": 3})
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "quality.judge.min_dimension" in err and "unknown dimension 'Style'" in err
    template = tmp_path / "judge.txt"
    template.write_text("Grade this: $INST$")
    config = judged_config(tmp_path, server.base_url, GOOD[:1], target=1, prompt_file=str(template))
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "quality.judge.prompt_file" in err and "lacks $RESPONSE$" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting, value", [("temperature", 0.5), ("max_tokens", 2048), ("json_schema", False)])
def test_a_judge_asked_with_other_settings_judges_again_and_then_replays_its_own(tmp_path, server, setting, value):
    config = judged_config(tmp_path, server.base_url, GOOD[:2], target=2)
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    before = server.stats()["requests"]
    assert main(["judge", str(run)]) == 0
    assert server.stats()["requests"] == before  # the build's own judge: its scores are kept
    recipe = yaml.safe_load(config.read_text())
    recipe["quality"]["judge"][setting] = value
    config.write_text(yaml.safe_dump(recipe))
    assert main(["build", "--config", str(config), "--no-progress", "--force"]) == 0
    assert server.stats()["requests"] == before  # finished jobs are not redone
    assert main(["judge", str(run)]) == 0
    assert server.stats()["requests"] == before + 2  # another judge: both samples asked again
    assert main(["judge", str(run)]) == 0
    assert server.stats()["requests"] == before + 2  # and its own judgements replayed


def test_the_judge_command_rescores_with_a_second_judge_keeping_both(tmp_path, server, capsys):
    config = judged_config(tmp_path, server.base_url, [GOOD[0], OFF_TOPIC, GOOD[1], GOOD[2]], target=3)
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    before = server.stats()["requests"]
    paid = scan_run(run).usage
    assert main(["judge", str(run), "--model", "second", "--min-score", "80"]) == 0
    assert scan_run(run).usage.requests == paid.requests + 4  # the judge command's calls count in tokens and cost
    assert scan_run(run).usage.prompt_tokens > paid.prompt_tokens
    # The three accepted samples and the one rejected as low_quality, each judged once by the second judge.
    assert server.stats()["requests"] == before + 4
    lines = [json.loads(line) for line in (run / "judgements.jsonl").read_text().splitlines()]
    build_lines = [line for line in lines if line.get("from_build")]  # the build judge's scores, kept aside first
    assert {line["judge"].split("@")[0] for line in build_lines} == {"fake"} and len(build_lines) == 4
    lines = [line for line in lines if not line.get("from_build")]
    assert len(lines) == 4 and {line["judge"].split("@")[0] for line in lines} == {"second"}
    assert all(r["judge"].startswith("fake@") for r in jobs(run)[:4])  # the build's records and scores stay

    def last_status() -> dict[str, str]:
        return {r["prompt"]: r["status"] for r in jobs(run)}

    # A good fake sample scores 79.2: below the second bar of 80, so nothing is accepted any more.
    assert set(last_status().values()) == {"rejected"}
    capsys.readouterr()
    assert main(["judge", str(run), "--model", "second", "--min-score", "80", "--export"]) == 1
    assert "No sample is accepted now: nothing exported" in capsys.readouterr().err
    assert json.loads((run / "report.json").read_text())["status"]["accepted"] == 0

    # The same judge again with a lower bar: nothing left to judge, nothing paid; the good ones come back.
    assert main(["judge", str(run), "--model", "second", "--min-score", "60", "--export"]) == 0
    assert server.stats()["requests"] == before + 4
    assert last_status() == {GOOD[0]: "accepted", OFF_TOPIC: "rejected", GOOD[1]: "accepted", GOOD[2]: "accepted"}
    train = datasets.load_from_disk(str(run / "dataset"))["train"]
    assert len(train) == 3 and set(train["quality_judge"]) == {lines[0]["judge"]}
    capsys.readouterr()
    assert main(["inspect", str(run)]) == 0
    assert lines[0]["judge"] in capsys.readouterr().out


def test_the_judge_command_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["judge", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


@pytest.fixture(scope="module")
def slow_server():
    with FakeServerProcess(latency=0.02) as server:
        yield server


def test_a_kill_during_judging_resumes_without_paying_finished_judge_calls(tmp_path, slow_server):
    prompts = [f"Write a 1200-word essay about harbour number {i}." for i in range(8)]
    pool = write_pool(tmp_path / "pool.jsonl", prompts)
    config = write_config(tmp_path, slow_server.base_url, pool, target=6, engine={"max_jobs": 2},
                          filters={"min_words": 1000}, quality={"judge": {"min_score": 50}})
    run = tmp_path / "run"
    slow_server.reset()
    proc = subprocess.Popen([sys.executable, "-m", "longwriter_data", "build", "--config", str(config),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # 1 plan + 3 paragraphs + 1 judge call per job: the kill lands after several judge calls were stored.
    slow_server.arm(proc.pid, 17, signal.SIGKILL)
    assert proc.wait(timeout=120) == -signal.SIGKILL
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines() if line.endswith("}")]
    judged = {s["key"] for s in steps if s.get("judge")}
    assert judged, "the kill should come after some judge calls were stored"
    served = slow_server.stats(keys=True)["per_request"]
    proc = subprocess.Popen([sys.executable, "-m", "longwriter_data", "build", "--config", str(config),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    after = slow_server.stats(keys=True)["per_request"]
    assert all(after[key] == served[key] >= 1 for key in judged)  # no stored judge call was paid again
    accepted = [r for r in jobs(run) if r["status"] == "accepted"]
    assert len(accepted) >= 6 and all("quality_score" in r for r in accepted)


def test_a_judge_on_its_own_endpoint_gets_the_judge_calls_and_nothing_else(tmp_path, server):
    with FakeServerProcess() as other:
        config = judged_config(tmp_path, server.base_url, GOOD[:2], target=2, model="judge-model",
                               base_url=other.base_url, api_key_env=None)
        assert main(["build", "--config", str(config), "--no-progress"]) == 0
        records = jobs(tmp_path / "run")
        assert other.stats()["requests"] == 2
        assert server.stats()["requests"] == sum(len(r["plan"]) + 1 for r in records)
        assert all(r["judge"].startswith("judge-model@") and r["status"] == "accepted" for r in records)


def test_the_judge_command_applies_per_dimension_minimums_and_names_bad_ones(tmp_path, server, capsys):
    config = judged_config(tmp_path, server.base_url, [GOOD[0], OFF_TOPIC], target=1)
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    assert main(["judge", str(run), "--min-dimension", "Style=3"]) == 2
    assert "--min-dimension: unknown dimension 'Style'" in capsys.readouterr().err
    assert main(["judge", str(run), "--min-dimension", "Relevance"]) == 2
    assert "write it as DIMENSION=N" in capsys.readouterr().err
    before = server.stats()["requests"]
    # The build's own judge: every sample already scored, so nothing is paid; Accuracy 4 < 5 rejects both.
    assert main(["judge", str(run), "--min-dimension", "Accuracy=5"]) == 0
    assert server.stats()["requests"] == before
    last = {r["prompt"]: r for r in jobs(run)}
    assert last[GOOD[0]]["reason"] == "low_quality" and last[GOOD[0]]["detail"] == "Accuracy 4 < 5"


def unjudged_run(tmp_path: Path, server: FakeServerProcess, samples: int) -> tuple[Path, list[str]]:
    """A finished run built without a judge (two jobs at a time), and the `judge` command to run on it."""
    prompts = [f"Write a 1200-word essay about harbour number {i}." for i in range(samples)]
    pool = write_pool(tmp_path / "pool.jsonl", prompts)
    config = write_config(tmp_path, server.base_url, pool, target=samples, engine={"max_jobs": 2},
                          filters={"min_words": 1000})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    server.reset()
    return run, [sys.executable, "-m", "longwriter_data", "judge", str(run), "--min-score", "50"]


def test_a_killed_judge_command_resumes_without_paying_finished_judgements(tmp_path, slow_server):
    run, command = unjudged_run(tmp_path, slow_server, 6)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    slow_server.arm(proc.pid, 4, signal.SIGKILL)
    assert proc.wait(timeout=120) == -signal.SIGKILL
    done = [json.loads(line) for line in (run / "judgements.jsonl").read_text().splitlines() if line.endswith("}")]
    assert 0 < len(done) < 6
    served = slow_server.stats(keys=True)["per_request"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"{6 - len(done)} samples judged now, {len(done)} already judged" in proc.stdout
    after = slow_server.stats(keys=True)["per_request"]
    assert all(after[line["key"]] == served[line["key"]] >= 1 for line in done)
    assert len({json.loads(line)["seq"] for line in (run / "judgements.jsonl").read_text().splitlines()}) == 6


def test_a_dead_judge_endpoint_stops_the_build_in_one_line_and_fails_no_job(tmp_path, server, capsys):
    dead = dead_url()
    config = judged_config(tmp_path, server.base_url, GOOD, target=2, base_url=dead, api_key_env=None)
    assert main(["build", "--config", str(config), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "quality.judge.base_url" in err[0] and dead.split("//")[1] in err[0], err
    assert not [r for r in jobs(tmp_path / "run") if r["status"] == "failed"]  # fixing the URL just works


def test_a_judge_that_changed_statuses_does_not_hide_the_builds_own_scores(tmp_path, server, capsys):
    config = judged_config(tmp_path, server.base_url, GOOD, target=3)
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    assert main(["judge", str(run), "--model", "second", "--min-score", "85"]) == 0  # rejects all: new records
    requests = server.stats()["requests"]
    capsys.readouterr()
    assert main(["judge", str(run)]) == 0  # the build's own judge: its scores are known, nothing is paid again
    assert server.stats()["requests"] == requests
    assert "0 samples judged now" in capsys.readouterr().out
    last = {r["seq"]: r["status"] for r in jobs(run)}
    assert set(last.values()) == {"accepted"}  # its bar (60) applies again


def test_push_refuses_an_export_the_run_has_outgrown(tmp_path, server, capsys):
    config = judged_config(tmp_path, server.base_url, GOOD, target=3)
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    assert main(["judge", str(run), "--model", "second", "--min-score", "85"]) == 0  # statuses change, no export
    capsys.readouterr()
    assert main(["push", str(run), "--repo-id", "me/essays"]) == 2
    err = capsys.readouterr().err
    assert "exported before the run last changed" in err and f"export {run}" in err


def test_an_unset_key_of_the_judges_own_endpoint_is_named_before_anything_is_created(tmp_path, server, capsys,
                                                                                       monkeypatch):
    monkeypatch.delenv("LWD_JUDGE_KEY", raising=False)
    config = judged_config(tmp_path, server.base_url, GOOD, target=1, base_url=server.base_url,
                           api_key_env="LWD_JUDGE_KEY")
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "LWD_JUDGE_KEY" in err and "quality.judge.api_key_env" in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_the_judge_command_on_a_saved_recipe_it_cannot_read_asks_nothing_and_writes_nothing(tmp_path, server,
                                                                                            capsys):
    config = judged_config(tmp_path, server.base_url, [GOOD[0], GOOD[1]], target=2)
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    snapshot = json.loads((run / "config.json").read_text())
    snapshot["config"]["quality"]["judge"]["a_later_setting"] = 1
    (run / "config.json").write_text(json.dumps(snapshot))
    before, files = server.stats()["requests"], sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir())
    capsys.readouterr()
    assert main(["judge", str(run), "--model", "second"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "quality.judge.a_later_setting" in err and str(run / "config.json") in err
    assert server.stats()["requests"] == before
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir()) == files


def test_a_reasoning_judges_thinking_is_paid_for_in_inspects_tokens_and_cost(tmp_path, server, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD[:2])
    config = write_config(tmp_path, server.base_url, pool, target=2, filters={"min_words": 1000},
                          prices={"input": 0.0, "output": 1_000_000.0})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0  # no judge in the recipe
    run = tmp_path / "run"
    before = scan_run(run).usage
    assert before.reasoning_tokens == 0
    assert main(["judge", str(run), "--model", "o3-mini"]) == 0
    after = scan_run(run).usage
    reasoning, output = after.reasoning_tokens, after.completion_tokens
    # The fake's reasoning models think 16 tokens and more per answer, billed as output (completion tokens).
    assert after.requests == before.requests + 2 and reasoning >= 2 * 16
    assert output - before.completion_tokens > reasoning
    capsys.readouterr()
    assert main(["inspect", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"{output:,} output ({reasoning:,} reasoning)" in out, out
    assert f"Cost: ${output:,.2f}" in out, out  # $1 per output token: the judge's thinking is in the cost


def test_ctrl_c_during_the_judge_command_keeps_what_was_in_flight_and_the_next_run_pays_for_none_twice(
        tmp_path, slow_server):
    run, command = unjudged_run(tmp_path, slow_server, 8)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # SIGINT while the 4th judge call is in flight: a worker sends its next call only after its last judgement is
    # fsync'd, so some judgements are on disk by then, and the calls in flight have the grace period to finish.
    slow_server.arm(proc.pid, 4, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Stopping: no new judgements" in err and "everything judged is saved" in err
    done = [json.loads(line) for line in (run / "judgements.jsonl").read_text().splitlines()]
    assert 4 <= len(done) < 8  # every call sent before the stop was stored; no new ones were started
    assert len(done) == slow_server.stats()["requests"]
    assert not (run / "quality.json").exists()  # statuses and the active judge wait for the run that finishes
    served = slow_server.stats(keys=True)["per_request"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"{8 - len(done)} samples judged now, {len(done)} already judged" in proc.stdout
    after = slow_server.stats(keys=True)["per_request"]
    assert all(after[line["key"]] == served[line["key"]] == 1 for line in done)
    assert slow_server.stats()["requests"] == 8  # every sample judged once, over both runs
    assert len({json.loads(line)["seq"] for line in (run / "judgements.jsonl").read_text().splitlines()}) == 8


def test_the_judge_command_keeps_what_only_the_build_reported(tmp_path, server):
    """report.json is rewritten after judging: the instructions the build skipped stay in it."""
    huge = "Write a 1200-word essay about this text: " + "lorem " * 5_000  # over pools.max_prompt_chars
    pool = write_pool(tmp_path / "pool.jsonl", [f"Write a 1200-word essay about harbour {i}." for i in range(2)]
                      + [huge])
    config = write_config(tmp_path, server.base_url, pool, target=2, filters={"min_words": 1000})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "report.json").read_text())["skipped_instructions"] == {"prompt_too_long": 1}
    assert main(["judge", str(run), "--min-score", "50"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["skipped_instructions"] == {"prompt_too_long": 1} and report["status"]["accepted"] == 2


@pytest.mark.parametrize("damage", ["judgements", "quality"])
def test_a_build_on_a_run_with_a_damaged_judgement_file_stops_before_writing_anything(tmp_path, server, capsys,
                                                                                      damage):
    run, _ = unjudged_run(tmp_path, server, 2)
    assert main(["judge", str(run), "--min-score", "50"]) == 0
    path = run / ("judgements.jsonl" if damage == "judgements" else "quality.json")
    path.write_text(path.read_text() + '{"seq": 1, "sample"\n' if damage == "judgements" else '{"judge": ')
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["build", "--config", str(tmp_path / "config.yaml"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err, err
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir() if p.is_file()} == files


def test_scores_a_resumed_build_judged_after_another_judge_was_applied_are_not_paid_for_again(tmp_path, server,
                                                                                                capsys):
    """The build's judge scores jobs a resumed build finishes after `judge --model second` was applied: those scores
    live in the job records, and running the build's judge as a command later replays them instead of paying."""
    config = judged_config(tmp_path, server.base_url, GOOD, target=2)
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    assert main(["judge", str(run), "--model", "second"]) == 0
    config.write_text(config.read_text().replace("target: 2", "target: 4"))
    assert main(["build", "--config", str(config), "--no-progress"]) == 0  # two more jobs, scored by the build
    assert len({r["seq"] for r in jobs(run) if r["judge"].startswith("fake@")}) == 4
    server.reset()
    capsys.readouterr()
    assert main(["judge", str(run)]) == 0  # the build's own judge, as a command
    assert "0 samples judged now, 4 already judged" in capsys.readouterr().out
    assert server.stats()["requests"] == 0


def test_a_judge_template_moved_away_after_the_build_names_the_saved_setting_not_a_flag(tmp_path, server, capsys):
    from longwriter_data.prompts import template

    prompt_file = tmp_path / "judge.txt"
    prompt_file.write_text(template("judge_en"), encoding="utf-8")
    config = judged_config(tmp_path, server.base_url, GOOD[:1], target=1, prompt_file=str(prompt_file))
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    prompt_file.unlink()
    capsys.readouterr()
    assert main(["judge", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'run' / 'config.json'}: quality.judge.prompt_file" in err, err
    assert "--prompt-file" not in err
