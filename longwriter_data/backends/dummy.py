"""An in-process backend that answers from a script: deterministic, no network, no child process. For unit tests
of what sits above the backends (retries, budgets, the breaker, AgentWrite); the end-to-end tests talk real HTTP
to testing/fake_server.py instead. Not a recipe kind."""

from __future__ import annotations

from collections.abc import Callable

from ..quality.length import approx_tokens
from .base import RETRYABLE, Backend, ChatRequest, Completion, Failure, RequestFailed

Answer = Callable[[ChatRequest], "str | Completion | Failure"]


class DummyBackend(Backend):
    """`answer` maps a request to its text, a whole Completion, or a Failure to raise (default: an echo).
    Every request sent is kept in `requests`, in order."""

    url = "dummy://"

    def __init__(self, answer: Answer | None = None):
        self.answer = answer or (lambda request: f"An answer to: {request.prompt}")
        self.requests: list[ChatRequest] = []

    @classmethod
    def in_turn(cls, *answers: str | Completion | Failure) -> DummyBackend:
        """A backend that gives these answers, one per request, in turn."""
        queue = list(answers)
        return cls(lambda request: queue.pop(0))

    async def send(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        result = self.answer(request)
        if isinstance(result, Failure):
            raise RequestFailed(result)
        if isinstance(result, str):
            return Completion(result, "stop", prompt_tokens=approx_tokens(request.prompt),
                              completion_tokens=approx_tokens(result))
        return result

    def classify(self, error: BaseException) -> Failure:
        if isinstance(error, RequestFailed):
            return error.failure
        return Failure(RETRYABLE, f"{type(error).__name__}: {error}")
