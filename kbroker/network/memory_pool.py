"""MemoryPool: queued.max.request.bytes, the bytes of requests read and not yet being processed.

Kafka's SocketServer shares one non-strict SimpleMemoryPool between all listeners: a request
buffer is handed out while any memory is left (so one request larger than what is left still
goes through and the pool dips below zero), and while none is left the network layer stops
reading from every socket, resuming once handled requests give their bytes back. Kafka gives a
buffer back when its handler returns, which for a request parked in the purgatory is before it
is answered.

Here the bytes are counted as the connections buffer them (partial frames by the capacity of their
buffer, whole frames by their size) and given back when the request's processing starts (one
event loop: nothing else is read while a handler runs, only while it waits, and a waiting
request is what Kafka too has stopped counting) or its connection closes. The pool itself only
counts and tells its watchers when it runs out or recovers; the socket servers pause and resume
their connections' reading.
"""

from __future__ import annotations

from collections.abc import Callable


class MemoryPool:
    def __init__(self, size_bytes: int) -> None:
        self.size = size_bytes
        self.available = size_bytes
        self._watchers: list[Callable[[], None]] = []

    @property
    def is_out_of_memory(self) -> bool:
        return self.available <= 0

    def watch(self, on_change: Callable[[], None]) -> None:
        """Call `on_change()` whenever the pool runs out of memory or has some again."""
        self._watchers.append(on_change)

    def allocate(self, nbytes: int) -> None:
        was_out = self.available <= 0
        self.available -= nbytes
        if not was_out and self.available <= 0:
            self._notify()

    def release(self, nbytes: int) -> None:
        was_out = self.available <= 0
        self.available += nbytes
        if was_out and self.available > 0:
            self._notify()

    def _notify(self) -> None:
        for on_change in self._watchers:
            on_change()
