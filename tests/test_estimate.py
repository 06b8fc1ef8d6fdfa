"""`estimate` predicts tokens within 15% of what a fake-server build really used, and prints a cost."""

from __future__ import annotations

import pytest

from longwriter_data.cli import main
from longwriter_data.config import load_config
from longwriter_data.estimate import estimate
from tests.conftest import jobs, write_config, write_pool

PROMPTS = [f"Write a {words}-word report on harbour number {i}." for i, words in enumerate((2400, 3200, 4000, 6000))]
PROMPTS += ["请写一篇3000字的文章，介绍黄河的历史。", "请写一篇4800字的报告，分析城市交通。"]


def test_estimate_is_within_15_percent_of_the_tokens_a_build_used(tmp_path, server):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
    config_path = write_config(tmp_path, server.base_url, pool, target=len(PROMPTS), filters={"min_words": 0},
                               prices={"input": 2.5, "cached_input": 1.25, "output": 10.0})
    predicted = estimate(load_config(config_path), acceptance=1.0, paragraph_words=400)
    assert main(["build", "--config", str(config_path), "--no-progress"]) == 0
    records = jobs(tmp_path / "run")
    assert len(records) == len(PROMPTS) and all(r["status"] == "accepted" for r in records)
    used_in = sum(r["usage"]["prompt_tokens"] for r in records)
    used_out = sum(r["usage"]["completion_tokens"] for r in records)
    assert predicted.requests == sum(r["usage"]["requests"] for r in records)
    assert predicted.input_tokens == pytest.approx(used_in, rel=0.15)
    assert predicted.output_tokens == pytest.approx(used_out, rel=0.15)
    assert 0.5 < predicted.cached_tokens / predicted.input_tokens < 1


def test_estimate_command_prints_cost_with_and_without_prefix_caching(tmp_path, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
    config_path = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=4,
                               prices={"input": 2.5, "cached_input": 1.25, "output": 10.0},
                               engine={"requests_per_minute": 1})
    assert main(["estimate", "--config", str(config_path), "--acceptance", "0.8"]) == 0
    out = capsys.readouterr().out
    assert "-> 5 jobs" in out and "without prefix caching" in out and "$" in out
    assert "bound by engine.requests_per_minute" in out
    assert main(["estimate", "--config", str(config_path), "--acceptance", "1.5"]) == 2
    assert not (tmp_path / "run").exists()


def test_inspect_sets_the_estimate_beside_what_the_run_spent(tmp_path, server, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
    config_path = write_config(tmp_path, server.base_url, pool, target=len(PROMPTS), filters={"min_words": 0},
                               prices={"input": 2.5, "cached_input": 1.25, "output": 10.0},
                               generation={"paragraph_word_range": [300, 500]})
    assert main(["build", "--config", str(config_path), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert f"Estimate vs spent, for the {len(PROMPTS)} finished jobs:" in out
    rows = {line.split()[0]: line for line in out.splitlines()[out.splitlines().index(
        next(l for l in out.splitlines() if l.startswith("Estimate vs spent"))) + 2:] if line.strip()}
    for name in ("requests", "input", "output"):
        change = rows[name].split()[-1]
        assert abs(int(change.rstrip("%"))) <= 15, rows[name]
    assert "$" in rows["cost"]


def test_estimate_says_when_the_pools_hold_fewer_instructions_than_the_target_needs(tmp_path, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
    config_path = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=10, engine={"max_jobs": 4})
    assert main(["estimate", "--config", str(config_path), "--acceptance", "0.8"]) == 0
    out = capsys.readouterr().out
    assert "-> 6 jobs (the pools run dry before the 13 wanted)" in out
    assert "instructions                 6   drawn from " in out
    assert ("Warning: the pools hold 6 instructions, not the 13 the target needs: about 4 accepted samples, 6 short "
            "of 10." in out)
    wall = next(line for line in out.splitlines() if "wall time" in line)
    assert wall.endswith("(bound by engine.max_jobs = 4)")  # said once, with its setting


def test_estimate_names_one_bound_and_the_others_once_each_and_counts_in_the_right_number(tmp_path, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS[:1])
    config_path = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=1, engine={"requests_per_minute": 1})
    assert main(["estimate", "--config", str(config_path), "--acceptance", "1"]) == 0
    out = capsys.readouterr().out
    assert "-> 1 job\n" in out and "1 jobs" not in out
    wall = next(line for line in out.splitlines() if "wall time" in line)
    assert "(bound by engine.requests_per_minute = 1; max_jobs alone " in wall and wall.count("max_jobs") == 1


def test_fewer_jobs_than_max_jobs_take_the_time_of_one_and_a_recipe_without_prices_says_so_once(tmp_path, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS[:3])
    config_path = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=3, engine={"max_jobs": 256})
    assert main(["estimate", "--config", str(config_path), "--acceptance", "1"]) == 0
    out = capsys.readouterr().out
    wall = next(line for line in out.splitlines() if "wall time" in line)
    assert wall.endswith("(all 3 jobs at once)") and "max_jobs" not in wall
    one_job = estimate(load_config(config_path), acceptance=1).job_seconds / 3
    assert f"{one_job / 60:.1f} min" in wall  # the time of a job, not 3/256 of it
    cost = next(line for line in out.splitlines() if line.lstrip().startswith("cost"))
    assert cost.split() == ["cost", "n/a", "(add", "prices:", "to", "the", "recipe)"]


def test_estimate_prices_the_instructions_synthesis_will_write_and_the_synthesis_itself(tmp_path, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
    config_path = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=10,
                               prices={"input": 2.5, "output": 10.0},
                               pools={"sources": [{"path": str(pool)}], "synthesize": {"acceptance": 1.0}})
    assert main(["estimate", "--config", str(config_path), "--acceptance", "1"]) == 0
    out = capsys.readouterr().out
    assert "-> 10 jobs\n" in out and "Warning" not in out
    assert "(4 still to be synthesized)" in out and "synthesized 4" in out
    assert "synthesis       1 request or more before the first job (" in out
    assert ", plus $0.0" in out  # its cost, beside the jobs' own
    assert not (tmp_path / "run").exists()


def test_estimate_help_shows_each_default_and_its_meaning(capsys):
    with pytest.raises(SystemExit):
        main(["estimate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("share of jobs expected to pass the filters", "(default: 0.85)", "(default: 5000)",
                     "(default: 50.0)", "default: the middle of generation.paragraph_word_range"):
        assert expected in text


def test_estimate_counts_one_judge_call_per_job_when_the_recipe_judges(tmp_path, server):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
    config_path = write_config(tmp_path, server.base_url, pool, target=len(PROMPTS), filters={"min_words": 0},
                               quality={"judge": {"min_score": None}})
    config = load_config(config_path)
    predicted = estimate(config, acceptance=1.0, paragraph_words=400)
    without = estimate(config.model_copy(update={"quality": config.quality.model_copy(update={"judge": None})}),
                       acceptance=1.0, paragraph_words=400)
    assert predicted.requests == without.requests + len(PROMPTS)
    assert main(["build", "--config", str(config_path), "--no-progress"]) == 0
    records = jobs(tmp_path / "run")
    assert all(r["status"] == "accepted" and "quality_score" in r for r in records)
    assert predicted.requests == sum(r["usage"]["requests"] for r in records)
    assert predicted.input_tokens == pytest.approx(sum(r["usage"]["prompt_tokens"] for r in records), rel=0.15)
    assert predicted.output_tokens == pytest.approx(sum(r["usage"]["completion_tokens"] for r in records), rel=0.15)


def test_estimate_warns_that_reasoning_tokens_are_not_predicted(tmp_path, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", ["Write a 3000-word essay about rivers."])
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=1, backend={"model": "o3"})
    assert main(["estimate", "--config", str(config)]) == 0
    assert "reasoning tokens" in capsys.readouterr().out


@pytest.mark.parametrize("backend, noted", [
    ({"model": "o3"}, True), ({"model": "gpt-4o", "plan_model": "gpt-5-mini"}, True), ({"model": "gpt-4o"}, False),
    ({"kind": "local", "model": "o4-mini"}, True), ({"kind": "local", "model": "smollm2"}, False),
])
def test_estimate_notes_hidden_reasoning_tokens_when_the_backend_kind_says_a_model_reasons(tmp_path, capsys, backend,
                                                                                          noted):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
    config_path = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=2, backend=backend)
    if backend.get("kind") == "local":  # keys the local kind does not take
        config_path.write_text("\n".join(line for line in config_path.read_text().splitlines()
                                         if not line.strip().startswith(("base_url:", "api_key_env:"))) + "\n")
    assert main(["estimate", "--config", str(config_path)]) == 0
    assert ("reasoning models also bill hidden reasoning tokens" in capsys.readouterr().out) is noted
