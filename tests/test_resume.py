"""Kill -9 at any moment, re-run, lose nothing, pay for nothing twice; Ctrl-C, locks, drift, torn lines."""

from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import yaml

from longwriter_data.cli import main
from longwriter_data.testing.fake_server import FakeServerProcess
from tests.conftest import jobs, wait_for_exit, write_config, write_pool

# 24 instructions, every fourth one rejected as too short: the target needs more jobs than it keeps.
PROMPTS = [f"Write a 1200-word essay about subject {i}.{' [[short]]' if i % 4 == 3 else ''}" for i in range(24)]


def run_build(config: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "longwriter_data", "build", "--config", str(config),
                             "--no-progress", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def dataset_rows(run_dir: Path) -> list[tuple]:
    train = datasets.load_from_disk(str(run_dir / "dataset"))["train"]
    return [(row["id"], row["messages"][1]["content"]) for row in train]


def recorded_keys(run_dir: Path) -> set[str]:
    path = run_dir / "steps.jsonl"
    keys = set()
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            keys.add(json.loads(line)["key"])
        except json.JSONDecodeError:
            pass  # a torn last line is not a record
    return keys


@pytest.fixture(scope="module")
def slow_server():
    with FakeServerProcess(latency=0.02) as server:
        yield server


def config_for(tmp_path: Path, server, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    pool = write_pool(folder / "pool.jsonl", PROMPTS)
    return write_config(folder, server.base_url, pool, target=10, engine={"max_jobs": 4},
                        filters={"min_words": 1000})


def test_killed_runs_resume_to_the_same_samples_without_paying_twice(tmp_path, slow_server):
    reference = config_for(tmp_path, slow_server, "reference")
    slow_server.reset()
    done = run_build(reference)
    assert done.wait(timeout=120) == 0, done.stderr.read()
    expected = dataset_rows(reference.parent / "run")
    assert len(expected) == 10

    slow_server.reset()
    config = config_for(tmp_path, slow_server, "killed")
    run_dir = config.parent / "run"
    at_kills = []  # (steps on disk, requests served so far per prompt) at each kill
    for after in (3, 12, 15):  # during the first plans, mid-run, later (counts since the previous kill)
        proc = run_build(config)
        slow_server.arm(proc.pid, after, signal.SIGKILL)
        assert proc.wait(timeout=120) == -signal.SIGKILL
        at_kills.append((recorded_keys(run_dir), slow_server.stats(keys=True)["per_request"]))
    proc = run_build(config)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Resuming" in err

    assert dataset_rows(run_dir) == expected
    per_request = slow_server.stats(keys=True)["per_request"]
    # A step on disk at a kill was never requested again after it; only requests in flight at a kill repeat.
    assert at_kills[-1][0], "the last kill should find steps on disk"
    for recorded, served_then in at_kills:
        assert all(per_request[key] == served_then[key] >= 1 for key in recorded)  # keys the server saw
    repeats = sum(n - 1 for n in per_request.values())
    assert repeats <= 3 * 4  # at most max_jobs requests in flight per kill
    seqs = [r["seq"] for r in jobs(run_dir)]
    assert len(seqs) == len(set(seqs))  # each job finished once


def stored_steps(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "steps.jsonl").read_text(encoding="utf-8").splitlines()
            if line.endswith("}")]  # a torn last line is not a record


@pytest.mark.parametrize("section, setting, value", [("generation", "temperature", 0.9),
                                                     ("backend", "model", "other")])
def test_a_forced_resume_after_a_changed_request_setting_pays_again_for_every_stored_step(
        tmp_path, slow_server, section, setting, value):
    config = config_for(tmp_path, slow_server, "changed")
    run_dir = config.parent / "run"
    slow_server.reset()
    proc = run_build(config)
    slow_server.arm(proc.pid, 10, signal.SIGKILL)
    assert proc.wait(timeout=120) == -signal.SIGKILL
    before = stored_steps(run_dir)
    assert before, "the kill should find steps on disk"
    served = slow_server.stats(keys=True)["per_prompt"]

    recipe = yaml.safe_load(config.read_text())
    recipe.setdefault(section, {})[setting] = value
    config.write_text(yaml.safe_dump(recipe))
    proc = run_build(config, "--force")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    # Every step stored under the old settings was asked again (its prompt paid a second time), none replayed.
    redone = stored_steps(run_dir)[len(before):]
    assert {(s["seq"], s["sample"], s["step"]) for s in before} <= {(s["seq"], s["sample"], s["step"]) for s in redone}
    assert not {s["key"] for s in before} & {s["key"] for s in redone}
    per_prompt = slow_server.stats(keys=True)["per_prompt"]
    assert sum(per_prompt[key] > served.get(key, 0) for key in served) >= len(before)
    per_request = slow_server.stats(keys=True)["per_request"]
    assert all(per_request[s["key"]] == 1 for s in redone)  # under the new settings, each paid once


def test_torn_last_lines_are_ignored_on_resume(tmp_path, server):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS[:6])
    config = write_config(tmp_path, server.base_url, pool, target=2, filters={"min_words": 1000})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run_dir = tmp_path / "run"
    before = jobs(run_dir)
    with (run_dir / "jobs.jsonl").open("ab") as fh:
        fh.write(b'{"seq": 99, "status": "acc')
    with (run_dir / "steps.jsonl").open("ab") as fh:
        fh.write(b'{"seq": 98, "step": 0, "te')
    config.write_text(config.read_text().replace("target: 2", "target: 4"))
    proc = run_build(config)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Ignored a torn last record in jobs.jsonl, steps.jsonl" in err
    after = jobs(run_dir)  # every line parses again
    assert after[: len(before)] == before
    assert sum(r["status"] == "accepted" for r in after) >= 4


def test_a_second_build_on_the_same_run_dir_is_refused(tmp_path, server, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS[:3])
    config = write_config(tmp_path, server.base_url, pool, target=1)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with (run_dir / "lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242")
        held.flush()
        assert main(["build", "--config", str(config), "--no-progress"]) == 2
    assert "in use by a running build (pid 4242)" in capsys.readouterr().err
    assert not (run_dir / "jobs.jsonl").exists()


def test_recipe_drift_is_refused_unless_forced_and_speed_changes_are_allowed(tmp_path, server, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS[:8])
    config = write_config(tmp_path, server.base_url, pool, target=2, filters={"min_words": 1000})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    recipe = yaml.safe_load(config.read_text())

    recipe["engine"]["max_jobs"] = 2
    recipe["engine"]["request_timeout_s"] = 30
    recipe["target"] = 3
    config.write_text(yaml.safe_dump(recipe))
    assert main(["build", "--config", str(config), "--no-progress"]) == 0

    recipe["generation"] = {"temperature": 0.9}
    recipe["backend"]["model"] = "other"
    config.write_text(yaml.safe_dump(recipe))
    capsys.readouterr()
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "backend.model: 'fake' -> 'other'" in err and "generation.temperature: 0.7 -> 0.9" in err
    assert "engine" not in err and "target" not in err
    pool.write_text(pool.read_text() + '{"prompt": "one more"}\n')
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    assert "pools[0] (" in (err := capsys.readouterr().err) and "pool.jsonl): its instructions changed" in err
    assert main(["build", "--config", str(config), "--no-progress", "--force"]) == 0


def test_retry_failed_requeues_failed_jobs(tmp_path, server):
    bad = "Write a 1200-word essay about storms. [[fail]]"
    pool = write_pool(tmp_path / "pool.jsonl", [bad, *PROMPTS[:2]])
    config = write_config(tmp_path, server.base_url, pool, target=2, filters={"min_words": 1000})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    first = server.stats()["requests"]
    config.write_text(config.read_text().replace("target: 2", "target: 3"))
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    assert server.stats()["requests"] == first  # finished jobs, failed ones too, are not redone
    assert main(["build", "--config", str(config), "--no-progress", "--retry-failed"]) == 0
    assert server.stats()["requests"] == first + 2  # the failed plan was sent again (max_retries 1: 2 attempts)
    statuses = [r["status"] for r in jobs(tmp_path / "run") if r["prompt"] == bad]
    assert statuses == ["failed", "failed"]


def test_first_ctrl_c_drains_saves_and_exits_130_then_resume_finishes(tmp_path, slow_server):
    config = config_for(tmp_path, slow_server, "interrupted")
    proc = run_build(config)
    slow_server.arm(proc.pid, 10, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Resume with:" in err and "python -m longwriter_data build --config" in err
    resumed = run_build(config)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert len(dataset_rows(config.parent / "run")) == 10


def test_export_after_resume_is_idempotent_and_stable(tmp_path, server):
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS[:8])
    config = write_config(tmp_path, server.base_url, pool, target=4, filters={"min_words": 1000})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run_dir = tmp_path / "run"
    first = dataset_rows(run_dir)
    assert main(["export", str(run_dir)]) == 0
    assert dataset_rows(run_dir) == first
    assert len({i for i, _ in first}) == 4


def test_a_resumed_draw_reuses_cached_instruction_minhashes_and_keeps_the_same_order(tmp_path, server):
    from collections import Counter

    from longwriter_data.config import load_config
    from longwriter_data.quality.dedupe import SignatureCache, signature
    from longwriter_data.pools.instructions import DrawSettings, PreparedPools, draw

    prompts = [f"Write a 1200-word essay about subject {i}, {'x ' * i}." for i in range(8)]
    pool = write_pool(tmp_path / "pool.jsonl", prompts)
    config = load_config(write_config(tmp_path, server.base_url, pool, target=3,
                                      filters={"min_words": 1000, "near_duplicate_threshold": 0.9}))
    cache_path = tmp_path / "minhashes.bin"

    def drawn(cache: SignatureCache | None) -> tuple[list[str], Counter]:
        skipped: Counter = Counter()
        with PreparedPools(config.pools) as pools:
            settings = DrawSettings(config.seed, near_duplicates=0.9)
            order = [i.prompt for i in draw(pools, settings, skipped=skipped, minhashes=cache)]
        if cache:
            cache.close()
        return order, skipped

    fresh, _ = drawn(None)
    assert drawn(SignatureCache(cache_path))[0] == fresh
    assert cache_path.stat().st_size == len(prompts) * SignatureCache.RECORD.itemsize
    with cache_path.open("ab") as fh:
        fh.write(b"torn")
    assert drawn(SignatureCache(cache_path))[0] == fresh  # all from the cache, the torn tail ignored
    assert cache_path.stat().st_size % SignatureCache.RECORD.itemsize == 4  # nothing new was written

    # The cache really is read: give the second instruction drawn the first one's signature, and it is skipped.
    first = signature(fresh[0], size=3).hashvalues
    cache = SignatureCache(cache_path)
    cache._known[cache.key(fresh[1], size=3)] = first
    order, skipped = drawn(cache)
    assert order == [fresh[0], *fresh[2:]] and skipped == {"near_duplicate_instruction": 1}


@pytest.mark.parametrize("written, named", [(None, "earlier development version"), (1, "written by format 1")])
def test_a_run_directory_of_an_earlier_version_is_refused_by_every_command_and_left_as_it_was(
        tmp_path, server, capsys, written, named):
    """0.x: run directories written before the format version (SHA-1 shingle hashes, one pools fingerprint,
    job records without a sample), or in format 1 (step keys that hash the prompt alone), are not read, rather
    than misread."""
    pool = write_pool(tmp_path / "pool.jsonl", PROMPTS[:4])
    config = write_config(tmp_path, server.base_url, pool, target=2, filters={"min_words": 1000})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    snapshot = json.loads((run / "config.json").read_text())
    assert snapshot["format"] == 2
    del snapshot["format"]  # as an earlier development version wrote it
    if written is not None:
        snapshot["format"] = written
    (run / "config.json").write_text(json.dumps(snapshot))
    before = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in run.iterdir())
    capsys.readouterr()
    for argv in (["build", "--config", str(config), "--no-progress"], ["inspect", str(run)],
                 ["export", str(run), "--out", str(tmp_path / "out")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and named in err and "new run_dir" in err
    assert sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in run.iterdir()) == before
    assert not (tmp_path / "out").exists()


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment holds `marker`: a build and every process it started."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass  # gone, or not ours to read
    return found


def _stopped_build_with_a_worker(tmp_path: Path, server, name: str, after: int) -> tuple[subprocess.Popen, list[int]]:
    """A build with a judging worker, stopped (SIGSTOP, sent by the fake server) after `after` requests, and the
    processes it started, found by a marker in their environment."""
    import os
    import uuid

    config = config_for(tmp_path, server, name)
    config.write_text(config.read_text().replace("max_jobs: 4", "max_jobs: 4\n  judge_processes: 1"))
    marker = f"LONGWRITER_TEST_MARK={uuid.uuid4().hex}"
    key, value = marker.split("=")
    proc = subprocess.Popen([sys.executable, "-m", "longwriter_data", "build", "--config", str(config), "--no-progress"],
                            env={**os.environ, key: value}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server.arm(proc.pid, after, signal.SIGSTOP)
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    children = [pid for pid in _processes_with(marker) if pid != proc.pid]
    assert children, "the build should have started a judging worker"
    return proc, children


def test_judging_workers_die_with_a_killed_build(tmp_path, slow_server):
    proc, children = _stopped_build_with_a_worker(tmp_path, slow_server, "workers", after=24)
    proc.kill()
    proc.communicate()
    assert all(wait_for_exit(pid, timeout=30) for pid in children)


def test_a_killed_judging_worker_is_replaced_and_the_build_finishes(tmp_path, slow_server):
    import os

    proc, workers = _stopped_build_with_a_worker(tmp_path, slow_server, "worker-killed", after=20)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)  # as the OOM killer would
    assert all(wait_for_exit(pid, timeout=30) for pid in workers)
    os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert sum(r["status"] == "accepted" for r in jobs(tmp_path / "worker-killed" / "run")) >= 10
