"""The OpenAI-compatible backend: reasoning models' parameters and usage, and bounds on what a server returns."""

from __future__ import annotations

import json

import pytest

from longwriter_data.quality.answer_checks import answer_problem
from longwriter_data.backends.openai_http import Completion, reasoning_model
from longwriter_data.cli import main
from tests.conftest import jobs, write_config, write_pool

GOOD = ["Write a 1200-word essay about rivers.", "Write a 1200-word essay about bridges."]


@pytest.mark.parametrize("model, expected", [
    ("o1", True), ("o3-mini", True), ("o4-mini-2025-04-16", True), ("gpt-5", True), ("gpt-5-mini", True),
    ("gpt-5.1", True), ("openai/o3", True), ("GPT-5-nano", True),
    ("gpt-4o", False), ("gpt-4.1-mini", False), ("fake", False), ("llama-3-o1", False), ("omni-7b", False),
])
def test_reasoning_models_are_told_by_name(model, expected):
    assert reasoning_model(model) is expected


def _steps(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]


def test_a_reasoning_model_builds_and_its_reasoning_tokens_are_paid_for(tmp_path, server, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD)
    # The fake server refuses max_tokens and temperature 0.7 for o-series names, as OpenAI does.
    config = write_config(tmp_path, server.base_url, pool, target=2, backend={"model": "openai/o4-mini"},
                          filters={"min_words": 1000}, prices={"input": 0.0, "output": 1_000_000.0})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    records = jobs(tmp_path / "run")
    assert [r["status"] for r in records] == ["accepted", "accepted"]
    steps = _steps(tmp_path / "run")
    reasoning = sum(s["reasoning_tokens"] for s in steps)
    assert all(s["reasoning_tokens"] > 0 for s in steps)
    assert sum(r["usage"]["reasoning_tokens"] for r in records) == reasoning
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    output = sum(s["completion_tokens"] for s in steps)  # reasoning included, as OpenAI bills it
    assert f"{output:,} output ({reasoning:,} reasoning)" in out, out
    assert f"Cost: ${output:,.2f}" in out, out  # $1 per output token: the cost is the output count
    assert f"{reasoning:,} reasoning tokens" in out  # beside estimate's prediction, which has none


@pytest.mark.parametrize("backend, setting", [
    ({"model": "gpt-5", "token_param": "max_tokens"}, "backend.token_param: max_completion_tokens"),
    ({"model": "o3", "send_temperature": True}, "backend.send_temperature: false"),
])
def test_a_refused_parameter_stops_the_build_naming_the_setting_to_change(tmp_path, server, capsys, backend,
                                                                          setting):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD)
    config = write_config(tmp_path, server.base_url, pool, target=2, backend=backend)
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert setting in err and f"'{backend['model']}'" in err, err
    assert jobs(tmp_path / "run") == []
    config = write_config(tmp_path, server.base_url, pool, target=2, backend={"model": backend["model"]},
                          filters={"min_words": 1000})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0  # with the setting on auto


def test_a_non_reasoning_model_can_be_sent_max_completion_tokens_and_no_temperature(tmp_path, server):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD[:1])
    config = write_config(tmp_path, server.base_url, pool, target=1, filters={"min_words": 1000},
                          backend={"token_param": "max_completion_tokens", "send_temperature": False})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    assert [r["status"] for r in jobs(tmp_path / "run")] == ["accepted"]


@pytest.mark.parametrize("directive", ["[[huge]]", "[[gzipbomb]]"])
def test_an_oversized_or_gzip_bomb_answer_is_a_bad_answer_and_is_not_read_whole(tmp_path, server, directive):
    bad = f"Write a 1200-word essay about storms. {directive}"
    pool = write_pool(tmp_path / "pool.jsonl", [bad, *GOOD])
    config = write_config(tmp_path, server.base_url, pool, target=2, filters={"min_words": 1000},
                          generation={"step_attempts": 2})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    by_prompt = {r["prompt"]: r for r in jobs(tmp_path / "run")}
    assert (by_prompt[bad]["status"], by_prompt[bad]["reason"]) == ("failed", "plan_failed")
    assert "larger than" in by_prompt[bad]["detail"] and "after 2 attempts" in by_prompt[bad]["detail"]
    assert [by_prompt[p]["status"] for p in GOOD] == ["accepted", "accepted"]


def test_a_reasoning_models_cut_off_answer_says_which_limit_to_raise():
    cut = Completion(text="", finish_reason="length", completion_tokens=4096, reasoning_tokens=4000)
    assert "4000 reasoning tokens" in answer_problem(cut) and "paragraph_max_tokens" in answer_problem(cut)
    assert answer_problem(Completion(text="Half a sent", finish_reason="length")) == "cut off (finish_reason=length)"
