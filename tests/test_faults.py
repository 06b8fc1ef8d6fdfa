"""Faults end to end: a build that survives a storm of every fault, endpoints that cannot be used, dead addresses.

The pieces have their own files: test_retry.py, test_limits.py, test_breaker.py."""

from __future__ import annotations

import asyncio

import datasets
import pytest

from longwriter_data.backends.base import ChatRequest, RequestFailed
from longwriter_data.backends.openai_http import OpenAIBackend
from longwriter_data.cli import main
from longwriter_data.backends.retry import RetryPolicy, complete_with_retries
from longwriter_data.testing.fake_server import FAULTS, FakeServerProcess
from tests.conftest import dead_url, jobs, write_config, write_pool


STORM = {"rate_limit": 0.08, "server_error": 0.06, "hang": 0.02, "drop": 0.04, "truncate": 0.05, "empty": 0.04,
         "refuse": 0.04, "error_text": 0.04, "garbled": 0.04}


def test_build_survives_a_storm_of_every_fault_and_exports_only_clean_samples(tmp_path):
    prompts = [f"Write a 1200-word essay about subject {i}." for i in range(40)]
    pool = write_pool(tmp_path / "pool.jsonl", prompts)
    with FakeServerProcess(faults=STORM, hang_s=30) as server:
        config = write_config(
            tmp_path, server.base_url, pool, target=30,
            engine={"max_jobs": 8, "max_retries": 8, "request_timeout_s": 1.0,
                    "retry_base_delay_s": 0.01, "retry_max_delay_s": 0.1},
            generation={"step_attempts": 4}, filters={"min_words": 1000})
        assert main(["build", "--config", str(config), "--no-progress"]) == 0
        stats = server.stats()
    assert set(stats["faults"]) == set(FAULTS), stats["faults"]  # every kind of fault really happened
    records = jobs(tmp_path / "run")
    assert records and all(r["status"] in ("accepted", "rejected", "failed") for r in records)
    assert all(r["reason"] and r["detail"] for r in records if r["status"] != "accepted")
    accepted = [r for r in records if r["status"] == "accepted"]
    assert len(accepted) >= 25
    for record in accepted:  # no truncated, empty, refused or error paragraph made it in
        assert record["paragraph_words"] == [step["words"] for step in record["plan"]]
    for row in datasets.load_from_disk(str(tmp_path / "run" / "dataset"))["train"]:
        text = row["messages"][1]["content"]
        assert "sorry" not in text and "抱歉" not in text and "Error" not in text and "<html" not in text


def test_a_wrong_api_key_stops_the_run_at_once_with_a_clear_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LWD_TEST_KEY", "wrong-key")
    pool = write_pool(tmp_path / "pool.jsonl", [f"Write about {i}." for i in range(50)])
    with FakeServerProcess(api_key="right-key") as server:
        config = write_config(tmp_path, server.base_url, pool, target=50,
                              backend={"api_key_env": "LWD_TEST_KEY"}, engine={"max_jobs": 4, "max_retries": 6})
        assert main(["build", "--config", str(config), "--no-progress"]) == 2
        assert server.stats()["requests"] == 0  # rejected before any request was served, and none retried
    err = capsys.readouterr().err
    assert "rejected the API key (401)" in err and "wrong-key" not in err


FAST = {"max_jobs": 4, "max_retries": 1, "retry_base_delay_s": 0.01, "retry_max_delay_s": 0.05}


@pytest.fixture(scope="module")
def picky_server():
    """A server that knows one model, as a provider does: any other answers 404 model_not_found."""
    with FakeServerProcess(models=["fake"]) as server:
        yield server


@pytest.mark.parametrize("broken, status, words", [
    ("dead_port", 1, ["cannot reach", "backend.base_url"]),
    ("no_v1", 2, ["HTTP 404", "backend.base_url", "/v1"]),
    ("unknown_model", 2, ["model_not_found", "'no-such-model'"]),
])
def test_an_unusable_endpoint_stops_the_build_and_fixing_it_just_works(tmp_path, capsys, picky_server, broken,
                                                                        status, words):
    pool = write_pool(tmp_path / "pool.jsonl", [f"Write a 1200-word essay about subject {i}." for i in range(30)])
    url, model = picky_server.base_url, "fake"
    if broken == "dead_port":
        url = dead_url()
    elif broken == "no_v1":
        url = url.removesuffix("/v1")
    else:
        model = "no-such-model"
    config = write_config(tmp_path, url, pool, target=3, engine=FAST, backend={"model": model},
                          filters={"min_words": 1000})
    assert main(["build", "--config", str(config), "--no-progress"]) == status
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    assert url in err and f"'{model}'" in err, err
    assert all(word in err for word in words), err
    assert not [r for r in jobs(tmp_path / "run") if r["status"] == "failed"]  # nothing burnt
    # The user fixes the recipe and runs the same command: no --retry-failed, no --force.
    config = write_config(tmp_path, picky_server.base_url, pool, target=3, engine=FAST, filters={"min_words": 1000})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    statuses = [r["status"] for r in jobs(tmp_path / "run")]
    assert statuses.count("accepted") >= 3 and "failed" not in statuses


def test_a_server_failing_every_request_stops_the_build_with_status_1(tmp_path, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", [f"Write a 1200-word essay about subject {i}." for i in range(30)])
    with FakeServerProcess(faults={"server_error": 1.0}) as server:
        config = write_config(tmp_path, server.base_url, pool, target=3, engine=FAST)
        assert main(["build", "--config", str(config), "--no-progress"]) == 1
        assert server.stats()["requests"] <= 2 * FAST["max_jobs"]  # stopped after the first round, not 30 jobs
    err = capsys.readouterr().err
    assert "HTTP 5" in err and server.base_url in err, err
    assert jobs(tmp_path / "run") == []


def test_synthesis_and_llm_selection_requests_stop_the_build_too(tmp_path, capsys, picky_server):
    pool = write_pool(tmp_path / "pool.jsonl", [f"Write a 1200-word essay about subject {i}." for i in range(10)])
    config = write_config(tmp_path, dead_url(), pool, target=3, engine=FAST,
                          pools={"sources": [{"path": str(pool)}], "synthesize": {"count": 5, "per_request": 5}})
    assert main(["build", "--config", str(config), "--no-progress"]) == 1
    assert "cannot reach" in capsys.readouterr().err
    synthesized = tmp_path / "run" / "synthesized.jsonl"
    assert not synthesized.exists() or synthesized.read_text() == ""  # no request stored as failed
    config = write_config(tmp_path, picky_server.base_url, pool, target=3, engine=FAST, run_dir=str(tmp_path / "sel"),
                          pools={"sources": [{"path": str(pool)}], "llm_select": {"model": "no-such-selector"}})
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    assert "'no-such-selector'" in capsys.readouterr().err
    assert jobs(tmp_path / "sel") == []


def test_a_run_whose_every_job_failed_does_not_exit_0(tmp_path, server, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", [f"Write about {i}. [[badplan]]" for i in range(3)])
    config = write_config(tmp_path, server.base_url, pool, target=3, engine=FAST, generation={"step_attempts": 1})
    assert main(["build", "--config", str(config), "--no-progress"]) == 1
    assert "every job failed" in capsys.readouterr().err.lower()
    assert [r["status"] for r in jobs(tmp_path / "run")] == ["failed"] * 3


@pytest.mark.parametrize("answered, attempts", [(False, 3), (True, 7)])
def test_a_dead_address_is_given_up_on_quickly_until_the_endpoint_has_answered(answered, attempts):
    async def scenario() -> str:
        policy = RetryPolicy(max_retries=6, base_delay_s=0.001, max_delay_s=0.002)
        async with OpenAIBackend(dead_url(), "key", max_connections=2, timeout_s=5) as backend:
            try:
                await complete_with_retries(backend.send, REQUEST, policy, answered=lambda: answered)
            except RequestFailed as exc:
                return str(exc)
        return "succeeded"

    message = asyncio.run(scenario())
    assert message.startswith(f"gave up after {attempts} attempts") and "Connect call failed" in message, message


REQUEST = ChatRequest(model="fake", prompt="Write about rivers.", max_tokens=64, temperature=0.7)
