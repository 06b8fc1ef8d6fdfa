"""Several samples per instruction (generation.samples_per_instruction): built, resumed, judged and exported as
jobs of their own, keyed by (seq, sample), against the fake server's [[vary]] directive (temperature sampling)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import datasets
import pytest
import yaml

from longwriter_data.cli import main
from longwriter_data.config import config_drift, load_config
from longwriter_data.estimate import estimate
from longwriter_data.testing.fake_server import FakeServerProcess
from tests.conftest import jobs, write_config, write_pool
from tests.test_resume import recorded_keys, run_build

# Distinct topics, so the near-duplicate check (on here) could only match a sample with its sibling.
TOPICS = ["the bridges of Paris and the river below them", "coral reefs in warming tropical seas",
          "why medieval craft guilds mattered to towns", "learning the violin as a grown adult"]


def build(config: Path, *extra: str) -> int:
    return main(["build", "--config", str(config), "--no-progress", *extra])


def pool_of(path: Path, prompts: list[str]) -> Path:
    """Records with ids p7, p8, ...: the ids the export derives sample ids from."""
    return write_pool(path, [{"id": f"p{7 + i}", "prompt": prompt} for i, prompt in enumerate(prompts)])


def two_sample_config(tmp_path: Path, base_url: str, prompts: list[str], **overrides) -> Path:
    pool = pool_of(tmp_path / "pool.jsonl", prompts)
    settings = {"target": 2 * len(prompts), "generation": {"samples_per_instruction": 2},
                "filters": {"min_words": 1000, "near_duplicate_threshold": 0.8}}
    return write_config(tmp_path, base_url, pool, **{**settings, **overrides})


def exported_ids(run_dir: Path) -> list[str]:
    return datasets.load_from_disk(str(run_dir / "dataset"))["train"]["id"]


def test_samples_per_instruction_defaults_to_one_and_is_read_into_the_engine(tmp_path):
    from longwriter_data.generate.engine import EngineSettings

    pool = pool_of(tmp_path / "pool.jsonl", ["Write a long essay about rivers."])
    assert EngineSettings.of(load_config(write_config(tmp_path, "http://127.0.0.1:9/v1", pool))).samples == 1
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, generation={"samples_per_instruction": 3})
    assert EngineSettings.of(load_config(config)).samples == 3


@pytest.mark.parametrize("value, message", [
    (0, "greater than or equal to 1"),
    (17, "less than or equal to 16"),
    ("two", "valid integer"),
    (True, "valid integer"),
    (1.5, "valid integer"),
])
def test_a_bad_samples_per_instruction_is_one_line_naming_file_line_and_key(tmp_path, capsys, value, message):
    pool = pool_of(tmp_path / "pool.jsonl", ["Write a long essay about rivers."])
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, generation={"samples_per_instruction": value})
    line = next(n for n, text in enumerate(config.read_text().splitlines(), 1) if "samples_per_instruction" in text)
    assert build(config) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: {config}:{line}: generation.samples_per_instruction: ") and message in err, err
    assert not (tmp_path / "run").exists()


def test_changing_samples_per_instruction_on_a_run_is_recipe_drift(tmp_path, server, capsys):
    config = two_sample_config(tmp_path, server.base_url, [f"Write a 1200-word essay about {TOPICS[0]}. [[vary]]"])
    before = load_config(config).generative_view()
    assert build(config) == 0
    recipe = yaml.safe_load(config.read_text())
    recipe["generation"]["samples_per_instruction"] = 3
    config.write_text(yaml.safe_dump(recipe))
    assert config_drift(before, load_config(config).generative_view()) == ["generation.samples_per_instruction: 2 -> 3"]
    requests = server.stats()["requests"]
    capsys.readouterr()
    assert build(config) == 2
    err = capsys.readouterr().err
    assert "generation.samples_per_instruction: 2 -> 3" in err
    assert server.stats()["requests"] == requests


def test_estimate_counts_every_sample_of_each_instruction_as_a_job(tmp_path):
    prompts = [f"Write a 2400-word report on harbour number {i}." for i in range(8)]
    pool = pool_of(tmp_path / "pool.jsonl", prompts)
    one = estimate(load_config(write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=4)), acceptance=1.0)
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=4, generation={"samples_per_instruction": 2})
    two = estimate(load_config(config), acceptance=1.0)
    assert (one.jobs, two.jobs) == (4, 4)
    assert sum(two.sources.values()) == 2  # two instructions, two jobs each
    assert two.requests == pytest.approx(one.requests, rel=0.01)  # the same jobs' worth of requests
    # Five jobs wanted: three instructions drawn, their six jobs estimated (the draw cannot be split).
    five = estimate(load_config(config), acceptance=0.8)
    assert (five.wanted_jobs, five.jobs, sum(five.sources.values())) == (5, 6, 3)


def test_vary_answers_a_repeated_prompt_with_the_next_variant_and_the_same_again_after_reset(tmp_path, server):
    """The n-th request of a [[vary]] prompt gets the n-th variant: the second sample of an instruction differs
    from the first (temperature sampling); the same order of requests gives the same texts."""
    from openai import OpenAI

    client = OpenAI(base_url=server.base_url, api_key="none", max_retries=0)
    prompt = ("Writing instruction:\n\nWrite a 1200-word essay about rivers. {}\n\nWriting steps:\n\nParagraph 1 - "
              "Main Point: rivers - Word Count: 300 words\n\nAlready written text:\n\n\n\nPlease continue writing "
              "Paragraph 1 - Main Point: rivers - Word Count: 300 words")

    def texts(directive: str) -> list[str]:
        asked = prompt.format(directive)
        return [client.chat.completions.create(model="fake", messages=[{"role": "user", "content": asked}])
                .choices[0].message.content for _ in range(3)]

    varied = texts("[[vary]]")
    assert len(set(varied)) == 3 and {len(t.split()) for t in varied} == {300}
    plain = texts("")
    assert len(set(plain)) == 1  # without the directive, one answer however often it is asked
    server.reset()
    assert texts("[[vary]]") == varied


def test_two_samples_per_instruction_are_built_exported_inspected_and_judged_each_once(tmp_path, server, capsys):
    prompts = [f"Write a 1200-word essay about {topic}. [[vary]]" for topic in TOPICS[:3]]
    config = two_sample_config(tmp_path, server.base_url, prompts)
    run = tmp_path / "run"
    assert build(config) == 0
    records = jobs(run)
    assert sorted((r["seq"], r["sample"], r["status"]) for r in records) == \
        sorted((seq, sample, "accepted") for seq in range(3) for sample in (0, 1))
    by_key = {(r["seq"], r["sample"]): r for r in records}
    for seq in range(3):
        assert by_key[seq, 0]["paragraphs"] != by_key[seq, 1]["paragraphs"]
    assert sorted(exported_ids(run)) == ["p7", "p7#1", "p8", "p8#1", "p9", "p9#1"]

    # Paid once per job: the plan and first paragraph prompts are each sent once per sample, nothing else twice.
    stats = server.stats(keys=True)
    assert stats["requests"] == sum(r["usage"]["requests"] for r in records) == 6 * (1 + 3)
    assert sorted(stats["per_prompt"].values()).count(2) == 3 * 2 and max(stats["per_prompt"].values()) == 2

    capsys.readouterr()
    assert main(["inspect", str(run)]) == 0
    assert "6 jobs finished (6 accepted, 0 rejected, 0 failed)" in capsys.readouterr().out

    assert main(["judge", str(run), "--model", "judge"]) == 0
    judged = [json.loads(line) for line in (run / "judgements.jsonl").read_text().splitlines()]
    assert sorted((line["seq"], line["sample"]) for line in judged) == sorted(by_key)
    assert server.stats()["requests"] == stats["requests"] + 6
    assert main(["judge", str(run), "--model", "judge"]) == 0  # every sample scored already: nothing paid
    assert server.stats()["requests"] == stats["requests"] + 6

    before = len(jobs(run))
    assert build(config) == 0  # a no-op re-run
    assert len(jobs(run)) == before and server.stats()["requests"] == stats["requests"] + 6
    assert "no jobs to run in this run" in capsys.readouterr().out


def test_a_second_sample_rejected_as_a_copy_of_the_first_leaves_one_row_and_the_target_met_by_others(tmp_path, server):
    """Without [[vary]] both samples of an instruction are the same text (a model at temperature 0): one is
    rejected as a near-duplicate output and the target is made up from later instructions."""
    prompts = [f"Write a 1200-word essay about {TOPICS[0]}.", *(f"Write a 1200-word essay about {topic}. [[vary]]"
                                                               for topic in TOPICS[1:])]
    config = two_sample_config(tmp_path, server.base_url, prompts, target=4, engine={"max_jobs": 1})
    run = tmp_path / "run"
    assert build(config) == 0
    by_key = {(r["seq"], r["sample"]): r for r in jobs(run)}
    plain = next(seq for seq, _ in by_key if "[[vary]]" not in by_key[seq, 0]["prompt"])
    statuses = sorted((by_key[plain, s]["status"], by_key[plain, s]["reason"]) for s in (0, 1))
    assert statuses == [("accepted", None), ("rejected", "near_duplicate_output")]
    assert sum(r["status"] == "accepted" for r in by_key.values()) >= 4  # one more may finish as the target is met
    ids = exported_ids(run)
    assert len(ids) == 4
    assert sum(i.split("#")[0] == by_key[plain, 0]["id"] for i in ids) == 1
    report = json.loads((run / "report.json").read_text())
    assert report["reasons"]["rejected"] == {"near_duplicate_output": 1}


@pytest.fixture(scope="module")
def slow_server():
    with FakeServerProcess(latency=0.02) as server:
        yield server


# 10 instructions of two samples, every fourth one's too short: the target needs more jobs than it keeps.
VARIED = [f"Write a 1200-word essay about subject {i}. [[vary]]{' [[short]]' if i % 4 == 3 else ''}" for i in range(10)]


def test_a_killed_two_sample_run_resumes_to_the_rows_of_an_uninterrupted_one(tmp_path, slow_server):
    def config_in(name: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        return two_sample_config(folder, slow_server.base_url, VARIED, target=12, engine={"max_jobs": 4},
                                 filters={"min_words": 1000})

    def rows(run_dir: Path) -> list[tuple]:
        """The dataset's rows by id and length: texts of [[vary]] depend on the order requests arrive in."""
        train = datasets.load_from_disk(str(run_dir / "dataset"))["train"]
        return sorted(zip(train["id"], train["word_count"]))

    slow_server.reset()
    reference = config_in("reference")
    done = run_build(reference)
    assert done.wait(timeout=120) == 0, done.stderr.read()
    expected = rows(reference.parent / "run")
    assert len(expected) == 12 and sum("#1" in i for i, _ in expected) == 6

    slow_server.reset()
    config = config_in("killed")
    run_dir = config.parent / "run"
    for after in (3, 14, 17):  # requests since the previous kill: during the first plans, mid-run, later
        killed = run_build(config)
        slow_server.arm(killed.pid, after, signal.SIGKILL)
        assert killed.wait(timeout=120) == -signal.SIGKILL
    assert recorded_keys(run_dir), "the last kill should find steps on disk"
    proc = run_build(config)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Resuming" in err

    assert rows(run_dir) == expected
    records = jobs(run_dir)
    keys = [(r["seq"], r["sample"]) for r in records]
    assert len(keys) == len(set(keys))  # each job finished once
    assert {r["sample"] for r in records} == {0, 1}
    # A step on disk at a kill was replayed, not asked again (that would store it twice); only requests in flight at
    # a kill repeat. The two samples' shared prompts (plan, first paragraph) are sent twice, as they should be.
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines() if line.endswith("}")]
    stored = [(s["seq"], s["sample"], s["step"], s.get("judge")) for s in steps]
    assert len(stored) == len(set(stored)) and {s["sample"] for s in steps} == {0, 1}
    per_prompt = slow_server.stats(keys=True)["per_prompt"]
    assert sum(max(0, n - 2) for n in per_prompt.values()) <= 3 * 4  # at most max_jobs in flight per kill

    assert main(["judge", str(run_dir), "--model", "judge"]) == 0
    judged = {(line["seq"], line["sample"]) for line in map(json.loads, (run_dir / "judgements.jsonl").open())}
    assert judged == {key for key, r in zip(keys, records) if r["status"] == "accepted"}


def test_estimate_warns_in_instructions_when_two_samples_each_still_fall_short(tmp_path, capsys):
    pool = pool_of(tmp_path / "pool.jsonl", [f"Write a 2400-word report on harbour number {i}." for i in range(3)])
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=10, generation={"samples_per_instruction": 2})
    assert main(["estimate", "--config", str(config), "--acceptance", "0.8"]) == 0
    out = capsys.readouterr().out
    assert "-> 6 jobs (the pools run dry before the 13 wanted)" in out
    assert ("Warning: the pools hold 3 instructions, not the 7 the target needs (2 samples each): about 4 accepted "
            "samples, 6 short of 10." in out)


def test_synthesis_count_auto_makes_up_instructions_not_jobs(tmp_path):
    """Eight samples at two per instruction need four instructions: the pool's three and one synthesized."""
    from longwriter_data.pools.instructions import PreparedPools
    from longwriter_data.pools.synthesis import synthesis_count
    from tests.test_synthesis import synthesizing

    def count(samples: int) -> int:
        config = synthesizing(tmp_path / str(samples), "http://127.0.0.1:9/v1", target=8, count="auto",
                              acceptance=1.0)
        config.write_text(config.read_text() + f"generation: {{samples_per_instruction: {samples}}}\n")
        recipe = load_config(config)
        with PreparedPools(recipe.pools) as pools:
            return synthesis_count(recipe, pools)

    assert (count(1), count(2)) == (5, 1)


def test_the_pools_preview_counts_samples_of_each_instruction_toward_the_target(tmp_path, capsys):
    pool = pool_of(tmp_path / "pool.jsonl", [f"Write a 2400-word report on harbour number {i}." for i in range(3)])
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=5)
    assert main(["pools", "--config", str(config)]) == 0
    assert "would give about 2 accepted samples at 85% acceptance, short of the target of 5" in capsys.readouterr().out
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=5, generation={"samples_per_instruction": 2})
    assert main(["pools", "--config", str(config)]) == 0
    assert "Warning" not in capsys.readouterr().out  # six jobs: about five accepted
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=9, generation={"samples_per_instruction": 2})
    assert main(["pools", "--config", str(config)]) == 0
    assert ("Warning: the pools' 3 instructions (2 samples each) would give about 5 accepted samples at 85% "
            "acceptance, short of the target of 9" in capsys.readouterr().out)
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, target=5, generation={"samples_per_instruction": 2},
                          pools={"sources": [{"path": str(pool)}], "synthesize": {"acceptance": 1.0}})
    assert main(["pools", "--config", str(config)]) == 0
    assert "nothing to write: the sources hold the 3 instructions that target" in capsys.readouterr().out
