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
