"""Stopping on Ctrl-C (generate/stop.py), shared by the engine and synthesis: nothing new starts, what is in
flight gets a grace period, what outlives it is cancelled. Builds exercise it end to end (test_build.py)."""

from __future__ import annotations

import asyncio

from longwriter_data.generate.stop import Drain


def test_a_stop_starts_nothing_new_then_cancels_what_outlives_the_grace_period():
    async def main() -> tuple[bool, bool, bool]:
        tasks: dict[int, asyncio.Task] = {}
        drain = Drain(tasks)
        finished = asyncio.Event()
        tasks[1] = asyncio.create_task(finished.wait())
        tasks[2] = asyncio.create_task(asyncio.Event().wait())  # never ends by itself
        drain.request_stop(3600)
        drain.request_stop(0)  # a second request changes nothing: the first grace period stands
        finished.set()
        await tasks[1]
        still_running = not tasks[2].done()
        await drain.close()
        return drain.requested, still_running, tasks[2].cancelled()

    assert asyncio.run(main()) == (True, True, True)
