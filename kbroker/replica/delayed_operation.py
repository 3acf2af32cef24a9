"""Kafka's purgatory: requests that cannot be answered yet wait here, keyed by what they wait on.

- A `DelayedOperation` is one waiting request. `try_complete()` checks whether it can finish
  now and, if so, calls `force_complete()`; `force_complete()` finishes it exactly once (the
  first caller wins, later ones get False) and runs `on_complete()`, which writes the answer.
  When `delay_ms` passes first, the purgatory's timer force-completes it and then calls
  `on_expiration()` (Kafka's order: the answer carries whatever the operation has).
- A `DelayedOperationPurgatory` watches operations under keys (here topic-partitions):
  `try_complete_else_watch(op, keys)` completes at once when it can, else parks it under every
  key with one asyncio timer for its expiry (no polling); `check_and_complete(key)` is called by
  whoever changed what the key stands for (an append, a high watermark move, a leadership
  change) and gives each operation watching that key a chance to finish. An operation that
  completes leaves every key's watch list at once. A coroutine that parked an operation awaits
  `wait(op)`, which returns when the operation is complete:
      if not purgatory.try_complete_else_watch(op, keys):
          await purgatory.wait(op)
  (two steps, so that the common case, completing at once, costs no coroutine).

A new kind of delayed operation (transactions' delayed markers, quotas' throttled responses)
plugs in by subclassing `DelayedOperation` with `try_complete` / `on_complete` (and, if it
cares, `on_expiration`), owning a `DelayedOperationPurgatory` keyed by whatever wakes it, and
calling `check_and_complete(key)` where that thing changes. An operation that only waits for
time (a throttled response) is watched under no keys and completes by expiry. Operations are
told apart by identity (they are dict keys): a subclass must not define `__eq__` (so no
`@dataclass` with eq). The purgatory itself knows nothing of partitions, logs or requests: it
must not import them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable

from kbroker.metrics.stats import remote_time_s


class DelayedOperation:
    """One request waiting in a purgatory (Kafka's DelayedOperation)."""

    # Set only once the operation is parked: most operations complete at once (acks=-1 on one
    # replica, a fetch finding data), and the produce path should not pay for them.
    _keys: tuple[Hashable, ...] = ()
    _purgatory: DelayedOperationPurgatory | None = None
    _timer: asyncio.TimerHandle | None = None
    _done: asyncio.Future[None] | None = None

    def __init__(self, delay_ms: int) -> None:
        self.delay_ms = delay_ms
        self.is_completed = False

    def try_complete(self) -> bool:
        """Completes the operation (through `force_complete`) if it can finish now; True if it did."""
        raise NotImplementedError

    def on_complete(self) -> None:
        """Writes the answer; called exactly once, by whichever completion came first."""
        raise NotImplementedError

    def on_expiration(self) -> None:
        """Called after `on_complete` when the delay ran out before the operation could finish."""

    def force_complete(self) -> bool:
        """Finishes the operation now. Only the first call (completion or expiry) runs
        `on_complete` and returns True: that is what makes a completion racing the timer safe."""
        if self.is_completed:
            return False
        self._leave_purgatory()
        try:
            self.on_complete()
        finally:  # even a failing on_complete must not leave its waiter parked forever
            if self._done is not None and not self._done.done():
                self._done.set_result(None)
        return True

    def cancel(self) -> None:
        """Drops the operation without an answer (its waiter went away)."""
        if not self.is_completed:
            self._leave_purgatory()

    def _expire(self) -> None:
        if self.force_complete():
            self.on_expiration()

    def _leave_purgatory(self) -> None:
        self.is_completed = True
        if self._purgatory is not None:
            self._purgatory._unwatch(self)
            self._purgatory = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class DelayedOperationPurgatory:
    """Operations parked under keys until something they watch changes or they expire
    (Kafka's DelayedOperationPurgatory; the timer is the event loop's)."""

    def __init__(self, name: str) -> None:
        self.name = name
        # key -> the operations watching it, in arrival order (a dict as an ordered set).
        # Public so that a caller can skip check_and_complete while nothing is parked at all
        # (the produce path asks after every append).
        self.watchers: dict[Hashable, dict[DelayedOperation, None]] = {}
        self._delayed: set[DelayedOperation] = set()

    def __repr__(self) -> str:
        return f"DelayedOperationPurgatory({self.name}, {len(self._delayed)} delayed)"

    @property
    def num_delayed(self) -> int:
        """Operations parked and not completed yet."""
        return len(self._delayed)

    def watched(self, key: Hashable) -> int:
        """How many operations watch `key`."""
        return len(self.watchers.get(key, ()))

    def try_complete_else_watch(self, operation: DelayedOperation, keys: Iterable[Hashable]) -> bool:
        """Completes the operation now if it can (True); else parks it under every key and
        starts its expiry timer (False)."""
        if operation.try_complete():
            return True
        keys = tuple(keys)
        operation._keys = keys
        operation._purgatory = self
        for key in keys:
            self.watchers.setdefault(key, {})[operation] = None
        self._delayed.add(operation)
        operation._timer = asyncio.get_running_loop().call_later(max(0, operation.delay_ms) / 1000,
                                                                 operation._expire)
        return False

    async def wait(self, operation: DelayedOperation) -> None:
        """Returns once a parked operation is complete (by a key's change or by expiry). A
        waiter cancelled meanwhile takes its operation out of the purgatory."""
        if operation.is_completed:
            return
        loop = asyncio.get_running_loop()
        operation._done = loop.create_future()
        parked = loop.time()
        try:
            await operation._done
        finally:
            operation.cancel()
            # Kafka's remote time of the request (RequestMetrics' RemoteTimeMs, the request log).
            remote_time_s.set(remote_time_s.get() + loop.time() - parked)

    def check_and_complete(self, key: Hashable) -> int:
        """Something `key` stands for changed: each operation watching it may finish now.
        Returns how many did."""
        watchers = self.watchers.get(key)
        if not watchers:
            return 0
        completed = 0
        for operation in list(watchers):  # completions leave `watchers` as we go
            if not operation.is_completed and operation.try_complete():
                completed += 1
        return completed

    def complete_all(self) -> int:
        """Answers every parked operation now with what it has (broker shutdown)."""
        operations = list(self._delayed)
        return sum(operation.force_complete() for operation in operations)

    def _unwatch(self, operation: DelayedOperation) -> None:
        self._delayed.discard(operation)
        for key in operation._keys:
            watchers = self.watchers.get(key)
            if watchers is not None:
                watchers.pop(operation, None)
                if not watchers:
                    del self.watchers[key]
