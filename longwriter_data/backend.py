"""The one interface the engine talks to: send a chat request, get text, usage and finish reason back.

Every backend is an OpenAI-compatible HTTP server reached through `openai.AsyncOpenAI` on its aiohttp transport;
the embedded model is such a server too (see local_server.py), so the engine never knows which one it has.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx2
import openai

from .config import BuildConfig
from .errors import UserError


@dataclass(frozen=True)
class ChatRequest:
    model: str
    prompt: str
    max_tokens: int
    temperature: float
    json_schema: dict | None = None  # ask for structured output matching this schema
    extra_body: dict = field(default_factory=dict)  # server-specific parameters, sent as they are


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    headers: dict = field(default_factory=dict, compare=False)


def request_key(prompt: str) -> str:
    """The identity of a request: the same prompt twice is the same request, paid twice."""
    return hashlib.blake2b(prompt.encode(), digest_size=10).hexdigest()


class OpenAIBackend:
    """An OpenAI-compatible endpoint. The SDK's own retries are off: retry.py owns retrying, visibly."""

    def __init__(self, base_url: str, api_key: str, max_connections: int, timeout_s: float,
                 schema_style: str = "json_schema"):
        self.schema_style = schema_style
        http_client = openai.DefaultAioHttpClient(
            limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout_s, http_client=http_client
        )

    async def complete(self, request: ChatRequest) -> Completion:
        # The body goes out as it is: the SDK's typed `chat.completions.create` would first walk it through its
        # params transform, measured at 0.7 ms a request (16% of the builder's CPU at 500 requests in flight).
        body = {
            "model": request.model,
            "messages": [{"role": "user", "content": request.prompt}],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            **request.extra_body,
        }
        if request.json_schema:
            body["response_format"] = self._response_format(request.json_schema)
        # The answer is read as plain JSON too: building the SDK's pydantic objects cost another ~0.2 ms.
        raw = await self.client.post("/chat/completions", body=body, cast_to=bytes)
        try:
            response = json.loads(raw)
            choice = response["choices"][0]
            usage = response.get("usage") or {}
            content = choice["message"].get("content") or ""
            if not isinstance(content, str):
                raise TypeError("content is not text")
            return Completion(
                text=content,
                finish_reason=choice.get("finish_reason") or "stop",
                prompt_tokens=usage.get("prompt_tokens") or 0,
                completion_tokens=usage.get("completion_tokens") or 0,
                cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0,
            )
        except (ValueError, LookupError, TypeError, AttributeError):  # a body that is not a chat completion
            return Completion(text="", finish_reason="unreadable")

    def _response_format(self, schema: dict) -> dict:
        """OpenAI, vLLM and SGLang take `json_schema`; llama.cpp's Python server takes a schema on `json_object`."""
        if self.schema_style == "llama_cpp":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "plan", "strict": True, "schema": schema}}

    async def aclose(self) -> None:
        await self.client.close()


def api_key_for(config: BuildConfig) -> str:
    """The key from the environment variable the config names; it is never written anywhere."""
    name = config.backend.api_key_env
    if not name:
        return "EMPTY"  # servers without authentication (vLLM, SGLang, llama.cpp) accept any key
    key = os.environ.get(name)
    if not key:
        raise UserError(
            f"environment variable {name} (backend.api_key_env) is not set: export it, "
            "or set backend.api_key_env: null for a server that needs no key."
        )
    return key


@asynccontextmanager
async def open_backend(config: BuildConfig) -> AsyncIterator[OpenAIBackend]:
    """The backend a config asks for, closed (and its local server stopped) however the build ends."""
    engine = config.engine
    if config.backend.kind == "local":
        from .local_server import LocalServer

        with LocalServer.from_config(config.backend) as server:
            backend = OpenAIBackend(server.base_url, "local", engine.max_jobs, engine.request_timeout_s,
                                    schema_style="llama_cpp")
            try:
                yield backend
            finally:
                await backend.aclose()
        return
    backend = OpenAIBackend(config.backend.base_url, api_key_for(config), engine.max_jobs, engine.request_timeout_s,
                            schema_style=config.backend.schema_style)
    try:
        yield backend
    finally:
        await backend.aclose()
