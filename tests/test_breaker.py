"""The endpoint breaker: a streak of failures stops the build; a failure of one job is that job's own."""

from __future__ import annotations

import asyncio

from longwriter_data.backends.base import (FATAL_ENDPOINT, REFUSED, RETRYABLE, ChatRequest, Completion, Failure,
                                           RequestFailed)
from longwriter_data.backends.breaker import EndpointBreaker, EndpointUnusable


def _scripted(outcomes: dict[str, list]):
    """A send whose answers per prompt come from a script, each after the event named with it is set."""
    async def send(request: ChatRequest) -> Completion:
        gate, outcome = outcomes[request.prompt].pop(0)
        await gate.wait()
        if isinstance(outcome, Exception):
            raise outcome
        return Completion(text=outcome, finish_reason="stop")
    return send


def test_breaker_a_failure_held_until_another_request_succeeds_is_the_jobs_own():
    async def scenario():
        breaker = EndpointBreaker("http://h/v1", max_jobs=4)
        failed, succeeded = asyncio.Event(), asyncio.Event()
        failed.set()
        send = breaker.guarding(_scripted({"a": [(failed, RequestFailed(Failure(RETRYABLE, "HTTP 500: boom", 500)))],
                                           "b": [(succeeded, "fine")]}))
        good = asyncio.create_task(send(ChatRequest("m", "b", 8, 0.0)))
        bad = asyncio.create_task(send(ChatRequest("m", "a", 8, 0.0)))
        await asyncio.sleep(0)  # the failure arrives and is held: another request is still in flight
        assert not bad.done()
        succeeded.set()
        return await asyncio.gather(bad, good, return_exceptions=True)

    bad, good = asyncio.run(scenario())
    assert isinstance(bad, RequestFailed) and good.text == "fine"


def test_breaker_stops_after_a_streak_of_failures_even_after_successes():
    async def scenario():
        breaker = EndpointBreaker("http://user:secret@h:8000/v1?api-key=sk-1", max_jobs=64)
        up, down = asyncio.Event(), asyncio.Event()
        up.set()
        script = {"ok": [(up, "fine")], **{f"p{i}": [(down, RequestFailed(Failure(RETRYABLE, "gave up: refused")))] for i in range(40)}}
        send = breaker.guarding(_scripted(script))
        await send(ChatRequest("m", "ok", 8, 0.0))
        requests = [asyncio.create_task(send(ChatRequest("m", f"p{i}", 8, 0.0))) for i in range(40)]
        await asyncio.sleep(0)  # all 40 in flight: then the server goes away
        down.set()
        return await asyncio.gather(*requests, return_exceptions=True)

    results = asyncio.run(scenario())
    assert all(isinstance(r, EndpointUnusable) for r in results)  # none was let through as a job's failure
    assert results[0].exit_code == 1
    assert "http://h:8000/v1" in str(results[0]) and "secret" not in str(results[0]) and "sk-1" not in str(results[0])


def test_breaker_a_failure_fatal_for_the_endpoint_stops_at_once_and_a_refusal_is_the_jobs_own():
    async def scenario():
        breaker = EndpointBreaker("http://h/v1", max_jobs=4)
        ready = asyncio.Event()
        ready.set()
        send = breaker.guarding(_scripted({
            "ok": [(ready, "fine")],
            "long": [(ready, RequestFailed(Failure(REFUSED, "context_length_exceeded", 400)))],
            "model": [(ready, RequestFailed(Failure(FATAL_ENDPOINT, "no such model", 404, "model_not_found")))],
        }))
        await send(ChatRequest("m", "ok", 8, 0.0))
        refused = await asyncio.gather(send(ChatRequest("m", "long", 8, 0.0)), return_exceptions=True)
        fatal = await asyncio.gather(send(ChatRequest("m", "model", 8, 0.0)), return_exceptions=True)
        return refused[0], fatal[0]

    refused, fatal = asyncio.run(scenario())
    assert isinstance(refused, RequestFailed) and not isinstance(refused, EndpointUnusable)
    assert isinstance(fatal, EndpointUnusable) and fatal.exit_code == 2 and "no such model" in str(fatal)
