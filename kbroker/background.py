"""Stopping the broker's asyncio tasks (replica fetchers, the AlterPartition sender, controller channels).

`stop_task` cancels a task and waits until it has finished, cancelling again when needed:
on Python 3.11 `asyncio.wait_for` may swallow a cancellation that races with its inner
future completing, and the task would then carry on. Knows nothing of what the tasks do.
"""

from __future__ import annotations

import asyncio

_RECANCEL_INTERVAL_S = 0.05


async def stop_task(task: asyncio.Task | None) -> None:
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=_RECANCEL_INTERVAL_S)
    if not task.cancelled():
        task.exception()  # retrieved: a failure was logged by the task itself
