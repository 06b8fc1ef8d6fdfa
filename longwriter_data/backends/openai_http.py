"""The one interface the engine talks to: send a chat request, get text, usage and finish reason back.

Every backend is an OpenAI-compatible HTTP server reached through `openai.AsyncOpenAI` on its aiohttp transport;
the embedded model is such a server too (see local.py), so the engine never knows which one it has.
What a server returns is bounded (MAX_RESPONSE_BYTES, after decompression) before it is read whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx2
import openai

from ..config import BuildConfig
from ..errors import UserError


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
    reasoning_tokens: int = 0  # hidden thinking of reasoning models: part of completion_tokens, billed as output
    headers: dict = field(default_factory=dict, compare=False)


def request_key(prompt: str, sample: int = 0) -> str:
    """The identity of a request: the same prompt twice is the same request, paid twice. Sample n > 0 of an
    instruction salts it, so N samples of one prompt are N requests (sample 0 keeps the plain prompt's hash)."""
    if sample:
        return hashlib.blake2b(prompt.encode(), digest_size=10, salt=sample.to_bytes(8, "little")).hexdigest()
    return hashlib.blake2b(prompt.encode(), digest_size=10).hexdigest()


# OpenAI's reasoning models (o1, o3, o4-mini, the gpt-5 family) take `max_completion_tokens` instead of `max_tokens`
# and only the default temperature. Names may carry a provider prefix ("openai/o3").
_REASONING_MODEL = re.compile(r"^(?:o\d|gpt-5)", re.IGNORECASE)
MAX_RESPONSE_BYTES = 8 * 2**20  # ~100x the largest paragraph answer (4096 tokens of JSON-escaped Chinese)


def reasoning_model(model: str) -> bool:
    return bool(_REASONING_MODEL.match(model.rsplit("/", 1)[-1]))


class ResponseTooLarge(openai.OpenAIError):
    """A server's answer over MAX_RESPONSE_BYTES (decompressed): refused unread, and treated as a bad answer.
    An OpenAIError, so the SDK passes it on as it is."""


class OpenAIBackend:
    """An OpenAI-compatible endpoint. The SDK's own retries are off: retry.py owns retrying, visibly."""

    def __init__(self, base_url: str, api_key: str, max_connections: int, timeout_s: float,
                 schema_style: str = "json_schema", token_param: str = "auto", send_temperature: str | bool = "auto"):
        self.schema_style = schema_style
        self.token_param = token_param
        self.send_temperature = send_temperature
        self._parameters: dict[str, tuple[str, bool]] = {}  # model -> (token parameter, send temperature)
        http_client = _BoundedClient(
            limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"Accept-Encoding": "gzip, deflate"},  # the encodings _BoundedStream can decode within bounds
        )
        # A query in base_url (`?api-version=...`, a gateway's `?api-key=...`) goes with every request: the SDK would
        # otherwise put the request's path after it, inside the query.
        parts = urlsplit(base_url)
        self.client = openai.AsyncOpenAI(
            base_url=urlunsplit(parts._replace(query="")), api_key=api_key, max_retries=0, timeout=timeout_s,
            http_client=http_client, default_query=dict(parse_qsl(parts.query, keep_blank_values=True)) or None
        )

    def parameters(self, model: str) -> tuple[str, bool]:
        """The name of the output-token limit and whether to send a temperature: the settings, or on `auto`
        what the model's name says."""
        known = self._parameters.get(model)
        if known is None:
            reasoning = reasoning_model(model)
            token_param = self.token_param
            if token_param == "auto":
                token_param = "max_completion_tokens" if reasoning else "max_tokens"
            temperature = not reasoning if self.send_temperature == "auto" else bool(self.send_temperature)
            known = self._parameters[model] = (token_param, temperature)
        return known

    async def complete(self, request: ChatRequest) -> Completion:
        # The body goes out as it is: the SDK's typed `chat.completions.create` would first walk it through its
        # params transform, measured at 0.7 ms a request (16% of the builder's CPU at 500 requests in flight).
        token_param, temperature = self.parameters(request.model)
        body = {
            "model": request.model,
            "messages": [{"role": "user", "content": request.prompt}],
            token_param: request.max_tokens,
        }
        if temperature:
            body["temperature"] = request.temperature
        body.update(request.extra_body)
        if request.json_schema:
            body["response_format"] = self._response_format(request.json_schema)
        # The answer is read as plain JSON too: building the SDK's pydantic objects cost another ~0.2 ms.
        try:
            raw = await self.client.post("/chat/completions", body=body, cast_to=bytes)
        except ResponseTooLarge:
            return Completion(text="", finish_reason="oversized")
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
                reasoning_tokens=(usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0,
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


class _BoundedClient(openai.DefaultAioHttpClient):
    """The SDK's aiohttp client, with every transport it makes (direct or through a proxy) bounded."""

    def _init_transport(self, *args, **kwargs) -> httpx2.AsyncBaseTransport:
        return _BoundedTransport(super()._init_transport(*args, **kwargs))

    def _init_proxy_transport(self, *args, **kwargs) -> httpx2.AsyncBaseTransport:
        return _BoundedTransport(super()._init_proxy_transport(*args, **kwargs))


class _BoundedTransport(httpx2.AsyncBaseTransport):
    """Refuses a body whose Content-Length is over the limit before reading it, and decompresses the others
    itself, a chunk at a time, stopping at the limit: a 100 KB gzip bomb never becomes 100 MB in memory."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, limit: int = MAX_RESPONSE_BYTES):
        self.inner = inner
        self.limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        length = response.headers.get("content-length", "")
        if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            await response.aclose()
            raise ResponseTooLarge(f"the answer's content-encoding {encoding!r} was not asked for")
        if length.isdigit() and int(length) > self.limit:
            await response.aclose()
            raise ResponseTooLarge(f"the answer is larger than {self.limit:,} bytes (Content-Length {length})")
        if encoding == "identity" and length.isdigit():
            return response  # aiohttp reads no more than Content-Length: bounded already, at no cost
        headers = [(k, v) for k, v in response.headers.raw
                   if k.lower() not in (b"content-encoding", b"content-length")]
        return httpx2.Response(response.status_code, headers=headers, request=request, extensions=response.extensions,
                               stream=_BoundedStream(response.stream, encoding != "identity", self.limit))

    async def aclose(self) -> None:
        await self.inner.aclose()


class _BoundedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, compressed: bool, limit: int):
        self.inner = inner
        self.limit = limit
        self.decoder = zlib.decompressobj(32 + zlib.MAX_WBITS) if compressed else None  # gzip or zlib header

    async def __aiter__(self):
        received = produced = 0
        async for chunk in self.inner:
            received += len(chunk)
            if self.decoder is not None:
                try:
                    chunk = self.decoder.decompress(chunk, self.limit + 1 - produced)  # never more than the limit
                except zlib.error as exc:
                    raise ResponseTooLarge(f"the answer could not be decompressed ({exc})") from None
            produced += len(chunk)
            if max(received, produced) > self.limit:
                raise ResponseTooLarge(f"the answer is larger than {self.limit:,} bytes")
            yield chunk
        if self.decoder is not None:
            tail = self.decoder.flush()
            if produced + len(tail) > self.limit:
                raise ResponseTooLarge(f"the answer is larger than {self.limit:,} bytes")
            yield tail

    async def aclose(self) -> None:
        await self.inner.aclose()


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
        from .local import LocalServer

        with LocalServer.from_config(config.backend) as server:
            backend = OpenAIBackend(server.base_url, "local", engine.max_jobs, engine.request_timeout_s,
                                    schema_style="llama_cpp", token_param=config.backend.token_param,
                                    send_temperature=config.backend.send_temperature)
            try:
                yield backend
            finally:
                await backend.aclose()
        return
    backend = OpenAIBackend(config.backend.base_url, api_key_for(config), engine.max_jobs, engine.request_timeout_s,
                            schema_style=config.backend.schema_style, token_param=config.backend.token_param,
                            send_temperature=config.backend.send_temperature)
    try:
        yield backend
    finally:
        await backend.aclose()
