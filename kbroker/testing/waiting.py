"""Waiting for something to become true, with a deadline: the one polling helper of the tests.

`eventually(condition, what=...)` calls `condition()` until it returns something truthy and
returns that value; once the deadline passes it raises AssertionError naming what was awaited
(and the last value seen), so a test never hangs and never decides its result by a fixed sleep.
`eventually_async` is the same for code running on an event loop, and `settle` lets the
callbacks already scheduled on the loop run without waiting for any time to pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_INTERVAL_S = 0.05


class _Deadline:
    """The moment a wait gives up, and the message it gives up with."""

    def __init__(self, timeout: float, what: str) -> None:
        self.timeout = timeout
        self.what = what
        self.ends = time.monotonic() + timeout

    def reached(self, value: object) -> bool:
        """Whether the awaited value has come (it is truthy); raises once the deadline has passed."""
        if value:
            return True
        if time.monotonic() > self.ends:
            raise AssertionError(f"timed out after {self.timeout}s waiting for {self.what} (last seen: {value!r})")
        return False


def eventually(
    condition: Callable[[], T],
    *,
    what: str = "condition",
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = DEFAULT_INTERVAL_S,
) -> T:
    """Poll `condition()` until it returns a truthy value, and return that value.

    Raises AssertionError("timed out ... waiting for <what>") once `timeout` seconds have passed.
    The condition is always called at least once, and once more after the deadline, so a slow
    machine that wakes up late still sees a condition that has become true.
    """
    deadline = _Deadline(timeout, what)
    while not deadline.reached(value := condition()):
        time.sleep(interval)
    return value


async def eventually_async(
    condition: Callable[[], T],
    *,
    what: str = "condition",
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = 0.01,
) -> T:
    """`eventually` for a test running on the event loop: polls without blocking the loop."""
    deadline = _Deadline(timeout, what)
    while not deadline.reached(value := condition()):
        await asyncio.sleep(interval)
    return value


async def settle(rounds: int = 5) -> None:
    """Let tasks and callbacks already scheduled on the loop run to their next wait."""
    for _ in range(rounds):
        await asyncio.sleep(0)
