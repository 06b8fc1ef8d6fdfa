"""Instruction synthesis: a small pool grown with the backend, deduplicated, stored in the run directory, resumable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from longwriter_data.backends.base import request_key
from longwriter_data.cli import main
from longwriter_data.config import BuildConfig, load_config
from longwriter_data.pools.instructions import PreparedPools
from longwriter_data.pools.synthesis import Synthesis, SynthesisSettings, parse_instructions
from longwriter_data.records import SynthesisRecord
from longwriter_data.testing.fake_server import FakeServerProcess
from tests.conftest import jobs, write_config, write_pool

POOL = [
    {"prompt": "Write a 2400-word essay on how river deltas form, shift and disappear, for curious adults.",
     "type": "Popular Science"},
    {"prompt": "Write a 2400-word short story about a night-shift baker who finds a letter baked into a loaf.",
     "type": "Literature and Creative Writing"},
    {"prompt": "Write a 2400-word guide to planning a community garden on a vacant city lot, step by step.",
     "type": "Functional Writing"},
]


def build(config: Path) -> int:
    return main(["build", "--config", str(config), "--no-progress"])


def synthesizing(folder: Path, base_url: str, pool: list = POOL, target: int = 1, filters: dict | None = None,
                 **synthesize) -> Path:
    """A recipe in `folder` with a small pool and `pools.synthesize` (12 wanted unless `count` says otherwise)."""
    folder.mkdir(exist_ok=True)
    path = write_pool(folder / "pool.jsonl", pool)
    return write_config(folder, base_url, path, target=target, filters=filters or {},
                        pools={"sources": [{"path": str(path)}], "synthesize": {"count": 12, **synthesize}})


def stored(run_dir: Path) -> list[dict]:
    path = run_dir / "synthesized.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def kept(config: Path) -> list[tuple[str, str]]:
    """The synthesized instructions a run directory yields, as the build derives them (no request is sent)."""
    recipe = load_config(config)
    with PreparedPools(recipe.pools) as pools:
        return [(record["id"], record["prompt"]) for record in Synthesis.of(recipe, pools).kept]


def key_of(config: Path, k: int) -> str:
    """The request key of synthesis request k, as the recipe makes it now."""
    recipe = load_config(config)
    with PreparedPools(recipe.pools) as pools:
        return request_key(Synthesis(SynthesisSettings.of(recipe), pools, count=0).request(k)[0])


def test_a_small_pool_is_grown_and_the_build_reaches_its_target_with_synthesized_instructions(tmp_path, server,
                                                                                                capsys):
    config = synthesizing(tmp_path, server.base_url, target=10, per_request=5)
    assert build(config) == 0
    run_dir = tmp_path / "run"
    records = stored(run_dir)
    assert sorted(r["k"] for r in records) == [0, 1, 2]  # 15 written for 12 wanted: no fourth request
    assert {r["k"]: r["type"] for r in records} == {0: "Literature and Creative Writing", 1: "Academic and Monograph",
                                                     2: "Popular Science"}
    assert all(len(r["instructions"]) == 5 and r["lang"] == "en" and r["prompt_tokens"] > 0 for r in records)
    accepted = [r for r in jobs(run_dir) if r["status"] == "accepted"]
    assert len(accepted) >= 10
    assert sum(r["pool"] == "synthesized" for r in accepted) >= 7  # the pool itself has only 3
    assert all(r["id"].startswith("synthesized:") for r in accepted if r["pool"] == "synthesized")
    report = json.loads((run_dir / "report.json").read_text())["synthesis"]
    assert {key: report[key] for key in ("requests", "new_requests", "written", "kept", "dropped")} == {
        "requests": 3, "new_requests": 3, "written": 15, "kept": 12, "dropped": {"beyond_count": 3}}
    err = capsys.readouterr().err
    assert ("Synthesized instructions: 12 kept of 15 written (3 beyond the count), 3 requests (3 new this run)."
            in err)
    assert server.stats()["synthesis"] == 3
    assert main(["pools", "--config", str(config)]) == 0
    preview = capsys.readouterr().out
    assert "Including 12 synthesized instructions from" in preview and "synthesized  " in preview


def test_a_rerun_reuses_the_stored_instructions_without_a_synthesis_request(tmp_path, server, capsys):
    config = synthesizing(tmp_path, server.base_url, target=2, per_request=5)
    assert build(config) == 0
    run_dir = tmp_path / "run"
    before = (run_dir / "synthesized.jsonl").read_bytes()
    server.reset()
    config.write_text(config.read_text().replace("target: 2", "target: 6"))
    capsys.readouterr()
    assert build(config) == 0
    assert server.stats()["synthesis"] == 0
    assert (run_dir / "synthesized.jsonl").read_bytes() == before
    assert "3 requests (0 new this run)" in capsys.readouterr().err
    assert sum(r["status"] == "accepted" for r in jobs(run_dir)) >= 6

    recipe = yaml.safe_load(config.read_text())  # what is synthesized belongs to the recipe's generative part
    recipe["pools"]["synthesize"]["count"] = 20
    config.write_text(yaml.safe_dump(recipe))
    assert build(config) == 2
    assert "pools.synthesize.count: 12 -> 20" in capsys.readouterr().err


def test_duplicates_of_the_pool_and_among_answers_and_other_languages_are_dropped_and_counted(tmp_path, server,
                                                                                              capsys):
    pool = [{**record, "prompt": record["prompt"] + " [[dupes]] [[otherlang]]"} for record in POOL]
    config = synthesizing(tmp_path, server.base_url, pool=pool, count=4, per_request=6, examples=1,
                          filters={"near_duplicate_threshold": 0.8})
    assert build(config) == 0
    # Each answer: 2 new requests, the example verbatim and with a word added, the first new request again, the
    # second with a word added, and one in Chinese. The second answer's first two complete the count.
    report = json.loads((tmp_path / "run" / "report.json").read_text())["synthesis"]
    assert (report["requests"], report["written"], report["kept"]) == (2, 14, 4)
    assert report["dropped"] == {"exact_duplicate": 2, "near_duplicate": 2, "language": 1, "beyond_count": 5}
    assert ("4 kept of 14 written (4 duplicates, 1 other language, 5 beyond the count), 2 requests"
            in capsys.readouterr().err)
    prompts = [prompt for _, prompt in kept(config)]
    assert len(set(prompts)) == 4 and not any("[[dupes]]" in p or "Thanks" in p for p in prompts)


@pytest.fixture(scope="module")
def reference(fake_server, tmp_path_factory) -> list[tuple[str, str]]:
    """The instructions an uninterrupted synthesis keeps (12 wanted, 2 a request): what every resume must match."""
    config = synthesizing(tmp_path_factory.mktemp("reference"), fake_server.base_url, per_request=2)
    fake_server.reset()
    assert build(config) == 0
    assert fake_server.stats()["synthesis"] == 6
    return kept(config)


def test_a_resumed_synthesis_sends_only_missing_requests_and_keeps_the_same_instructions(tmp_path, reference,
                                                                                          server):
    config = synthesizing(tmp_path, server.base_url, per_request=2)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # The first request answered, the sixth torn while it was being written.
    first = json.dumps({"k": 0, "lang": "en", "type": "Literature and Creative Writing",
                        "instructions": [prompt for _, prompt in reference[:2]], "key": key_of(config, 0)})
    (run_dir / "synthesized.jsonl").write_text(first + "\n" + '{"k": 5, "lang": "e')
    assert build(config) == 0
    assert server.stats()["synthesis"] == 5
    assert sorted(r["k"] for r in stored(run_dir)) == [0, 1, 2, 3, 4, 5]
    assert kept(config) == reference


@pytest.fixture(scope="module")
def slow_server():
    with FakeServerProcess(latency=0.1) as server:
        yield server


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGKILL, -signal.SIGKILL)])
def test_an_interrupted_synthesis_resumes_to_the_same_instructions(tmp_path, reference, slow_server, signum, status):
    config = synthesizing(tmp_path, slow_server.base_url, per_request=2)
    run = [sys.executable, "-m", "longwriter_data", "build", "--config", str(config), "--no-progress"]
    proc = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    slow_server.arm(proc.pid, 5, signum)  # 4 requests at once, then the fifth once the first is answered
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    run_dir = tmp_path / "run"
    answered = len(stored(run_dir))
    assert answered >= 1 and jobs(run_dir) == []  # stopped before any job, each finished request on disk
    slow_server.reset()
    resumed = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert slow_server.stats()["synthesis"] == 6 - answered
    assert kept(config) == reference


@pytest.mark.parametrize("setting, value", [("temperature", 0.5), ("model", "other")])
def test_a_forced_resume_after_a_changed_synthesis_setting_asks_every_request_again(tmp_path, reference,
                                                                                    slow_server, setting, value):
    config = synthesizing(tmp_path, slow_server.base_url, per_request=2)
    run = [sys.executable, "-m", "longwriter_data", "build", "--config", str(config), "--no-progress"]
    proc = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    slow_server.arm(proc.pid, 5, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    run_dir = tmp_path / "run"
    answered = stored(run_dir)
    assert answered
    recipe = yaml.safe_load(config.read_text())
    recipe["pools"]["synthesize"][setting] = value
    config.write_text(yaml.safe_dump(recipe))
    slow_server.reset()
    resumed = subprocess.run(run + ["--force"], capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert slow_server.stats()["synthesis"] == 6  # the answers stored under the old setting replayed none
    assert {r["k"] for r in answered} <= {r["k"] for r in stored(run_dir)[len(answered):]}
    assert kept(config) == reference  # the fake server answers a prompt alike whatever the setting


@pytest.mark.parametrize(
    "answer, instructions",
    [
        ('{"instructions": ["Write a novel.", "Write a report."]}', ["Write a novel.", "Write a report."]),
        ('["Write a novel.", "Write a report."]', ["Write a novel.", "Write a report."]),
        ('Sure! Here they are:\n```json\n{"instructions": ["Write a novel."]}\n```\nEnjoy.', ["Write a novel."]),
        ("Here are two requests:\n\n1. Write a novel.\n2) **Write a report.**\n", ["Write a novel.", "Write a report."]),
        ('- "Write a novel."\n* Write a report.\nThat is all.', ["Write a novel.", "Write a report."]),
        ("1、写一部小说。\n（2）写一篇报告。", ["写一部小说。", "写一篇报告。"]),
        ('Use [[brackets]] freely:\n1. Write a 3,000-word [draft] essay.', ["Write a 3,000-word [draft] essay."]),
        ('{"instructions": []}\n1. Write a novel.', ["Write a novel."]),
        ("I'm not sure what you mean.", []),
    ],
)
def test_answers_are_parsed_as_json_embedded_json_or_numbered_lines(answer, instructions):
    assert parse_instructions(answer) == instructions


def test_requests_take_languages_and_types_in_turn_with_examples_of_their_language(tmp_path):
    pool = write_pool(tmp_path / "pool.jsonl", [
        *({"prompt": f"Write a 3000-word story number {i}.", "type": "Literature and Creative Writing"}
          for i in range(4)),
        *({"prompt": f"写一篇3000字的小说，第{i}篇。", "type": "Literature and Creative Writing"} for i in range(4)),
        {"prompt": "写一篇3000字的科普文章。", "type": "Popular Science"},
    ])
    config = BuildConfig.model_validate({
        "name": "t", "run_dir": str(tmp_path / "run"), "target": 1,
        "pools": {"sources": [{"path": str(pool)}], "languages": ["en", "zh"],
                  "synthesize": {"count": 5, "examples": 2, "types": ["Literature and Creative Writing",
                                                                      "Popular Science"]}}})
    with PreparedPools(config.pools) as pools:
        synthesis = Synthesis.of(config, pools)
        asked = [synthesis.request(k) for k in range(5)]
        again = synthesis.request(3)
    assert [(lang, kind[:3]) for _, lang, kind in asked] == [("en", "Lit"), ("zh", "Lit"), ("en", "Pop"),
                                                             ("zh", "Pop"), ("en", "Lit")]
    assert again[0] == asked[3][0]  # deterministic
    for request, lang, kind in asked:
        assert request.json_schema["properties"]["instructions"]["maxItems"] == 10
        assert f'"{kind}"' in request.prompt or f"“{kind}”" in request.prompt
        shown = [line for line in request.prompt.splitlines() if line[:3] in ("1. ", "2. ")]
        assert len(shown) == 2 and all(("写" in line) == (lang == "zh") for line in shown)
    assert "Popular Science" in asked[3][0].prompt and "写一篇3000字的科普文章。" in asked[3][0].prompt  # same type
    assert "写一篇3000字的小说" in asked[3][0].prompt  # too few of the type: the language's others fill in


def test_a_bad_synthesize_key_names_file_line_and_key(tmp_path, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", ["Write a long essay about rivers."])
    config = tmp_path / "config.yaml"
    run_dir = tmp_path / "run"
    config.write_text(f"name: t\nrun_dir: {run_dir}\ntarget: 1\npools:\n  sources: [{{path: {pool}}}]\n"
                      "  synthesize:\n    count: 5\n    per_requets: 3\n", encoding="utf-8")
    assert build(config) == 2
    assert "config.yaml:8: pools.synthesize.per_requets: unknown key" in capsys.readouterr().err
    config.write_text(config.read_text().replace("per_requets: 3", "languages: [fr]"), encoding="utf-8")
    assert build(config) == 2
    assert "config.yaml:8: pools.synthesize.languages[0]: Input should be 'en' or 'zh'" in capsys.readouterr().err
    assert not run_dir.exists()


def test_a_synthesis_that_stopped_dry_stays_stopped_whatever_is_stored_after(tmp_path):
    """Requests cancelled at the stop may still land in the file: a re-run must not keep their instructions,
    or the synthesized pool, and with it the draw order, would change under finished jobs."""
    from longwriter_data.pools.synthesis import DRY_STREAK, _Keeper

    pool = write_pool(tmp_path / "pool.jsonl", POOL)
    config = BuildConfig.model_validate({"name": "t", "run_dir": str(tmp_path / "run"), "target": 1,
                                         "pools": {"sources": [{"path": str(pool)}], "synthesize": {"count": 5}}})
    with PreparedPools(config.pools) as pools:
        keeper = _Keeper(pools, count=5, threshold=None, minhashes=None)
        for k in range(DRY_STREAK):
            keeper.offer(SynthesisRecord(k=k, lang="en", type="News Report", instructions=[]))
        assert keeper.done
        keeper.offer(SynthesisRecord(k=DRY_STREAK, lang="en", type="News Report",
                                     instructions=["Write a 3000-word report on the new tram line and what it "
                                                   "changed."]))
    assert keeper.done and keeper.kept == [] and keeper.dropped == {"after_stop": 1}


def test_count_auto_makes_up_what_the_sources_lack_and_stays_fixed_for_the_run(tmp_path, server, capsys):
    config = synthesizing(tmp_path, server.base_url, target=8, count="auto", acceptance=1.0, per_request=5)
    assert build(config) == 0
    run_dir = tmp_path / "run"
    assert server.stats()["synthesis"] == 1  # 8 jobs wanted, 3 in the pool: 5 to write, 5 a request
    assert json.loads((run_dir / "config.json").read_text())["synthesize_count"] == 5
    assert json.loads((run_dir / "report.json").read_text())["synthesis"]["wanted"] == 5
    assert sum(r["status"] == "accepted" for r in jobs(run_dir)) == 8
    # A higher target later does not change the instructions under the finished jobs: the count stays.
    server.reset()
    config.write_text(config.read_text().replace("target: 8", "target: 12"))
    capsys.readouterr()
    assert build(config) == 0
    assert server.stats()["synthesis"] == 0
    assert "The pools ran dry before the target of 12." in capsys.readouterr().out
    assert json.loads((run_dir / "config.json").read_text())["synthesize_count"] == 5


def test_count_auto_writes_nothing_when_the_sources_hold_enough(tmp_path, server, capsys):
    config = synthesizing(tmp_path, server.base_url, target=2, count="auto", acceptance=1.0)
    assert build(config) == 0
    assert server.stats()["synthesis"] == 0
    assert "Synthesized instructions: none needed" in capsys.readouterr().err
    assert not (tmp_path / "run" / "synthesized.jsonl").exists()


def test_with_the_hub_source_unreachable_synthesis_fills_the_rest_and_the_build_reaches_its_target(tmp_path, server):
    """The 6k recipe's shape offline: seeds, WildChat from the Hub (unreachable here), synthesis count: auto."""
    pool = write_pool(tmp_path / "pool.jsonl", POOL)
    config = write_config(tmp_path, server.base_url, pool, target=7, pools={
        "sources": [{"path": str(pool)},
                    {"hf": "allenai/WildChat-1M", "messages_field": "conversation", "fields": {"lang": "language"}}],
        "synthesize": {"acceptance": 1.0, "per_request": 5}})
    run = [sys.executable, "-m", "longwriter_data", "build", "--config", str(config), "--no-progress"]
    done = subprocess.run(run, capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert "Warning: pool hf:allenai/WildChat-1M: cannot open the dataset" in done.stderr
    assert "Synthesized instructions: 4 kept of 5 written (1 beyond the count)" in done.stderr
    accepted = [r for r in jobs(tmp_path / "run") if r["status"] == "accepted"]
    assert len(accepted) == 7 and sum(r["pool"] == "synthesized" for r in accepted) == 4


def test_the_progress_bar_counts_the_cost_of_synthesis_requests_and_of_the_jobs(tmp_path, server, capsys):
    """One status tracker sees every answered request: at a dollar a token, the bar's final cost is the tokens of
    synthesized.jsonl and steps.jsonl together (the pools run dry, so no job is cancelled with paid steps)."""
    config = synthesizing(tmp_path, server.base_url, target=100, count=5, per_request=5)
    recipe = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**recipe, "prices": {"input": 1_000_000, "output": 1_000_000}}))
    assert main(["build", "--config", str(config)]) == 0
    shown = capsys.readouterr().err.rsplit("cost=$", 1)[1].split()[0].rstrip("]")
    run_dir = tmp_path / "run"
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    paid = sum(r["prompt_tokens"] + r["completion_tokens"] for r in stored(run_dir) + steps)
    assert len(stored(run_dir)) == 1 and len(steps) > 8
    assert shown == f"{paid:,.2f}"


def test_inspect_and_the_card_count_what_synthesis_paid_in_the_total_and_show_it_apart(tmp_path, server, capsys):
    """At a dollar a token, inspect's and the card's tokens and cost are those of synthesized.jsonl and steps.jsonl
    together, with synthesis's share on a line of its own; the estimate is set beside the jobs' spending only (it
    predicts jobs, and `estimate` prices synthesis apart)."""
    config = synthesizing(tmp_path, server.base_url, target=4, count=5, per_request=5)
    recipe = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**recipe, "prices": {"input": 1_000_000, "output": 1_000_000}}))
    assert build(config) == 0
    run_dir = tmp_path / "run"
    synthesized = stored(run_dir)
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    synth_in, synth_out = (sum(r[name] for r in synthesized) for name in ("prompt_tokens", "completion_tokens"))
    total_in = synth_in + sum(r["prompt_tokens"] for r in steps)
    total_out = synth_out + sum(r["completion_tokens"] for r in steps)
    assert len(synthesized) == 1 and synth_in and synth_out
    shares = (f"Tokens: {total_in:,} input (0 cached), {total_out:,} output, {len(steps) + 1} requests",
              f"Of them, instruction synthesis: {synth_in:,} input (0 cached), {synth_out:,} output, 1 request.",
              f"Cost: ${total_in + total_out:,.2f}", f"of which ${synth_in + synth_out:,.2f} for instruction synthesis")
    capsys.readouterr()
    assert main(["inspect", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert all(share in out for share in shares), out
    spent = next(line for line in out.splitlines() if line.strip().startswith("requests")).split()[2]
    assert int(spent.replace(",", "")) == len(steps)  # the jobs' requests: synthesis's is not a job's
    assert "instruction synthesis's 1 request not included" in out

    assert main(["export", str(run_dir)]) == 0
    usage = json.loads((run_dir / "dataset" / "recipe.json").read_text())["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["requests"]) == (total_in, total_out,
                                                                                        len(steps) + 1)
    assert usage["synthesis"] == {"requests": 1, "prompt_tokens": synth_in, "completion_tokens": synth_out,
                                  "cached_tokens": 0, "reasoning_tokens": 0}
    card = (run_dir / "dataset" / "README.md").read_text(encoding="utf-8")
    assert all(share in card for share in shares)
    capsys.readouterr()
    assert main(["inspect", str(run_dir / "dataset")]) == 0
    out = capsys.readouterr().out
    assert all(share in out for share in shares), out


def test_a_reasoning_models_synthesis_counts_every_paid_answer_with_its_reasoning_tokens(tmp_path, server, capsys):
    config = synthesizing(tmp_path, server.base_url, target=2, count=4, per_request=4)
    recipe = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**recipe, "backend": {**recipe["backend"], "model": "openai/o4-mini"}}))
    assert build(config) == 0
    run_dir = tmp_path / "run"
    [line] = stored(run_dir)
    assert line["requests"] == line["attempts"] == 1 and line["reasoning_tokens"] > 0
    assert line["completion_tokens"] > line["reasoning_tokens"]  # reasoning is billed as output, within it
    report = json.loads((run_dir / "report.json").read_text())["synthesis"]
    assert (report["paid_requests"], report["reasoning_tokens"]) == (1, line["reasoning_tokens"])
    capsys.readouterr()
    assert main(["inspect", str(run_dir)]) == 0
    assert (f"Of them, instruction synthesis: {line['prompt_tokens']:,} input (0 cached), "
            f"{line['completion_tokens']:,} output ({line['reasoning_tokens']:,} reasoning), 1 request."
            in capsys.readouterr().out)


@pytest.mark.parametrize("line", ['{"lang": "en", "type": "News Report", "instructions": []}',
                                  '{"k": "1", "lang": "en", "type": "News Report", "instructions": []}',
                                  '{"k": 1, "lang": "en", "type": "News Report", "instructions": "Write..."}',
                                  '["not", "an", "object"]'])
def test_a_corrupt_synthesis_line_is_named_by_file_and_line_and_nothing_is_written(tmp_path, server, line, capsys):
    config = synthesizing(tmp_path, server.base_url, target=2, count=3)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = run_dir / "synthesized.jsonl"
    path.write_text(line + "\n")
    assert build(config) == 2
    assert f"{path}:1: corrupt record" in capsys.readouterr().err
    assert sorted(p.name for p in run_dir.iterdir()) == ["lock", "synthesized.jsonl"]
    assert path.read_text() == line + "\n" and server.stats()["requests"] == 0
