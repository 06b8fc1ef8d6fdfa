"""A bad recipe prints one clear message naming the file and the key or line, exits 2, and creates nothing."""

import pytest

from longwriter_data.cli import main

GOOD = """\
name: t
run_dir: {run_dir}
target: 2
backend:
  model: fake
pools:
  - {{path: {pool}, weight: 1.0}}
"""


@pytest.fixture
def pool(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text('{"prompt": "Write a long essay about rivers."}\n', encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda t: t.replace("target: 2", "target: [2"), r"config.yaml:\d+: invalid YAML"),
        (lambda t: t.replace("  model: fake", "  model: fake\n  temprature: 0.5"), r"config.yaml:6: backend.temprature: unknown key"),
        (lambda t: t.replace("target: 2", "target: many"), r"config.yaml:3: target: Input should be a valid integer"),
        (lambda t: t.replace("target: 2", "target: 0"), r"config.yaml:3: target: .*greater than or equal to 1"),
        (lambda t: t.replace("target: 2\n", ""), r"config.yaml: target: required key is missing"),
        (lambda t: t.replace("weight: 1.0", "weight: -1"), r"config.yaml:7: pools\[0\].weight"),
        (lambda t: t + "engine: {max_jobs: 0}\n", r"config.yaml:8: engine.max_jobs"),
        (lambda t: t + "generation: {plan_format: xml}\n", r"config.yaml:8: generation.plan_format"),
        (lambda t: t + "filters: {min_words: 5000, max_words: 100}\n", r"config.yaml:8: filters: min_words must not exceed max_words"),
        (lambda t: t.replace("pool.jsonl", "missing.jsonl"), r"config.yaml:7: pools\[0\].path: pool file .*missing.jsonl does not exist"),
        (lambda t: "- just\n- a list\n", r"config.yaml: the config must be a mapping"),
        (lambda t: t.replace("target: 2", "target: 2\ntarget: 3"), r"config.yaml:4: target: duplicate key \(first on line 3\)"),
        (lambda t: t.replace("  model: fake", "  model: fake\n  model: other"), r"config.yaml:6: backend.model: duplicate key"),
        (lambda t: t + "generation: {paragraph_word_range: [1000, 200]}\n", r"config.yaml:8: generation: paragraph_word_range"),
        (lambda t: t + "generation: {min_paragraphs: 9, max_paragraphs: 3}\n", r"config.yaml:8: generation: min_paragraphs must not exceed max_paragraphs"),
        (lambda t: t + "generation: {paragraph_word_range: [0, 200]}\n", r"config.yaml:8: generation.paragraph_word_range"),
        (lambda t: t + "engine: {retry_base_delay_s: 90, retry_max_delay_s: 60}\n", r"config.yaml:8: engine: retry_base_delay_s must not exceed retry_max_delay_s"),
        (lambda t: t + "pools_x: 1\n", r"config.yaml:8: pools_x: unknown key"),
        (lambda t: t.replace("  model: fake", "  model: fake\n  base_url: http://user:sk-secret@localhost:9/v1"), r"config.yaml:6: backend.base_url: .*credentials"),
        (lambda t: t.replace("  model: fake", "  model: fake\n  base_url: localhost:8000/v1"), r"config.yaml:6: backend.base_url: .*http"),
        (lambda t: t.replace("name: t", "name: ''"), r"config.yaml:1: name"),
        # One settings model per backend kind: an unknown kind, or a key of another kind, is named like any key.
        (lambda t: t.replace("  model: fake", "  model: fake\n  kind: vllm"), r"config.yaml:6: backend.kind: Input should be 'openai' or 'local'\.$"),
        (lambda t: t.replace("  model: fake", "  kind: local\n  model: fake\n  base_url: http://localhost:9/v1"), r"config.yaml:7: backend.base_url: unknown key"),
        (lambda t: t.replace("  model: fake", "  model: fake\n  n_ctx: 4096"), r"config.yaml:6: backend.n_ctx: unknown key"),
        (lambda t: t.replace("  model: fake", "  kind: local\n  n_ctx: 100"), r"config.yaml:6: backend.n_ctx: .*greater than or equal to 512"),
    ],
)
def test_bad_config_names_file_and_key_and_creates_nothing(tmp_path, pool, capsys, mutate, expected):
    run_dir = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text(mutate(GOOD.format(run_dir=run_dir, pool=pool)), encoding="utf-8")
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    import re
    assert re.search(expected, err), err
    assert not run_dir.exists()


def test_missing_config_file_is_a_clear_error(tmp_path, capsys):
    assert main(["build", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: cannot read config" in capsys.readouterr().err


def test_unset_api_key_variable_is_a_clear_error(tmp_path, pool, capsys, monkeypatch):
    monkeypatch.delenv("LWD_TEST_KEY", raising=False)
    config = tmp_path / "config.yaml"
    text = GOOD.format(run_dir=tmp_path / "run", pool=pool).replace("  model: fake", "  model: fake\n  api_key_env: LWD_TEST_KEY")
    config.write_text(text, encoding="utf-8")
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    assert "LWD_TEST_KEY (backend.api_key_env) is not set" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # checked before the run directory is created


@pytest.mark.parametrize("pools, expected", [
    ("{sources: [{path: POOL}], select: {min_prompt_chars: 500, max_prompt_chars: 100}}",
     "config.yaml:6: pools.select: min_prompt_chars must not exceed max_prompt_chars"),
    ("{sources: [{path: POOL}], lang_weights: {en: -1}}", "config.yaml:6: pools.lang_weights.en: "),
])
def test_pool_settings_must_be_consistent(tmp_path, pool, capsys, pools, expected):
    text = GOOD.format(run_dir=tmp_path / "run", pool=pool).split("pools:")[0] + f"pools: {pools.replace('POOL', str(pool))}\n"
    config = tmp_path / "config.yaml"
    config.write_text(text, encoding="utf-8")
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_an_empty_run_dir_is_refused(tmp_path, pool, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(GOOD.format(run_dir="''", pool=pool), encoding="utf-8")
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "config.yaml:2: run_dir:" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "pool.jsonl"]


def test_a_recipe_that_is_not_utf8_names_its_line(tmp_path, pool, capsys):
    config = tmp_path / "config.yaml"
    text = GOOD.format(run_dir=tmp_path / "run", pool=pool).replace("name: t", "name: caf\xe9")
    config.write_bytes(text.encode("latin-1"))
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {config}:1: not UTF-8 text") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_missing_local_model_file_creates_no_run_dir(tmp_path, pool, capsys):
    config = tmp_path / "config.yaml"
    text = GOOD.format(run_dir=tmp_path / "run", pool=pool).replace(
        "  model: fake", "  model: fake\n  kind: local\n  model_path: nowhere.gguf")
    config.write_text(text, encoding="utf-8")
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    assert "nowhere.gguf" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_paths_in_a_recipe_are_relative_to_its_folder(tmp_path, capsys, monkeypatch):
    from longwriter_data.config import load_config

    folder = tmp_path.resolve() / "recipes"
    (folder / "pools").mkdir(parents=True)
    (folder / "pools" / "p.jsonl").write_text('{"prompt": "Write a long essay about rivers."}\n', encoding="utf-8")
    (folder / "m.gguf").write_bytes(b"GGUF")
    (folder / "saved").mkdir()
    (folder / "r.yaml").write_text(
        "name: t\nrun_dir: runs/one\ntarget: 1\nbackend: {kind: local, model: fake, model_path: m.gguf}\n"
        "pools: [{path: pools/p.jsonl}, {hf: saved}]\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config("../recipes/r.yaml")
    assert config.run_dir == folder / "runs" / "one"
    assert config.backend.model_path == folder / "m.gguf"
    assert config.pools.sources[0].path == folder / "pools" / "p.jsonl"
    assert config.pools.sources[1].hf == str(folder / "saved")
    # names shown in previews and job records stay as written: no local folders in a published dataset
    assert [s.name for s in config.pools.sources] == ["pools/p.jsonl", "hf:saved"]


def test_the_shipped_recipes_work_from_any_folder(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    from longwriter_data.config import load_config

    repo = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(tmp_path)
    for name in ("6k.yaml", "quickstart.yaml", "fake.yaml"):
        config = load_config(repo / "configs" / name)
        assert config.run_dir.parent == repo / "data" / "runs"
        assert all(source.path.is_file() for source in config.pools.sources if source.path)
    assert main(["estimate", "--config", str(repo / "configs" / "6k.yaml")]) == 0
    assert "Estimate for longwriter-6k" in capsys.readouterr().out


def test_the_fake_server_recipe_builds_its_target_as_the_readme_says(tmp_path, server, capsys):
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    text = (repo / "configs" / "fake.yaml").read_text(encoding="utf-8")
    assert "base_url: http://127.0.0.1:8000/v1" in text and "run_dir: ../data/runs/fake" in text
    (tmp_path / "configs").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "pools").symlink_to(repo / "data" / "pools")  # its ../data paths resolve as shipped
    recipe = tmp_path / "configs" / "fake.yaml"
    recipe.write_text(text.replace("http://127.0.0.1:8000/v1", server.base_url), encoding="utf-8")
    assert main(["build", "--config", str(recipe), "--no-progress"]) == 0
    assert f"Dataset (20 samples): {tmp_path / 'data' / 'runs' / 'fake' / 'dataset'}" in capsys.readouterr().out


def test_the_6k_recipe_states_the_generation_settings_of_longwriters_own_scripts():
    """THUDM/LongWriter agentwrite/plan.py and write.py: temperature 1.0, max_tokens 4096 for plan and paragraphs,
    plans of more than 50 steps skipped; the recipe must say so itself, not lean on our defaults."""
    import yaml

    from longwriter_data.config import load_config

    stated = yaml.safe_load(open("configs/6k.yaml", encoding="utf-8"))["generation"]
    paper = {"temperature": 1.0, "plan_max_tokens": 4096, "paragraph_max_tokens": 4096, "plan_format": "text",
             "max_paragraphs": 50, "extra_body": {}}
    assert {key: stated[key] for key in paper} == paper
    generation = load_config("configs/6k.yaml").generation
    assert {key: getattr(generation, key) for key in paper} == paper


def test_the_6k_recipe_reaches_its_target_from_real_requests_or_synthesis():
    from longwriter_data.config import load_config

    pools = load_config("configs/6k.yaml").pools
    hub = [source for source in pools.sources if source.hf]
    assert [source.hf for source in hub] == ["allenai/WildChat-1M"]
    assert hub[0].messages_field == "conversation" and hub[0].fields == {"lang": "language"}
    seeds = 644
    assert seeds + hub[0].max_instructions >= 6000 / pools.synthesize.acceptance  # reachable: no synthesis needed
    assert pools.synthesize.count == "auto"  # unreachable or run dry: synthesis makes up the rest


@pytest.mark.parametrize("recipe, expected", [
    # a key typed where its variable's name belongs is refused, and never repeated in the message
    ("backend: {api_key_env: sk-proj-abcdefghijklmnopqrstuvwxyz123456}\n", "backend.api_key_env: must be the name"),
    ("quality: {judge: {base_url: 'http://u:sk-abc@127.0.0.1:1/v1', api_key_env: null}}\n",
     "quality.judge.base_url: credentials in the URL"),
    ("quality: {judge: {api_key_env: 'Bearer abc'}}\n", "quality.judge.api_key_env: must be the name"),
    ("target: true\n", "target: Input should be a valid integer"),
    ("name: t\x00\n", "r.yaml:5: invalid YAML (the character #x0000 is not allowed)"),
    ("extra: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"x{i}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(6)),
     "expands to more than 100,000 values"),
])
def test_recipe_mistakes_that_could_leak_or_hang_are_one_line(tmp_path, capsys, recipe, expected):
    (tmp_path / "p.jsonl").write_text('{"prompt": "Write a long essay about rivers."}\n', encoding="utf-8")
    config = tmp_path / "r.yaml"
    config.write_text("name: t\nrun_dir: run\npools: [{path: p.jsonl}]\n" + ("" if "target" in recipe else "target: 1\n")
                      + recipe, encoding="utf-8")
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "sk-" not in err and "Bearer" not in err, err
    assert not (tmp_path / "run").exists()
