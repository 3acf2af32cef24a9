"""DelayedFetch: a fetch that found fewer than min_bytes and waits up to max_wait_ms for more
(Kafka's DelayedFetch), with the request and result shapes of one fetched partition.

It is watched under every topic-partition it fetches, in ReplicaManager's fetch purgatory.
Each wake-up counts the bytes now available beyond each partition's fetch offset without
reading the log: the distance in the segment file from where the fetch started
(`start_offset_metadata`, a position the first read found) to the end of what this fetch may
see, capped at the partition's max_bytes. What it may see depends on who fetches: up to the log
end for followers (so appends wake it), up to the high watermark for consumers (so an append
counts only once the high watermark passes it: a high watermark move is a wake-up too), up to
the last stable offset with read_committed. It completes when the count reaches min_bytes, and
at once (to answer with the partition's error or its data) when a partition is gone, led
elsewhere or at another leader epoch, fell below the log start, or grew into a newer segment
than the one the fetch started in (positions in two files cannot be subtracted; the data is
there). On completion it reads every partition once through the `read` callable.
It knows partitions and log positions; never requests, the ReplicaManager or the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from kbroker.protocol.errors import Errors
from kbroker.replica.delayed_operation import DelayedOperation
from kbroker.replica.partition import FETCH_HIGH_WATERMARK, FETCH_LOG_END, PartitionError

if TYPE_CHECKING:
    from kbroker.log.segment import LogOffsetMetadata
    from kbroker.log.unified_log import UnifiedLog
    from kbroker.replica.partition import Partition


@dataclass(slots=True)
class FetchRequestPartition:
    """One partition of a Fetch: where to read and how much."""

    topic: str
    partition: int
    fetch_offset: int
    max_bytes: int
    current_leader_epoch: int = -1
    last_fetched_epoch: int = -1
    log_start_offset: int = -1


@dataclass(slots=True)
class FetchResult:
    """What a read of one partition found: the error or the records, with the partition's offsets."""

    error: Errors = Errors.NONE
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    records: Any = None  # a FileRegion (or None): the bytes to send
    size: int = 0
    aborted_transactions: list | None = None
    diverging_epoch: tuple[int, int] | None = None
    # Where the read started in the log (a DelayedFetch counts bytes from there).
    fetch_offset_metadata: LogOffsetMetadata | None = None


class FetchPartitionStatus(NamedTuple):
    """One partition of a waiting fetch: what was asked and where in the log it starts."""
    request: FetchRequestPartition
    start_offset_metadata: LogOffsetMetadata


class DelayedFetch(DelayedOperation):
    def __init__(self, delay_ms: int, min_bytes: int, isolation: int, statuses: list[FetchPartitionStatus],
                 get_partition: Callable[[str, int], Partition | None],
                 read: Callable[[], list[FetchResult]]) -> None:
        super().__init__(delay_ms)
        self.min_bytes = min_bytes
        self.isolation = isolation
        self.statuses = statuses
        self.get_partition = get_partition
        self.read = read
        self.results: list[FetchResult] = []

    def try_complete(self) -> bool:
        accumulated = 0
        min_bytes = self.min_bytes
        # Counted from the last partition: a follower puts the partitions that got data last in
        # its next fetch (round robin), so the one whose append woke this fetch is usually there
        # and the idle ones before it need no counting. The order changes nothing else: the sum
        # is the same and any partition that must answer now completes the fetch either way.
        for status in reversed(self.statuses):
            available = self._bytes_available(status)
            if available is None:
                return self.force_complete()
            accumulated += available
            if accumulated >= min_bytes:
                # Enough: the rest need not be counted (a fetch of hundreds of partitions is
                # asked at every append to any of them); completing reads every partition anew,
                # so one in error is answered as if counting had reached it.
                return self.force_complete()
        return False

    def _bytes_available(self, status: FetchPartitionStatus) -> int | None:
        """Bytes this fetch could read now from the partition; None when it must answer now."""
        request = status.request
        partition = self.get_partition(request.topic, request.partition)
        if partition is None:
            return None
        try:
            log = partition.check_leader(request.current_leader_epoch)
        except PartitionError:
            return None
        if request.fetch_offset < log.log_start_offset:
            return None
        start = status.start_offset_metadata
        end = self._end_offset_metadata(log)
        if end.message_offset <= start.message_offset:
            return 0
        if end.segment_base_offset != start.segment_base_offset:
            return None
        return min(end.relative_position - start.relative_position, request.max_bytes)

    def _end_offset_metadata(self, log: UnifiedLog) -> LogOffsetMetadata:
        """The end of what this fetch may read, with its position in the log."""
        if self.isolation == FETCH_LOG_END:
            return log.log_end_offset_metadata
        bound = log.high_watermark if self.isolation == FETCH_HIGH_WATERMARK else log.last_stable_offset
        return log.convert_to_offset_metadata(bound)

    def on_complete(self) -> None:
        self.results = self.read()
