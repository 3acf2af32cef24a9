"""ReplicaAlterLogDirsManager: moves replicas between the log dirs of this broker.

Kafka's ReplicaAlterLogDirsManager runs ReplicaAlterLogDirsThreads that fetch from the local
current log like a replica fetcher and append to the partition's future log (LogManager's
`future_logs`, `<topic>-<p>.<uuid>-future` in the destination dir). Here one asyncio task per
moving partition does the same in bounded steps (`step`): read at most `step_bytes` of whole
batches from the current log at the future log's end, append them as they are
(`append_as_follower`: offsets, epochs and producer state kept), follow the current log's high
watermark, log start and truncations, and once the future log's end offset equals the current
one's, swap them (LogManager.replace_current_with_future_log). A step never awaits, so on the one
event loop no produce, fetch or follower append runs between the last copy and the swap (Kafka
holds the partition's lock for that). Produce and fetch keep using the current log until then.

A destination dir that fails ends the move (its LogDirFailureChannel report drops the future
log; the current replica keeps serving); a current dir that fails takes the partition offline
and ends the move too. A `-future` dir found at start-up is resumed when the partition is hosted
again (ReplicaManager). It knows logs only; the ReplicaManager hands the new log to its partition.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from kbroker.log.errors import KafkaStorageException, LogError
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.log.log_manager import LogManager
    from kbroker.log.unified_log import UnifiedLog

log = logging.getLogger("kbroker.replica.alter_log_dirs")

TopicPartition = tuple[str, int]

# What one step copies at most: Kafka's replica.fetch.max.bytes default; a step of this size
# reads, checks and writes in about a millisecond, so produce and fetch wait no longer.
DEFAULT_STEP_BYTES = 1024 * 1024
# How long a caught-up-but-not-equal move (nothing readable yet) waits before looking again.
IDLE_BACKOFF_S = 0.05
_BASE_OFFSET_BYTES = 8  # a batch opens with its base offset, int64 big-endian


class StepResult(enum.Enum):
    COPIED = "copied"  # some batches moved; more may follow at once
    WAITING = "waiting"  # nothing to copy right now
    REPLACED = "replaced"  # the future log is the current log now: the move is done
    STOPPED = "stopped"  # the move cannot go on (a dir failed, the log is gone)


class ReplicaAlterLogDirsManager:
    """The moves in progress, one task each. `on_replaced(tp, log)` is told of each swap, so the
    partition serves from the new log (the ReplicaManager's)."""

    def __init__(self, log_manager: LogManager, on_replaced: Callable[[TopicPartition, UnifiedLog], None],
                 step_bytes: int = DEFAULT_STEP_BYTES) -> None:
        self.log_manager = log_manager
        self.on_replaced = on_replaced
        self.step_bytes = step_bytes
        self._tasks: dict[TopicPartition, asyncio.Task] = {}
        # The current log's truncation count the future log last followed.
        self._seen_truncations: dict[TopicPartition, int] = {}

    def add_fetcher_for_partition(self, tp: TopicPartition) -> None:
        """Start (or keep) moving `tp` into its future log; needs a running event loop."""
        task = self._tasks.get(tp)
        if task is not None and not task.done():
            return
        self._tasks[tp] = asyncio.get_running_loop().create_task(self._run(tp), name=f"alter-log-dirs-{tp[0]}-{tp[1]}")

    def remove_fetcher_for_partitions(self, tps: list[TopicPartition]) -> None:
        """Stop moving these partitions (their future logs stay where they are)."""
        for tp in tps:
            task = self._tasks.pop(tp, None)
            if task is not None:
                task.cancel()
            self._seen_truncations.pop(tp, None)

    def is_moving(self, tp: TopicPartition) -> bool:
        task = self._tasks.get(tp)
        return task is not None and not task.done()

    async def close(self) -> None:
        """Shutdown, before the logs close: every move stops where it is (resumed at the next start)."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, tp: TopicPartition) -> None:
        try:
            while True:
                result = self.step(tp)
                if result in (StepResult.REPLACED, StepResult.STOPPED):
                    return
                await asyncio.sleep(0 if result is StepResult.COPIED else IDLE_BACKOFF_S)
        finally:
            if self._tasks.get(tp) is asyncio.current_task():
                del self._tasks[tp]
                self._seen_truncations.pop(tp, None)

    # -- one bounded step --------------------------------------------------------------------
    def step(self, tp: TopicPartition) -> StepResult:
        """Copy at most `step_bytes` from the current log into the future log, and swap them once
        the future log has caught up. Never awaits: the swap sees exactly the copied log."""
        current = self.log_manager.get_log(*tp)
        future = self.log_manager.get_future_log(*tp)
        if current is None or future is None:
            return StepResult.STOPPED
        try:
            self._follow_truncations(tp, current, future)
            copied = self._copy(current, future)
            self._follow_offsets(current, future)
            if future.log_end_offset != current.log_end_offset:
                return StepResult.COPIED if copied else StepResult.WAITING
            self._copy_leader_epochs(current, future)
            replaced = self.log_manager.replace_current_with_future_log(*tp)
        except KafkaStorageException as error:  # reported to the LogDirFailureChannel where it happened
            log.warning("the move of %s-%d to another log dir stopped: %s", tp[0], tp[1], error.message)
            return StepResult.STOPPED
        except LogError as error:
            if error.code == Errors.OFFSET_OUT_OF_RANGE:  # retention moved the current log on: next step
                return StepResult.WAITING
            log.error("the move of %s-%d to another log dir failed: %r", tp[0], tp[1], error)
            return StepResult.STOPPED
        except Exception:
            log.exception("the move of %s-%d to another log dir failed", tp[0], tp[1])
            return StepResult.STOPPED
        self._seen_truncations.pop(tp, None)
        self.on_replaced(tp, replaced)
        return StepResult.REPLACED

    def _copy(self, current: UnifiedLog, future: UnifiedLog) -> bool:
        """Append the batches at the future log's end (whole ones, at most step_bytes unless one
        batch is larger); True if any were."""
        if future.log_end_offset < current.log_start_offset:  # what it would copy next is gone
            future.truncate_fully_and_start_at(current.log_start_offset)
        if future.log_end_offset >= current.log_end_offset:
            return False
        read = current.read(future.log_end_offset, self.step_bytes, max_offset=None, min_one_message=True)
        if read.records is None or read.size == 0:
            return False
        data = read.read_bytes()
        base_offset = int.from_bytes(data[:_BASE_OFFSET_BYTES], "big", signed=True)
        if base_offset < future.log_end_offset and future.size == 0:
            # The current log starts inside a batch (DeleteRecords, retention): Kafka's follower
            # starts its log at that batch's base offset and moves its log start up after it.
            future.truncate_fully_and_start_at(base_offset)
        future.append_as_follower(data)
        return True

    @staticmethod
    def _follow_offsets(current: UnifiedLog, future: UnifiedLog) -> None:
        """The future log's high watermark and log start follow the current log's, as a follower's
        follow its leader's (never past what it holds)."""
        future.update_high_watermark(current.high_watermark)
        start = min(current.log_start_offset, future.high_watermark)
        if start > future.log_start_offset:
            future.maybe_increment_log_start_offset(start)

    def _follow_truncations(self, tp: TopicPartition, current: UnifiedLog, future: UnifiedLog) -> None:
        """A current log truncated since the last step (a follower diverging from its leader)
        makes the future log drop what it copied past the divergence, found by leader epoch as
        the alter-log-dirs thread finds it (OffsetsForLeaderEpoch on the local log). A future log
        longer than the current one is cut to it in any case."""
        count = current.truncation_count
        seen = self._seen_truncations.get(tp)
        self._seen_truncations[tp] = count
        # The first step checks too: a move resumed at start-up may find a current log truncated
        # and rewritten while the broker was down.
        if (seen is None or count != seen) and future.size > 0:
            latest = future.leader_epoch_cache.latest_epoch()
            epoch, end = current.end_offset_for_epoch(latest) if latest is not None else (-1, -1)
            if epoch < 0 or end < future.log_start_offset:  # no common history to keep: start over
                future.truncate_fully_and_start_at(current.log_start_offset)
                return
            future.truncate_to(min(end, future.log_end_offset))
        if future.log_end_offset > current.log_end_offset:
            future.truncate_to(current.log_end_offset)

    @staticmethod
    def _copy_leader_epochs(current: UnifiedLog, future: UnifiedLog) -> None:
        """Epochs the current log started with no batch yet (a new leader's epoch begins at its
        log end) are not in any copied batch: the future log takes them before the swap."""
        latest = future.leader_epoch_cache.latest_epoch()
        for entry in current.leader_epoch_cache.entries:
            if latest is None or entry.epoch > latest:
                future.leader_epoch_cache.assign(entry.epoch, entry.start_offset)
