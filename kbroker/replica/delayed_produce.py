"""DelayedProduce: an acks=-1 produce waiting until the high watermark covers its appends
(Kafka's DelayedProduce), and ProduceResult, one partition's outcome of a produce.

Each appended partition is pending until its high watermark passes the append's last offset;
then it succeeds if the (maximal) ISR still holds the effective min.insync.replicas, else it gets
NOT_ENOUGH_REPLICAS_AFTER_APPEND (Kafka's checkEnoughReplicasReachOffset). A partition this broker
no longer leads gets NOT_LEADER_OR_FOLLOWER. Partitions still pending when timeout_ms runs out
get REQUEST_TIMED_OUT. It is watched under its pending topic-partitions in ReplicaManager's
produce purgatory, which high watermark moves and leadership changes wake.
It reads partitions through a lookup callable and never touches the ReplicaManager or requests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.protocol.errors import Errors
from kbroker.replica.delayed_operation import DelayedOperation

if TYPE_CHECKING:
    from kbroker.replica.partition import Partition

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class ProduceResult:
    """How an append to one partition went: the error or where the batch landed."""

    error: Errors = Errors.NONE
    base_offset: int = -1
    log_append_time: int = -1
    log_start_offset: int = -1
    message: str | None = None
    last_offset: int = -1
    # (index in the batch, message) of each record that made the log refuse the batch (Produce v8+).
    record_errors: Sequence[tuple[int, str]] = ()


class DelayedProduce(DelayedOperation):
    """Waits for the high watermark of every partition `results` appended to without error;
    the errors are written into `results` in place."""

    def __init__(self, delay_ms: int, results: dict[TopicPartition, ProduceResult],
                 get_partition: Callable[[str, int], Partition | None]) -> None:
        super().__init__(delay_ms)
        self.results = results
        self.get_partition = get_partition
        self.acks_pending = {tp for tp, result in results.items() if result.error == Errors.NONE}

    def try_complete(self) -> bool:
        for tp in list(self.acks_pending):
            error = self._error_once_acknowledged(tp)
            if error is not None:
                self.results[tp].error = error
                self.acks_pending.discard(tp)
        return not self.acks_pending and self.force_complete()

    def _error_once_acknowledged(self, tp: TopicPartition) -> Errors | None:
        """The partition's answer once its append is replicated enough, None while it is not."""
        partition = self.get_partition(*tp)
        if partition is None or not partition.is_leader:
            return Errors.NOT_LEADER_OR_FOLLOWER
        if partition.high_watermark <= self.results[tp].last_offset:
            return None
        if not partition.has_enough_replicas_after_append:
            return Errors.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        return Errors.NONE

    def on_complete(self) -> None:
        for tp in self.acks_pending:  # only an expiry completes with partitions still pending
            self.results[tp].error = Errors.REQUEST_TIMED_OUT
