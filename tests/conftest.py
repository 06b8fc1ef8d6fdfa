"""Shared fixtures: a real fake OpenAI-compatible server on loopback, and recipe/pool writers in tmp dirs."""

from __future__ import annotations

import json
import os
import select
import socket
from pathlib import Path

import pytest
import yaml

from longwriter_data.testing.fake_server import FakeServerProcess


@pytest.fixture(scope="session")
def fake_server():
    with FakeServerProcess() as server:
        yield server


@pytest.fixture
def server(fake_server):
    fake_server.reset()
    return fake_server


def write_pool(path: Path, prompts: list[str | dict]) -> Path:
    lines = []
    for i, item in enumerate(prompts):
        record = {"id": f"p{i:04d}", "prompt": item} if isinstance(item, str) else item
        lines.append(json.dumps(record, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_config(tmp_path: Path, base_url: str, pool: Path, **overrides) -> Path:
    """A recipe for the fake server; nested overrides merge into their section."""
    config = {
        "name": "test",
        "run_dir": str(tmp_path / "run"),
        "target": 3,
        "seed": 0,
        "backend": {"base_url": base_url, "api_key_env": None, "model": "fake"},
        "engine": {"max_jobs": 4, "max_retries": 1},
        "pools": [{"path": str(pool), "weight": 1.0}],
        # Test prompts are templated ("... about topic 3"): near-duplicates by design; tests of dedupe turn it on.
        "filters": {"near_duplicate_threshold": None},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def dead_url() -> str:
    """A loopback address where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def jobs(run_dir: Path) -> list[dict]:
    path = run_dir / "jobs.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Block until a process that is not our child exits (pidfd: no polling); False if it outlives `timeout`."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)
