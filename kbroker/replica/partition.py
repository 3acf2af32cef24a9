"""Partition: one topic-partition on this broker, as leader or follower (Kafka's Partition).

Holds the leadership state the controller gave it (leader, leader epoch, ISR, replicas, partition
epoch), the local log, and the high watermark. As leader it appends client batches and advances
the high watermark to the smallest log end offset in the ISR (this broker alone in single-node
mode); reads are bounded by the high watermark for consumers and by the log end for followers.
It knows its UnifiedLog and nothing of requests or sockets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.api.protocol.errors import Errors
from kbroker.log.errors import LogError
from kbroker.log.validator import AppendOrigin

if TYPE_CHECKING:
    import uuid

    from kbroker.log.unified_log import UnifiedLog

# Fetch isolation levels (FetchIsolation): what a reader may see.
FETCH_LOG_END = 0        # followers
FETCH_HIGH_WATERMARK = 1  # consumers, read_uncommitted
FETCH_TXN_COMMITTED = 2   # consumers, read_committed


class PartitionError(Exception):
    def __init__(self, code: Errors, message: str = "") -> None:
        super().__init__(message or code.name)
        self.code = code


@dataclass(slots=True)
class ReplicaState:
    """What the leader knows of a follower (Kafka's Replica)."""
    broker_id: int
    log_end_offset: int = -1
    last_caught_up_time_ms: int = 0
    last_fetch_leader_log_end_offset: int = -1
    last_fetch_time_ms: int = 0


class Partition:
    def __init__(self, topic: str, partition: int, broker_id: int) -> None:
        self.topic = topic
        self.partition = partition
        self.broker_id = broker_id
        self.topic_id: uuid.UUID | None = None
        self.log: UnifiedLog | None = None
        self.leader_id = -1
        self.leader_epoch = -1
        self.partition_epoch = -1
        self.controller_epoch = -1
        self.isr: list[int] = []
        self.replicas: list[int] = []
        self.remote_replicas: dict[int, ReplicaState] = {}

    def __repr__(self) -> str:
        return f"Partition({self.topic}-{self.partition}, leader={self.leader_id}, epoch={self.leader_epoch})"

    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.broker_id

    # -- leadership (from LeaderAndIsr) ----------------------------------------------------
    def make_leader(self, state: dict, log: UnifiedLog) -> bool:
        """Becomes leader at the state's epoch; returns False if it was already leader at it."""
        was_leader = self.is_leader and self.leader_epoch == state["leader_epoch"]
        self._take_state(state, log)
        now = _now_ms()
        self.remote_replicas = {r: self.remote_replicas.get(r, ReplicaState(r, last_caught_up_time_ms=now))
                                for r in self.replicas if r != self.broker_id}
        log.leader_epoch_cache.assign(self.leader_epoch, log.log_end_offset)
        self.maybe_increment_high_watermark()
        return not was_leader

    def make_follower(self, state: dict, log: UnifiedLog) -> bool:
        changed = self.leader_id != state["leader"] or self.leader_epoch != state["leader_epoch"]
        self._take_state(state, log)
        self.remote_replicas = {}
        return changed

    def _take_state(self, state: dict, log: UnifiedLog) -> None:
        self.log = log
        self.leader_id = state["leader"]
        self.leader_epoch = state["leader_epoch"]
        self.partition_epoch = state["partition_epoch"]
        self.controller_epoch = state["controller_epoch"]
        self.isr = list(state["isr"])
        self.replicas = list(state["replicas"])

    # -- the leader's data path -----------------------------------------------------------
    def check_leader(self, current_leader_epoch: int = -1) -> UnifiedLog:
        """The log if we lead at the epoch the client knows (-1: any), else Kafka's error."""
        if current_leader_epoch >= 0:
            if current_leader_epoch < self.leader_epoch:
                raise PartitionError(Errors.FENCED_LEADER_EPOCH)
            if current_leader_epoch > self.leader_epoch:
                raise PartitionError(Errors.UNKNOWN_LEADER_EPOCH)
        if not self.is_leader or self.log is None:
            raise PartitionError(Errors.NOT_LEADER_OR_FOLLOWER)
        return self.log

    def append_records_to_leader(self, records: memoryview, required_acks: int,
                                 origin: AppendOrigin = AppendOrigin.CLIENT):
        log = self.check_leader()
        min_isr = log.config.min_insync_replicas
        if required_acks == -1 and len(self.isr) < min_isr:
            raise PartitionError(Errors.NOT_ENOUGH_REPLICAS,
                                 f"The size of the current ISR {self.isr} is insufficient to satisfy the "
                                 f"min.isr requirement of {min_isr} for partition {self.topic}-{self.partition}")
        try:
            info = log.append_as_leader(records, self.leader_epoch, origin)
        except LogError as exc:
            raise PartitionError(exc.code, str(exc)) from None
        self.maybe_increment_high_watermark()
        return info

    def maybe_increment_high_watermark(self) -> bool:
        """HW = the smallest log end offset among the ISR (only ever moves forward)."""
        log = self.log
        if log is None or not self.is_leader:
            return False
        new_hw = log.log_end_offset
        for replica_id in self.isr:
            if replica_id != self.broker_id:
                state = self.remote_replicas.get(replica_id)
                new_hw = min(new_hw, state.log_end_offset if state else -1)
        if new_hw > log.high_watermark:
            log.update_high_watermark(new_hw)
            return True
        return False

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark if self.log is not None else -1


def _now_ms() -> int:
    return int(time.time() * 1000)
