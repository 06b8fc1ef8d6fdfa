"""Telling a failing request from an unusable endpoint, so a wrong URL or model stops the build instead of burning
the pool.

Every request of a build (synthesis, LLM selection, plans, paragraphs) passes through one `EndpointBreaker` after
its retries. A request that failed for good is held until it is known which it was:
- a request succeeds meanwhile: the endpoint works, the failure was the job's own (its job fails, as before);
- `STREAK` requests in a row fail, or every request in flight has failed (at least `min(STREAK, max(3, max_jobs))`
  in a row; before any request of the build succeeded, one without an HTTP answer or two with an HTTP error): the
  endpoint is unusable. The build stops with one line naming the URL and the model, and the held
  jobs are not recorded as failed, so fixing the recipe and re-running the same command just works.
A failure the backend classified fatal for the endpoint (a wrong path, an unknown model, a refused parameter)
stops the build at the first answer: no job can succeed against it. Exit status 2 for a setting to fix (an HTTP
4xx), 1 for an outage to wait out (no connection, timeouts, 5xx, 429 after every retry).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from ..errors import FatalBackendError
from .base import FATAL_ENDPOINT, ChatRequest, Completion, RequestFailed

STREAK = 8  # failed requests in a row, with no success between them, that mark the endpoint unusable
QUORUM_FLOOR = 3

Send = Callable[[ChatRequest], Awaitable[Completion]]


class EndpointUnusable(FatalBackendError):
    """Every request fails the same way: the build stops before the jobs are recorded as failed."""


class EndpointBreaker:
    def __init__(self, base_url: str, max_jobs: int, setting: str = "backend.base_url"):
        self.url = shown_url(base_url)
        self.setting = setting  # the recipe key a message tells the user to check
        # Failures that, filling every slot, condemn an endpoint that has worked: never fewer than QUORUM_FLOOR, so
        # with one or two slots a job whose own request fails is not taken for an outage.
        self.quorum = min(STREAK, max(QUORUM_FLOOR, max_jobs))
        self.active = 0  # requests inside `send` or held here
        # Failed requests waiting for the verdict (True: the endpoint is unusable), with the failure and request.
        self.held: list[tuple[asyncio.Future, RequestFailed, ChatRequest]] = []
        self.streak = 0
        self.proven = False  # a request has succeeded in this build
        self.tripped: EndpointUnusable | None = None

    def guarding(self, send: Send) -> Send:
        """`send` with every failure judged here."""
        return functools.partial(self.call, send)

    def answered(self) -> bool:
        """Whether a request of this build has succeeded: before, a dead address is not retried for long."""
        return self.proven

    async def call(self, send: Send, request: ChatRequest) -> Completion:
        if self.tripped:
            raise self.tripped
        self.active += 1
        try:
            try:
                completion = await send(request)
            except RequestFailed as exc:
                await self._failed(exc, request)
                raise
            self.proven, self.streak = True, 0
            self._release(False)
            return completion
        finally:
            self.active -= 1
            self._decide()

    async def _failed(self, failure: RequestFailed, request: ChatRequest) -> None:
        """Return when the failure is the job's own; raise EndpointUnusable when it is the endpoint's."""
        if failure.failure.kind is FATAL_ENDPOINT:
            self._trip(failure, request)
        if not failure.failure.transient and self.proven:
            return  # a refusal of this request only (too long a prompt, say): other requests did succeed
        self.streak += 1
        if self.streak >= STREAK:
            self._trip(failure, request)
        verdict = asyncio.get_running_loop().create_future()
        entry = (verdict, failure, request)
        self.held.append(entry)
        self._decide()
        try:
            unusable = await verdict
        finally:
            if entry in self.held:  # cancelled while held
                self.held.remove(entry)
        if unusable:
            raise self.tripped

    def _decide(self) -> None:
        """When every request in flight has failed, no success can come to vouch for the endpoint: judge now."""
        if not self.held or len(self.held) < self.active:
            return
        _, failure, request = self.held[-1]
        if self.proven:
            needed = self.quorum
        else:  # nothing has worked yet: no answer at all condemns it, an HTTP error must happen to two requests
            needed = 1 if failure.status is None else 2
        if self.streak >= needed:
            self._trip(failure, request, raise_it=False)
        else:
            self._release(False)

    def _release(self, unusable: bool) -> None:
        held, self.held = self.held, []
        for verdict, _, _ in held:
            if not verdict.done():
                verdict.set_result(unusable)

    def _trip(self, failure: RequestFailed, request: ChatRequest, raise_it: bool = True) -> None:
        if self.tripped is None:
            self.tripped = EndpointUnusable(self._message(failure, request), exit_code=_exit_code(failure))
        self._release(True)
        if raise_it:
            raise self.tripped

    def _message(self, failure: RequestFailed, request: ChatRequest) -> str:
        where = f"{self.url} (model '{request.model}')"
        fix = "nothing was recorded as failed: fix it and re-run the same command"
        status, reason = failure.status, str(failure).rstrip(".")
        if failure.code in ("unsupported_parameter", "unsupported_value") and failure.param:
            return (f"{where} refuses the parameter {failure.param!r} ({failure.code}): {_setting_hint(failure)}; "
                    f"{fix}. The server said: {reason}")
        if status is None:
            return (f"cannot reach {where}: {reason}. Check {self.setting} and that the server is running; "
                    f"{fix} (or wait for the server and re-run)")
        if status == 404 and _model_unknown(failure):
            return (f"{where}: the server has no such model (HTTP 404 model_not_found): check the model names in "
                    f"the recipe; {fix}. The server said: {reason}")
        if status in (404, 405):
            return (f"{where}: HTTP {status} for {self.url}/chat/completions: check {self.setting} "
                    f"(OpenAI-compatible servers usually end in /v1); {fix}")
        if status >= 500 or status == 429:
            return (f"{where} failed {self.streak} requests in a row with HTTP {status}, each after every retry "
                    f"({reason}): the server "
                    f"is down or overloaded; nothing was recorded as failed: re-run the same command later")
        return f"{where} refused every request ({reason}): check the backend settings; {fix}"


def shown_url(base_url: str) -> str:
    """The URL without credentials or query (an `?api-key=`): safe to print."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}".rstrip("/") if parts.scheme else base_url.split("?")[0]


def _model_unknown(failure: RequestFailed) -> bool:
    return failure.code == "model_not_found" or "model" in str(failure).lower()


def _setting_hint(failure: RequestFailed) -> str:
    if failure.param == "max_tokens":
        return "set backend.token_param: max_completion_tokens"
    if failure.param == "max_completion_tokens":
        return "set backend.token_param: max_tokens"
    if failure.param == "temperature":
        return "set backend.send_temperature: false"
    return "remove it from the recipe (generation.extra_body) or use a model that takes it"


def _exit_code(failure: RequestFailed) -> int:
    return 1 if failure.failure.transient else 2
