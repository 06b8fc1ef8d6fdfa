"""Stopping a set of running tasks on Ctrl-C, the same way for the engine's jobs, synthesis's requests and the
`judge` command's: start nothing new, give what is in flight a grace period to finish (and be stored), then cancel
the rest."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Mapping
from typing import Protocol


class Drain:
    """Watches a live mapping of tasks (its owner adds and removes them); `requested` tells the owner to start no
    more. Shutdown (the Ctrl-C handler) calls `request_stop`."""

    def __init__(self, tasks: Mapping[object, asyncio.Task]):
        self.tasks = tasks
        self.requested = False

    def request_stop(self, grace_s: float) -> None:
        if self.requested:
            return
        self.requested = True
        asyncio.get_running_loop().call_later(grace_s, self.cancel_all)

    def cancel_all(self) -> None:
        for task in self.tasks.values():
            task.cancel()

    async def close(self) -> None:
        """Cancel whatever still runs and wait until it has ended (what it stores in `finally` is then stored)."""
        self.cancel_all()
        if self.tasks:
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)


class Stoppable(Protocol):
    def request_stop(self, grace_s: float) -> None: ...


class Shutdown:
    """First Ctrl-C (or SIGTERM) drains gracefully; a second one exits at once (everything on disk stays valid).

    It stops what runs at the time (a build: synthesis, then the engine). A signal that arrives before anything is
    attached (the backend still starting) is remembered: what is attached next then starts drained. Created inside
    the running event loop, whose closing removes the handlers."""

    def __init__(self, grace_s: float, say: Callable[[str], None], starting: str = "jobs"):
        self.grace_s = grace_s
        self.say = say
        self.starting = starting  # what no longer starts, for the message: "jobs", "judgements"
        self.running: Stoppable | None = None
        self.requested = False
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.on_signal)

    def on_signal(self) -> None:
        if self.requested:
            self.say("Second interrupt: exiting now. The run stays resumable.")
            os._exit(130)
        self.requested = True
        self.say(f"Stopping: no new {self.starting}; waiting up to {self.grace_s:g}s for requests in flight "
                 "(Ctrl-C again to quit now).")
        if self.running is not None:
            self.running.request_stop(self.grace_s)

    def attach(self, running: Stoppable) -> None:
        self.running = running
        if self.requested:
            running.request_stop(self.grace_s)
