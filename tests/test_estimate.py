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
    assert "bound by requests_per_minute" in out
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


def test_estimate_warns_that_reasoning_tokens_are_not_predicted(tmp_path, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", ["Write a 3000-word essay about rivers."])
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=1, backend={"model": "o3"})
    assert main(["estimate", "--config", str(config)]) == 0
    assert "reasoning tokens" in capsys.readouterr().out
