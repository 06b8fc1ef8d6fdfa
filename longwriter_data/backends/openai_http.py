"""The OpenAI-compatible HTTP backend: `openai.AsyncOpenAI` on its aiohttp transport, and the one place that knows
the SDK's exception types (`classify` turns them into a Failure).

Most servers speak this protocol (OpenAI, vLLM, SGLang, llama.cpp's server, gateways); the embedded model is such a
server too (local.py). What a server returns is bounded (MAX_RESPONSE_BYTES, after decompression) before it is
read whole.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx2
import openai

from ..config import OpenAIBackendConfig
from ..errors import UserError
from .base import (BAD_ANSWER, FATAL_ENDPOINT, FATAL_RUN, MAX_RESPONSE_BYTES, RATE_LIMITED, REFUSED, RETRYABLE,
                   Backend, ChatRequest, Completion, Failure, RequestFailed, request_key)

__all__ = ["OpenAIBackend", "ChatRequest", "Completion", "request_key", "reasoning_model", "api_key"]

# OpenAI's reasoning models (o1, o3, o4-mini, the gpt-5 family) take `max_completion_tokens` instead of `max_tokens`
# and only the default temperature. Names may carry a provider prefix ("openai/o3").
_REASONING_MODEL = re.compile(r"^(?:o\d|gpt-5)", re.IGNORECASE)


def reasoning_model(model: str) -> bool:
    return bool(_REASONING_MODEL.match(model.rsplit("/", 1)[-1]))


class ResponseTooLarge(openai.OpenAIError):
    """A server's answer over MAX_RESPONSE_BYTES (decompressed): refused unread, and treated as a bad answer.
    An OpenAIError, so the SDK passes it on as it is."""


class OpenAIBackend(Backend):
    """An OpenAI-compatible endpoint. The SDK's own retries are off: retry.py owns retrying, visibly."""

    def __init__(self, base_url: str, api_key: str, max_connections: int, timeout_s: float,
                 schema_style: str = "json_schema", token_param: str = "auto", send_temperature: str | bool = "auto",
                 where: str = "backend"):
        self.where = where  # the recipe section of these settings, named in messages
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
        self.url = str(self.client.base_url)

    @classmethod
    def check(cls, settings: OpenAIBackendConfig, where: str = "backend") -> None:
        api_key(settings.api_key_env, where)

    @classmethod
    def reasoning(cls, model: str) -> bool:
        return reasoning_model(model)

    @classmethod
    def open(cls, settings: OpenAIBackendConfig, max_connections: int, timeout_s: float,
             where: str = "backend") -> OpenAIBackend:
        return cls(settings.base_url, api_key(settings.api_key_env, where), max_connections, timeout_s,
                   schema_style=settings.schema_style, token_param=settings.token_param,
                   send_temperature=settings.send_temperature, where=where)

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

    async def send(self, request: ChatRequest) -> Completion:
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
        except openai.OpenAIError as exc:
            raise RequestFailed(self.classify(exc)) from None
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

    def classify(self, error: BaseException) -> Failure:
        """The SDK's exceptions by what they mean: the status, the server's error code and the refused parameter."""
        message = _short(error)
        if isinstance(error, openai.APIStatusError):
            status, code, param = error.status_code, error.code, error.param
            if status == 401:
                return Failure(FATAL_RUN, f"the backend rejected the API key (401): {message}. Check the key in the "
                               f"environment variable named by {self.where}.api_key_env", status, code, param)
            if status == 429 and code == "insufficient_quota":
                return Failure(FATAL_RUN, f"the account's quota is used up: {message}. Add credit, or use another "
                               f"key ({self.where}.api_key_env)", status, code, param)
            if status == 429:
                return Failure(RATE_LIMITED, message, status, code, param, retry_after_s(error.response))
            if status >= 500:
                return Failure(RETRYABLE, message, status, code, param)
            if status in (404, 405) or (status in (400, 422) and code in _SETTING_CODES):
                return Failure(FATAL_ENDPOINT, message, status, code, param)
            return Failure(REFUSED, message, status, code, param)  # too long a prompt, a filter: this request's own
        if isinstance(error, openai.APIConnectionError):  # refused, dropped, timed out (APITimeoutError): no answer
            return Failure(RETRYABLE, message)
        if isinstance(error, openai.OpenAIError):  # an answer the SDK could not read, one over our bounds
            return Failure(BAD_ANSWER, message)
        return Failure(RETRYABLE, message)  # a transport error the SDK did not wrap

    async def aclose(self) -> None:
        await self.client.close()


# Answers that no request can get past: an unknown model, a parameter the model refuses. (Not a 403: a gateway's
# firewall may refuse one prompt.)
_SETTING_CODES = ("model_not_found", "unsupported_parameter", "unsupported_value")


def retry_after_s(response: httpx2.Response | None) -> float | None:
    """A server's Retry-After (seconds) or retry-after-ms (OpenAI's), if it sent one."""
    if response is None:
        return None
    headers = response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                return None
    return None


def _short(error: BaseException | None) -> str:
    text = f"{type(error).__name__}: {error}" if error else "unknown error"
    if isinstance(error, openai.APIConnectionError):  # the SDK says "Connection error." or "Request timed out."
        root = error
        while root.__cause__ is not None:
            root = root.__cause__
        if isinstance(root, ConnectionRefusedError) or "Connect call failed" in str(root):
            text = f"connection refused ({root})"  # the SDK calls it a timeout; nothing listens there
        elif root is not error and str(root):
            text = f"{text.rstrip('.')} ({root})"
    return text if len(text) <= 300 else text[:297] + "..."


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


def api_key(name: str | None, where: str = "backend") -> str:
    """The key from the environment variable `name` (the recipe's `<where>.api_key_env`); never written anywhere."""
    if not name:
        return "EMPTY"  # servers without authentication (vLLM, SGLang, llama.cpp) accept any key
    key = os.environ.get(name)
    if not key:
        raise UserError(
            f"environment variable {name} ({where}.api_key_env) is not set: export it, "
            f"or set {where}.api_key_env: null for a server that needs no key."
        )
    return key
