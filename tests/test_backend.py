"""The backends: how the OpenAI-compatible one classifies each failure (through real HTTP), reasoning models'
parameters and usage, bounds on what a server returns, and the factory that picks a kind."""

from __future__ import annotations

import asyncio
import json
import os

import httpx2
import pytest

from longwriter_data.backends.base import (BAD_ANSWER, Backend, FATAL_ENDPOINT, FATAL_RUN, RATE_LIMITED, REFUSED, RETRYABLE,
                                           ChatRequest, Completion, Failure, RequestFailed)
from longwriter_data.backends.factory import backend_class
from longwriter_data.backends.local import LocalBackend
from longwriter_data.backends.openai_http import OpenAIBackend, reasoning_model, retry_after_s
from longwriter_data.config import BACKEND_KINDS
from longwriter_data.quality.answer_checks import answer_problem
from longwriter_data.testing.fake_server import FakeServerProcess
from longwriter_data.cli import main
from tests.conftest import dead_url, jobs, write_config, write_pool

GOOD = ["Write a 1200-word essay about rivers.", "Write a 1200-word essay about bridges."]


@pytest.mark.parametrize("model, expected", [
    ("o1", True), ("o3-mini", True), ("o4-mini-2025-04-16", True), ("gpt-5", True), ("gpt-5-mini", True),
    ("gpt-5.1", True), ("openai/o3", True), ("GPT-5-nano", True),
    ("gpt-4o", False), ("gpt-4.1-mini", False), ("fake", False), ("llama-3-o1", False), ("omni-7b", False),
])
def test_reasoning_models_are_told_by_name(model, expected):
    assert reasoning_model(model) is expected


def _steps(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]


def test_a_reasoning_model_builds_and_its_reasoning_tokens_are_paid_for(tmp_path, server, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD)
    # The fake server refuses max_tokens and temperature 0.7 for o-series names, as OpenAI does.
    config = write_config(tmp_path, server.base_url, pool, target=2, backend={"model": "openai/o4-mini"},
                          filters={"min_words": 1000}, prices={"input": 0.0, "output": 1_000_000.0})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    records = jobs(tmp_path / "run")
    assert [r["status"] for r in records] == ["accepted", "accepted"]
    steps = _steps(tmp_path / "run")
    reasoning = sum(s["reasoning_tokens"] for s in steps)
    assert all(s["reasoning_tokens"] > 0 for s in steps)
    assert sum(r["usage"]["reasoning_tokens"] for r in records) == reasoning
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    output = sum(s["completion_tokens"] for s in steps)  # reasoning included, as OpenAI bills it
    assert f"{output:,} output ({reasoning:,} reasoning)" in out, out
    assert f"Cost: ${output:,.2f}" in out, out  # $1 per output token: the cost is the output count
    assert f"{reasoning:,} reasoning tokens" in out  # beside estimate's prediction, which has none


@pytest.mark.parametrize("backend, setting", [
    ({"model": "gpt-5", "token_param": "max_tokens"}, "backend.token_param: max_completion_tokens"),
    ({"model": "o3", "send_temperature": True}, "backend.send_temperature: false"),
])
def test_a_refused_parameter_stops_the_build_naming_the_setting_to_change(tmp_path, server, capsys, backend,
                                                                          setting):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD)
    config = write_config(tmp_path, server.base_url, pool, target=2, backend=backend)
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert setting in err and f"'{backend['model']}'" in err, err
    assert jobs(tmp_path / "run") == []
    config = write_config(tmp_path, server.base_url, pool, target=2, backend={"model": backend["model"]},
                          filters={"min_words": 1000})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0  # with the setting on auto


def test_a_non_reasoning_model_can_be_sent_max_completion_tokens_and_no_temperature(tmp_path, server):
    pool = write_pool(tmp_path / "pool.jsonl", GOOD[:1])
    config = write_config(tmp_path, server.base_url, pool, target=1, filters={"min_words": 1000},
                          backend={"token_param": "max_completion_tokens", "send_temperature": False})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    assert [r["status"] for r in jobs(tmp_path / "run")] == ["accepted"]


@pytest.mark.parametrize("directive", ["[[huge]]", "[[gzipbomb]]"])
def test_an_oversized_or_gzip_bomb_answer_is_a_bad_answer_and_is_not_read_whole(tmp_path, server, directive):
    bad = f"Write a 1200-word essay about storms. {directive}"
    pool = write_pool(tmp_path / "pool.jsonl", [bad, *GOOD])
    config = write_config(tmp_path, server.base_url, pool, target=2, filters={"min_words": 1000},
                          generation={"step_attempts": 2})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    by_prompt = {r["prompt"]: r for r in jobs(tmp_path / "run")}
    assert (by_prompt[bad]["status"], by_prompt[bad]["reason"]) == ("failed", "plan_failed")
    assert "larger than" in by_prompt[bad]["detail"] and "after 2 attempts" in by_prompt[bad]["detail"]
    assert [by_prompt[p]["status"] for p in GOOD] == ["accepted", "accepted"]


def test_a_reasoning_models_cut_off_answer_says_which_limit_to_raise():
    cut = Completion(text="", finish_reason="length", completion_tokens=4096, reasoning_tokens=4000)
    assert "4000 reasoning tokens" in answer_problem(cut) and "paragraph_max_tokens" in answer_problem(cut)
    assert answer_problem(Completion(text="Half a sent", finish_reason="length")) == "cut off (finish_reason=length)"


@pytest.fixture(scope="module")
def slow_server():
    """Answers only after 30 s: a client with a shorter timeout gives up first."""
    with FakeServerProcess(latency=30) as server:
        yield server


def _failure(base_url: str, prompt: str, model: str = "fake", timeout_s: float = 10, **settings) -> Failure:
    """What one real request to `base_url` fails with, as the backend classifies it."""
    async def attempt() -> Failure | Completion:
        async with OpenAIBackend(base_url, "key", 2, timeout_s, **settings) as backend:
            try:
                return await backend.send(ChatRequest(model, prompt, 16, 0.7))
            except RequestFailed as exc:
                return exc.failure

    result = asyncio.run(attempt())
    assert isinstance(result, Failure), result
    return result


# case: (how it is provoked, kind, HTTP status, error code, refused parameter, Retry-After in seconds)
CLASSIFIED = {
    "429 with Retry-After": ("canned=rate_limit", RATE_LIMITED, 429, "rate_limit_exceeded", None, 3.0),
    "429 with retry-after-ms": ("canned=rate_limit_ms", RATE_LIMITED, 429, "rate_limit_exceeded", None, 0.25),
    "429 quota used up": ("canned=quota", FATAL_RUN, 429, "insufficient_quota", None, None),
    "500": ("canned=server_error", RETRYABLE, 500, None, None, None),
    "502 HTML page": ("canned=bad_gateway", RETRYABLE, 502, None, None, None),
    "connection dropped": ("canned=drop", RETRYABLE, None, None, None, None),
    "connection refused": ("dead port", RETRYABLE, None, None, None, None),
    "timeout": ("slow server", RETRYABLE, None, None, None, None),
    "401 bad key": ("canned=unauthorized", FATAL_RUN, 401, "invalid_api_key", None, None),
    "403 filter": ("canned=forbidden", REFUSED, 403, "content_filter", None, None),
    "404 unknown model": ("canned=unknown_model", FATAL_ENDPOINT, 404, "model_not_found", None, None),
    "404 wrong path": ("base_url without /v1", FATAL_ENDPOINT, 404, None, None, None),
    "400 unsupported_parameter": ("o3 sent max_tokens", FATAL_ENDPOINT, 400, "unsupported_parameter", "max_tokens",
                                  None),
    "413 too large": ("canned=too_large", REFUSED, 413, None, None, None),
    "400 context length": ("canned=context_length", REFUSED, 400, "context_length_exceeded", "messages", None),
}


@pytest.mark.parametrize("case", CLASSIFIED)
def test_each_failure_is_classified_by_what_it_means_for_the_request_the_endpoint_and_the_run(server, slow_server,
                                                                                              case):
    how, kind, status, code, param, retry_after = CLASSIFIED[case]
    url, prompt, model, settings = server.base_url, "Write about rivers.", "fake", {}
    if how.startswith("canned="):
        prompt = f"[[{how}]] {prompt}"
    elif how == "dead port":
        url = dead_url()
    elif how == "slow server":
        url, settings = slow_server.base_url, {"timeout_s": 0.2}
    elif how == "base_url without /v1":
        url = url.removesuffix("/v1")
    else:
        model, settings = "o3", {"token_param": "max_tokens"}
    failure = _failure(url, prompt, model, **settings)
    assert (failure.kind, failure.status, failure.code, failure.param, failure.retry_after_s) == \
        (kind, status, code, param, retry_after), failure
    assert failure.message and "\n" not in failure.message
    if kind is FATAL_RUN:  # the sentence the user sees: what to do about it
        assert "backend.api_key_env" in failure.message, failure.message


@pytest.mark.parametrize("headers, expected",
                         [({"retry-after-ms": "250"}, 0.25), ({"Retry-After": "3"}, 3.0), ({}, None),
                          ({"Retry-After": "soon"}, None)])
def test_retry_after_headers_are_read(headers, expected):
    request = httpx2.Request("POST", "http://x/v1/chat/completions")
    assert retry_after_s(httpx2.Response(429, headers=headers, request=request)) == expected


def test_an_error_the_sdk_did_not_wrap_is_retried_and_one_the_sdk_could_not_read_is_a_bad_answer():
    async def classify() -> tuple[Failure, Failure]:
        async with OpenAIBackend("http://127.0.0.1:9/v1", "key", 1, 1) as backend:
            from longwriter_data.backends.openai_http import ResponseTooLarge

            return backend.classify(ConnectionResetError("reset")), backend.classify(ResponseTooLarge("huge"))

    unwrapped, unreadable = asyncio.run(classify())
    assert unwrapped.kind is RETRYABLE and unreadable.kind is BAD_ANSWER


def test_every_backend_kind_of_the_recipe_has_a_module_and_the_factory_picks_it():
    # a new kind: its settings model in config.py (naming its module) and its module in backends/ (see
    # test_a_new_backend_kind_needs_only_its_module_and_its_settings_model)
    assert all(issubclass(backend_class(kind), Backend) for kind in BACKEND_KINDS)
    assert backend_class("openai") is OpenAIBackend and backend_class("local") is LocalBackend


# A new kind as its author writes it: one module in backends/ ...
RELAY_MODULE = '''"""A kind that relays to an OpenAI-compatible `upstream`: what a new kind's author writes."""

from __future__ import annotations

from ..config import RelayBackendConfig
from .base import Backend, ChatRequest, Completion, Failure
from .openai_http import OpenAIBackend


class RelayBackend(Backend):
    def __init__(self, upstream: str, max_connections: int, timeout_s: float):
        self.http = OpenAIBackend(upstream, "none", max_connections, timeout_s)
        self.url = self.http.url

    @classmethod
    def open(cls, settings: RelayBackendConfig, max_connections: int, timeout_s: float,
             where: str = "backend") -> RelayBackend:
        return cls(settings.upstream, max_connections, timeout_s)

    @classmethod
    def reasoning(cls, model: str) -> bool:
        return model.startswith("thinker")

    async def send(self, request: ChatRequest) -> Completion:
        return await self.http.send(request)

    def classify(self, error: BaseException) -> Failure:
        return self.http.classify(error)

    async def aclose(self) -> None:
        await self.http.aclose()
'''

# ... and its settings model in config.py, listed in BACKEND_KINDS.
RELAY_SETTINGS = '''
class RelayBackendConfig(_BackendSettings):
    kind: Literal["relay"]
    module: ClassVar[str] = "relay:RelayBackend"
    placement = ("upstream",)
    upstream: str

    @classmethod
    def public(cls, settings: dict) -> dict:
        return {key: value for key, value in settings.items() if key != "upstream"}

    @classmethod
    def runs_on(cls, settings: dict) -> str:
        return " (through a relay)"


BACKEND_KINDS = {"relay": RelayBackendConfig, '''

RELAY_RUN = """
import sys
from pathlib import Path

import longwriter_data
from longwriter_data.cli import main

assert longwriter_data.__file__.startswith(sys.argv[1]), longwriter_data.__file__
recipe = Path(sys.argv[2])
status = main(["build", "--config", str(recipe), "--no-progress"]) or main(["estimate", "--config", str(recipe)])
recipe.write_text(recipe.read_text().replace("/v1", "/v1/"))  # where it runs: not drift
sys.exit(status or main(["build", "--config", str(recipe), "--no-progress"]))
"""


def test_a_new_backend_kind_needs_only_its_module_and_its_settings_model(tmp_path, server):
    # The package copied, with exactly those two additions: build, resume, estimate and the card work with the new
    # kind.
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import longwriter_data

    copy = tmp_path / "pkg"
    package = copy / "longwriter_data"
    shutil.copytree(Path(longwriter_data.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "backends" / "relay.py").write_text(RELAY_MODULE, encoding="utf-8")
    config_py = package / "config.py"
    source = config_py.read_text(encoding="utf-8")
    assert source.count("\nBACKEND_KINDS = {") == 1
    config_py.write_text(source.replace("\nBACKEND_KINDS = {", RELAY_SETTINGS, 1), encoding="utf-8")

    pool = write_pool(tmp_path / "pool.jsonl", GOOD)
    recipe = write_config(tmp_path, server.base_url, pool, target=2, filters={"min_words": 0},
                          backend={"kind": "relay", "upstream": server.base_url, "model": "thinker-1"})
    recipe.write_text(recipe.read_text().replace("  api_key_env: null\n", "").replace(
        f"  base_url: {server.base_url}\n", ""))
    done = subprocess.run([sys.executable, "-c", RELAY_RUN, str(copy), str(recipe)], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [job["status"] for job in jobs(tmp_path / "run")] == ["accepted", "accepted"]
    assert "reasoning models also bill hidden reasoning tokens" in done.stdout  # the kind's reasoning(model)
    dataset = tmp_path / "run" / "dataset"
    card = (dataset / "README.md").read_text(encoding="utf-8")
    assert "- Writer model: `thinker-1` (through a relay)" in card  # the kind's runs_on
    backend = json.loads((dataset / "recipe.json").read_text())["config"]["backend"]
    assert backend["kind"] == "relay" and "upstream" not in backend and "upstream" not in card  # its public()
