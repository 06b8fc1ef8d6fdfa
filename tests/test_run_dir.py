"""The run directory as a build finds and leaves it: unusable folders refused before anything is created, no
secrets in config.json, drift told apart from respelling, a damaged snapshot named, disk full survived."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from longwriter_data.cli import main
from longwriter_data.testing.synthetic_run import SyntheticJob, write_run
from tests.conftest import jobs, write_config, write_pool

PROMPTS = [f"Write a 1200-word essay about subject {i}." for i in range(6)]


def build(config: Path, *extra: str) -> int:
    return main(["build", "--config", str(config), "--no-progress", *extra])


def edit(config: Path, change) -> None:
    recipe = yaml.safe_load(config.read_text())
    change(recipe)
    config.write_text(yaml.safe_dump(recipe))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("make_run_dir, message", [
    (lambda run: run.write_text("my notes"), "is a file, not a folder"),
    (lambda run: (run.parent / "parent").write_text("x"), "cannot create"),  # run_dir inside a file
    (lambda run: (run.mkdir(), (run / "thesis.tex").write_text("x")), "is not a run directory"),
])
def test_an_unusable_run_dir_is_refused_and_left_as_it_was(tmp_path, capsys, make_run_dir, message):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool)
    run = tmp_path / "run"
    make_run_dir(run)
    if (tmp_path / "parent").exists():
        run = tmp_path / "parent" / "run"
        edit(config, lambda r: r.update(run_dir=str(run)))
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    assert build(config) == 2
    err = one_line_error(capsys)
    assert message in err and str(run) in err and "run_dir" in err
    assert sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("content", ["", '{"config": {"name": "t", "run_d'])
def test_a_damaged_config_json_is_named_by_every_command(tmp_path, capsys, content):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(content)
    (run / "jobs.jsonl").write_text("")
    for argv in (["build", "--config", str(config), "--no-progress"], ["pools", "--config", str(config)],
                 ["inspect", str(run)], ["export", str(run), "--out", str(tmp_path / "out")]):
        assert main(argv) == 2, argv
        err = one_line_error(capsys)
        assert f"{run / 'config.json'}: " in err and "damaged" in err
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "jobs.jsonl"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, key", [
    (lambda recipe: recipe["filters"].update(a_later_filter=True), "filters.a_later_filter"),  # a newer version's key
    (lambda recipe: recipe.update(target=0), "target"),  # a value this version refuses
])
def test_a_saved_recipe_this_version_cannot_read_is_named_by_every_command(tmp_path, capsys, change, key):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool)
    run = write_run(tmp_path / "run", [SyntheticJob(words=1200, required=(1200, 1200))] * 2)
    snapshot = json.loads((run / "config.json").read_text())
    change(snapshot["config"])
    (run / "config.json").write_text(json.dumps(snapshot))
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    for argv in (["build", "--config", str(config), "--no-progress"], ["pools", "--config", str(config)],
                 ["estimate", "--config", str(config)], ["inspect", str(run)], ["judge", str(run)],
                 ["export", str(run), "--out", str(tmp_path / "out")]):
        assert main(argv) == 2, argv
        err = one_line_error(capsys)
        assert f"{run / 'config.json'}: " in err and key in err and "this version" in err, (argv, err)
    assert sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


def test_secrets_written_into_the_recipe_never_reach_config_json(tmp_path, server):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
    config = write_config(tmp_path, server.base_url + "?api-key=sk-querysecret1234", pool, target=1,
                          generation={"extra_body": {"api_key": "sk-bodysecret1234", "top_p": 0.9,
                                                     "user_note": "Bearer tok-bearersecret"}},
                          filters={"min_words": 1000, "near_duplicate_threshold": None})
    assert build(config) == 0
    snapshot = (tmp_path / "run" / "config.json").read_text()
    for secret in ("querysecret", "bodysecret", "bearersecret"):
        assert secret not in snapshot
    saved = json.loads(snapshot)["config"]
    assert saved["generation"]["extra_body"]["top_p"] == 0.9  # settings stay: they change what is generated
    assert saved["backend"]["base_url"] == server.base_url
    # drift is still told: same recipe resumes, a real change is refused
    assert build(config) == 0
    edit(config, lambda r: r["generation"]["extra_body"].update(top_p=0.5))
    assert build(config) == 2


def test_name_key_variable_and_pool_spelling_are_not_drift_but_pool_content_is(tmp_path, server, capsys,
                                                                               monkeypatch):
    monkeypatch.setenv("LWD_KEY_ONE", "k1")
    monkeypatch.setenv("LWD_KEY_TWO", "k1")
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
    other = write_pool(tmp_path / "other.jsonl", PROMPTS[3:])
    config = write_config(tmp_path, server.base_url, pool, target=1, backend={"api_key_env": "LWD_KEY_ONE"},
                          filters={"min_words": 1000, "near_duplicate_threshold": None},
                          pools=[{"path": str(pool)}, {"path": "other.jsonl"}])
    assert build(config) == 0
    edit(config, lambda r: r.update(name="renamed"))
    edit(config, lambda r: r["backend"].update(api_key_env="LWD_KEY_TWO"))
    edit(config, lambda r: r["pools"][0].update(path="pool.jsonl"))  # relative to the recipe's folder
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(str(other), moved / "other.jsonl")
    edit(config, lambda r: r["pools"][1].update(path="moved/other.jsonl"))
    edit(config, lambda r: r.update(target=2))
    capsys.readouterr()
    assert build(config) == 0, capsys.readouterr().err
    assert "different recipe" not in capsys.readouterr().err
    with (moved / "other.jsonl").open("a") as fh:
        fh.write(json.dumps({"prompt": "Write a 1200-word essay about one more thing."}) + "\n")
    assert build(config) == 2
    err = capsys.readouterr().err
    assert "moved/other.jsonl" in err and "pool.jsonl" not in err.replace("other.jsonl", "")


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return result.returncode == 0


def test_disk_full_during_a_build_is_one_line_and_the_run_resumes(tmp_path, server, capsys):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "48k"):
        pytest.skip("needs permission to mount a small tmpfs (root)")
    try:
        pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
        config = write_config(tmp_path, server.base_url, pool, target=4, run_dir=str(disk / "run"),
                              engine={"max_jobs": 2}, filters={"min_words": 1000, "near_duplicate_threshold": None})
        assert build(config) == 1
        err = capsys.readouterr().err
        assert "no space left" in err.lower() and "Traceback" not in err
        assert "resume" in err.lower()
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        assert build(config) == 0
        assert sum(r["status"] == "accepted" for r in jobs(disk / "run")) >= 4
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def test_a_local_model_is_compared_by_its_file_name_not_its_folder(tmp_path):
    from longwriter_data.config import BuildConfig, config_drift

    def view(model_path: str) -> dict:
        return BuildConfig.model_validate({"name": "t", "run_dir": "r", "target": 1, "pools": [{"path": "p.jsonl"}],
                                           "backend": {"kind": "local", "model_path": model_path}}).generative_view()

    assert config_drift(view("models/a.gguf"), view("/srv/models/a.gguf")) == []
    assert config_drift(view("models/a.gguf"), view("models/b.gguf")) == ["backend.model_path: 'a.gguf' -> 'b.gguf'"]


def test_long_names_are_kept_and_a_run_with_one_resumes(tmp_path, server, monkeypatch):
    """A long variable or model name is a name, not a random token: config.json keeps it, so the run reads back."""
    from longwriter_data.redact import without_secrets

    names = {"api_key_env": "MY_COMPANY_OPENAI_PRODUCTION_API_KEY", "model": "DeepSeek-R1-Distill-Qwen-32B-Instruct"}
    assert without_secrets({"backend": names}) == {"backend": names}
    assert without_secrets({"backend": {"model": "sk-proj-typed-here"}}) == {"backend": {"model": "(removed)"}}
    monkeypatch.setenv(names["api_key_env"], "sk-test")
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS)
    config = write_config(tmp_path, server.base_url, pool, target=1, backend=names,
                          filters={"min_words": 1000, "near_duplicate_threshold": None})
    assert build(config) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["backend"]["api_key_env"] == names["api_key_env"]
    edit(config, lambda r: r.update(target=2))
    assert build(config) == 0  # resumed: the saved recipe still validates
    assert main(["inspect", str(tmp_path / "run")]) == 0
