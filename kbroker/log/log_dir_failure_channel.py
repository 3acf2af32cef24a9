"""LogDirFailureChannel (Kafka's name): where the log reports a log directory that failed.

Any OSError from writing, flushing, rolling or creating a segment, index, checkpoint or producer
snapshot (ENOSPC, EIO, EROFS, ...) is reported here with the directory it happened in
(`maybe_add_offline_log_dir`). The directory is offline from that moment: the log refuses
further work in it with KafkaStorageException (KAFKA_STORAGE_ERROR). Each directory is reported
once, in one log line, and queued for the broker's failure handler
(`take_next_offline_log_dir`), which takes its partitions offline, tells the controller and
halts the broker when no directory is left (kbroker/server.py).
Plain code on the event loop: no knowledge of partitions, requests or ZooKeeper.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("kbroker.log")


class LogDirFailureChannel:
    def __init__(self) -> None:
        self.offline_log_dirs: set[str] = set()
        self._queue: asyncio.Queue[str] = asyncio.Queue()  # bound to a loop only when awaited

    def has_offline_log_dir(self, log_dir: str) -> bool:
        return log_dir in self.offline_log_dirs

    def maybe_add_offline_log_dir(self, log_dir: str, message: str, error: BaseException) -> None:
        """Mark `log_dir` offline (once: later errors from the same directory are expected)."""
        if log_dir in self.offline_log_dirs:
            return
        self.offline_log_dirs.add(log_dir)
        log.error("%s: %s; log directory %s is offline", message, error, log_dir)
        self._queue.put_nowait(log_dir)

    async def take_next_offline_log_dir(self) -> str:
        """The next directory that went offline, in order (waits for one)."""
        return await self._queue.get()
