"""The backend interface: what the engine sends (ChatRequest), what it gets back (Completion), and how a failure is
told apart (Failure), so retries, budgets and the endpoint breaker decide without knowing any SDK.

A backend kind is one module (openai_http.py, local.py) with one `Backend` subclass; factory.py picks it by the
recipe's `backend.kind`, and what other modules need to know about a kind they ask it (or its settings model). A backend is an async context manager: entering starts what it needs (a connection pool,
a child process), leaving stops it however the build ends.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


# The most a backend reads of one answer: ~100x the largest paragraph answer (4096 tokens of JSON-escaped Chinese).
# A larger one is a bad answer (Completion.finish_reason "oversized"), never read whole.
MAX_RESPONSE_BYTES = 8 * 2**20


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


def request_key(request: ChatRequest, sample: int = 0) -> str:
    """The identity of a request, the key a stored answer is replayed by: its whole payload (model, prompt,
    max_tokens, temperature, JSON schema, extra_body) and the sample it is for, so N samples of one prompt are N
    requests and an answer paid under other settings is never replayed. One blake2b over a canonical encoding:
    the settings as JSON with sorted keys, then the prompt's bytes (no JSON escaping of a long prompt)."""
    settings = json.dumps([sample, request.model, request.max_tokens, float(request.temperature),
                           request.json_schema, request.extra_body],
                          sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.blake2b(settings.encode(), digest_size=10)
    digest.update(b"\0")  # never inside the JSON above (it escapes control characters): the two parts stay apart
    digest.update(request.prompt.encode())
    return digest.hexdigest()


class FailureKind(Enum):
    RETRYABLE = "retryable"  # no answer, a timeout, a 5xx: the same request may work a moment later
    RATE_LIMITED = "rate_limited"  # a 429: retry after the server's Retry-After, with fewer requests in flight
    REFUSED = "refused"  # this request only (too long a prompt, a gateway's filter): its job fails, the run goes on
    BAD_ANSWER = "bad_answer"  # an answer that cannot be used (oversized, not a chat completion): ask again
    FATAL_ENDPOINT = "fatal_endpoint"  # no request can pass (wrong URL, unknown model, refused parameter)
    FATAL_RUN = "fatal_run"  # the run cannot go on at all (a bad key, the quota used up)


RETRYABLE, RATE_LIMITED, REFUSED, BAD_ANSWER, FATAL_ENDPOINT, FATAL_RUN = FailureKind


@dataclass(frozen=True)
class Failure:
    """A failed attempt, as the backend that saw it classified it. `status` None: no HTTP answer at all."""

    kind: FailureKind
    message: str  # one line for logs and job records; for FATAL_RUN, the sentence the user sees
    status: int | None = None
    code: str | None = None  # the server's error code (model_not_found, unsupported_parameter, ...)
    param: str | None = None  # the parameter a server refused
    retry_after_s: float | None = None  # RATE_LIMITED: how long the server asked us to wait

    @property
    def transient(self) -> bool:
        """An outage to wait out rather than a setting to fix."""
        return self.kind is RETRYABLE or self.kind is RATE_LIMITED


class RequestFailed(Exception):
    """A request that did not succeed, with its classified Failure. Raised by a backend for one attempt, and by
    retry.py when it gives up; its job fails and the run goes on, unless the endpoint breaker (breaker.py) finds
    the endpoint as a whole unusable."""

    def __init__(self, failure: Failure, message: str | None = None):
        super().__init__(message or failure.message)
        self.failure = failure

    @property
    def status(self) -> int | None:
        return self.failure.status

    @property
    def code(self) -> str | None:
        return self.failure.code

    @property
    def param(self) -> str | None:
        return self.failure.param


class Backend(ABC):
    """One endpoint (or embedded model) that answers chat requests. `url` names it in messages (no secrets)."""

    url: str = ""

    @abstractmethod
    async def send(self, request: ChatRequest) -> Completion:
        """One attempt: a Completion, or RequestFailed carrying `classify` of what went wrong. Never retries."""

    @abstractmethod
    def classify(self, error: BaseException) -> Failure:
        """What a failure of this backend's transport means for the request, the endpoint and the run."""

    @classmethod
    def open(cls, settings: Any, max_connections: int, timeout_s: float, where: str = "backend") -> Backend:
        """The backend for its kind's settings model (config.py), not started yet; `where` is the recipe section
        the settings come from, for messages. factory.py calls it."""
        raise NotImplementedError

    @classmethod
    def check(cls, settings: Any, where: str = "backend") -> None:
        """Everything about the settings that can be checked without a request (raise UserError), before a build
        creates its run directory."""

    @classmethod
    def reasoning(cls, model: str) -> bool:
        """Whether `model` thinks before it answers, billing hidden tokens as output that `estimate` cannot predict
        (it says so)."""
        return False

    async def aclose(self) -> None:
        """Release what the backend holds; called once, however the run ends."""

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
