"""Stopping the broker's asyncio tasks (replica fetchers, the AlterPartition sender, controller
channels), and keeping the fire-and-forget tasks a coordinator starts (BackgroundTasks).

`stop_task` cancels a task and waits until it has finished, cancelling again when needed:
on Python 3.11 `asyncio.wait_for` may swallow a cancellation that races with its inner
future completing, and the task would then carry on. Knows nothing of what the tasks do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

_RECANCEL_INTERVAL_S = 0.05


async def stop_task(task: asyncio.Task | None) -> None:
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=_RECANCEL_INTERVAL_S)
    if not task.cancelled():
        task.exception()  # retrieved: a failure was logged by the task itself


class BackgroundTasks:
    """Tasks started and not awaited (loading a partition, storing a record): held until done,
    so that none is garbage-collected half-way, and a failure is logged as `what` failed."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("%s failed", self._what, exc_info=task.exception())

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
