"""Stopping a set of running tasks on Ctrl-C, the same way for the engine's jobs and synthesis's requests: start
nothing new, give what is in flight a grace period to finish (and be stored), then cancel the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping


class Drain:
    """Watches a live mapping of tasks (its owner adds and removes them); `requested` tells the owner to start no
    more. build's Ctrl-C handler calls `request_stop`."""

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
