"""Partition: one topic-partition on this broker, as leader or follower (Kafka's Partition).

Holds the leadership state the controller gave it (leader, leader epoch, ISR, replicas, partition
epoch), the local log, and the high watermark.
- As leader it appends client batches, tracks each follower's fetch position (Kafka's Replica:
  log end offset, lastCaughtUpTimeMs), answers followers' divergence checks from the leader epoch
  cache, proposes ISR expansions and shrinks (one in flight at a time, Kafka's "pending ISR"
  states; the high watermark honours the larger of the committed and proposed ISRs while one is
  in flight), and advances the high watermark to the smallest log end offset among them. From
  Kafka 3.7 the high watermark stands still while the ISR is smaller than
  min(min.insync.replicas, replica count). acks=all appends under that minimum are refused
  with NOT_ENOUGH_REPLICAS, and (unlike Kafka, which answers OUT_OF_ORDER_SEQUENCE_NUMBER) so is
  an idempotent producer's later batch whose only fault is the gap such a refusal left: that
  answer makes librdkafka bump its epoch and write again a batch that was written but never
  acknowledged (`refused_for_min_isr`).
- As follower it only keeps the state; the replica fetcher moves its log.
Reads are bounded by the high watermark for consumers and by the log end for followers.
It knows its UnifiedLog and nothing of requests, sockets or the controller: ISR changes are
returned to the caller (ReplicaManager), which sends them and hands the answer back.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.log.append_origin import AppendOrigin
from kbroker.log.errors import LogError
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    import uuid

    from kbroker.log.producer_state import VerificationGuard
    from kbroker.log.segment import TimestampAndOffset
    from kbroker.log.unified_log import UnifiedLog
    from kbroker.log.validator import PreparedRecords
    from kbroker.protocol.message_types import AlterPartitionResponsePartitionData

log = logging.getLogger("kbroker.replica.partition")

# Fetch isolation levels (FetchIsolation): what a reader may see.
FETCH_LOG_END = 0        # followers
FETCH_HIGH_WATERMARK = 1  # consumers, read_uncommitted
FETCH_TXN_COMMITTED = 2   # consumers, read_committed

DEFAULT_REPLICA_LAG_TIME_MAX_MS = 30000
UNKNOWN_OFFSET = -1

# A v2 batch's magic, and its producer id, epoch and base sequence (fixed positions in the header).
_MAGIC_AT = 16
_PRODUCER_FIELDS = struct.Struct(">qhi")
_PRODUCER_FIELDS_AT = 43
_NO_PRODUCER_ID = -1
# Producers whose batch was refused for the min ISR that this partition keeps in mind (see
# Partition.refused_for_min_isr); more than this are dropped oldest first.
MAX_REFUSED_PRODUCERS = 1000

# AlterPartition answers after which the leader drops its proposal and keeps the committed ISR:
# the controller says the request was not applied and the partition epoch is right.
_ALTER_PARTITION_REJECTED = frozenset({Errors.OPERATION_NOT_ATTEMPTED, Errors.INELIGIBLE_REPLICA})
# Answers after which the proposal stays pending until a LeaderAndIsr replaces the state.
_ALTER_PARTITION_AWAIT_METADATA = frozenset({
    Errors.UNKNOWN_TOPIC_OR_PARTITION, Errors.UNKNOWN_TOPIC_ID, Errors.FENCED_LEADER_EPOCH,
    Errors.INVALID_UPDATE_VERSION, Errors.INVALID_REQUEST, Errors.NEW_LEADER_ELECTED})


class PartitionError(Exception):
    """A refused partition operation as Kafka's error; `record_errors` name the records the log
    refused, as (index in the batch, message)."""

    def __init__(self, code: Errors, message: str = "", record_errors: Sequence[tuple[int, str]] = ()) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.record_errors = record_errors


@dataclass(slots=True)
class ReplicaState:
    """What the leader knows of a follower (Kafka's Replica and ReplicaState)."""
    broker_id: int
    log_end_offset: int = UNKNOWN_OFFSET
    last_caught_up_time_ms: int = 0
    last_fetch_leader_log_end_offset: int = UNKNOWN_OFFSET
    last_fetch_time_ms: int = 0
    log_start_offset: int = UNKNOWN_OFFSET
    broker_epoch: int = -1

    def is_caught_up(self, leader_end_offset: int, now_ms: int, max_lag_ms: int) -> bool:
        return leader_end_offset == self.log_end_offset or now_ms - self.last_caught_up_time_ms <= max_lag_ms

    def update_fetch_state(self, fetch_offset: int, log_start_offset: int, fetch_time_ms: int,
                           leader_end_offset: int, broker_epoch: int) -> None:
        """A fetch at `fetch_offset` arrived when the leader's log ended at `leader_end_offset`.
        lastCaughtUpTimeMs is the latest time at which the follower had everything the leader
        had: now if it fetches from the leader's end, else the previous fetch's time if it has
        reached what the leader had then."""
        if fetch_offset >= leader_end_offset:
            self.last_caught_up_time_ms = max(self.last_caught_up_time_ms, fetch_time_ms)
        elif fetch_offset >= self.last_fetch_leader_log_end_offset:
            self.last_caught_up_time_ms = max(self.last_caught_up_time_ms, self.last_fetch_time_ms)
        self.log_start_offset = log_start_offset
        self.log_end_offset = fetch_offset
        self.last_fetch_leader_log_end_offset = leader_end_offset
        self.last_fetch_time_ms = fetch_time_ms
        self.broker_epoch = broker_epoch

    def reset(self, now_ms: int, leader_end_offset: int, is_new_leader: bool, in_sync: bool) -> None:
        """A new leader epoch (Kafka's resetReplicaState): ISR members count as caught up now,
        the others as never, so they neither hold back the high watermark nor rejoin before
        they fetch. A broker that just became leader knows nothing of the follower's log."""
        self.last_caught_up_time_ms = now_ms if in_sync else 0
        if is_new_leader:
            self.log_start_offset = UNKNOWN_OFFSET
            self.log_end_offset = UNKNOWN_OFFSET
            self.last_fetch_leader_log_end_offset = UNKNOWN_OFFSET
            self.last_fetch_time_ms = 0
            self.broker_epoch = -1
        else:
            self.last_fetch_leader_log_end_offset = leader_end_offset
            self.last_fetch_time_ms = now_ms if in_sync else 0


@dataclass(slots=True)
class PendingIsrChange:
    """An ISR change sent to the controller and not answered yet (Kafka's PendingExpandIsr /
    PendingShrinkIsr). `maximal_isr` is what the high watermark must wait for meanwhile: the
    committed ISR plus any replica being added."""
    new_isr: list[int]
    last_committed_isr: list[int]
    leader_epoch: int
    partition_epoch: int
    leader_recovery_state: int = 0

    @property
    def maximal_isr(self) -> list[int]:
        return self.last_committed_isr + [r for r in self.new_isr if r not in self.last_committed_isr]

    @property
    def is_expand(self) -> bool:
        return len(self.new_isr) > len(self.last_committed_isr)


class Partition:
    def __init__(self, topic: str, partition: int, broker_id: int, *,
                 replica_lag_time_max_ms: int = DEFAULT_REPLICA_LAG_TIME_MAX_MS,
                 is_replica_eligible: Callable[[int], bool] | None = None,
                 time_ms: Callable[[], int] | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.broker_id = broker_id
        self.replica_lag_time_max_ms = replica_lag_time_max_ms
        # Kafka's isReplicaIsrEligible: in ZooKeeper mode, "the broker is alive".
        self.is_replica_eligible = is_replica_eligible or (lambda _broker_id: True)
        self.time_ms = time_ms or _now_ms
        self.topic_id: uuid.UUID | None = None
        self.log: UnifiedLog | None = None
        self.leader_id = -1
        self.leader_epoch = -1
        self.leader_epoch_start_offset: int | None = None
        self.partition_epoch = -1
        self.controller_epoch = -1
        self.leader_recovery_state = 0
        self.isr: list[int] = []  # the committed ISR
        self.pending_isr_change: PendingIsrChange | None = None
        self.replicas: list[int] = []
        self.remote_replicas: dict[int, ReplicaState] = {}
        # Idempotent producer id -> (epoch, base sequence) of its batch this leader refused with
        # NOT_ENOUGH_REPLICAS and has not appended since (`_refusal_for_gap`).
        self.refused_for_min_isr: dict[int, tuple[int, int]] = {}

    def __repr__(self) -> str:
        return f"Partition({self.topic}-{self.partition}, leader={self.leader_id}, epoch={self.leader_epoch})"

    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.broker_id

    @property
    def maximal_isr(self) -> list[int]:
        pending = self.pending_isr_change
        return pending.maximal_isr if pending is not None else self.isr

    # -- leadership (from LeaderAndIsr) ----------------------------------------------------
    def make_leader(self, state: dict, log: UnifiedLog, now_ms: int | None = None) -> bool:
        """Becomes (or stays) leader with the state's ISR; returns True if the leader epoch is
        new. A new epoch starts at the log end offset (recorded in the leader epoch cache, so
        followers with entries of later epochs can find where to truncate) and resets what we
        know of followers. A state older than ours (partition epoch) is ignored."""
        if state["partition_epoch"] < self.partition_epoch:
            _log_skipped_state(self, state)
            return False
        now = self.time_ms() if now_ms is None else now_ms
        is_new_leader = not self.is_leader
        is_new_epoch = state["leader_epoch"] > self.leader_epoch
        self._take_state(state, log)
        self.remote_replicas = {r: self.remote_replicas.get(r) or ReplicaState(r)
                                for r in self.replicas if r != self.broker_id}
        if is_new_epoch or is_new_leader:
            start = log.log_end_offset
            log.leader_epoch_cache.assign(state["leader_epoch"], start)
            for replica in self.remote_replicas.values():
                replica.reset(now, start, is_new_leader, replica.broker_id in self.isr)
            self.leader_epoch_start_offset = start
        self.leader_id = self.broker_id
        self.maybe_increment_high_watermark(now)
        return is_new_epoch

    def make_follower(self, state: dict, log: UnifiedLog) -> bool:
        """Follows the state's leader; returns True if the fetcher must (re)start, i.e. the
        leader epoch is new (the leader may be the same broker). The log is not truncated here:
        the first fetch's divergence check (leader epochs) decides that."""
        if state["partition_epoch"] < self.partition_epoch:
            _log_skipped_state(self, state)
            return False
        is_new_epoch = state["leader_epoch"] > self.leader_epoch or state["leader"] != self.leader_id
        self._take_state(state, log)
        self.leader_epoch_start_offset = None
        self.remote_replicas = {}
        return is_new_epoch

    def _take_state(self, state: dict, log: UnifiedLog) -> None:
        if state["leader_epoch"] != self.leader_epoch or state["leader"] != self.leader_id:
            self.refused_for_min_isr.clear()  # clients start over with this leader and epoch
        self.log = log
        self.leader_id = state["leader"]
        self.leader_epoch = state["leader_epoch"]
        self.partition_epoch = state["partition_epoch"]
        self.controller_epoch = state["controller_epoch"]
        self.leader_recovery_state = state.get("leader_recovery_state", 0)
        self.isr = list(state["isr"])
        self.pending_isr_change = None
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
                                 origin: AppendOrigin = AppendOrigin.CLIENT,
                                 verification_guard: VerificationGuard | None = None,
                                 prepared: PreparedRecords | None = None):
        log = self.check_leader()
        if required_acks == -1 and len(self.isr) < (min_isr := self.effective_min_isr):
            self._note_refused_for_min_isr(records, log)
            raise PartitionError(Errors.NOT_ENOUGH_REPLICAS, self._min_isr_message(min_isr))
        try:
            # Positional: append_as_leader's I/O guard passes *args on, and keywords cost a dict per call.
            info = log.append_as_leader(records, self.leader_epoch, origin, None, verification_guard, prepared)
        except LogError as exc:
            if exc.code == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER and self._refusal_for_gap(records, log):
                raise PartitionError(Errors.NOT_ENOUGH_REPLICAS, self._min_isr_message(self.effective_min_isr)) from None
            raise PartitionError(exc.code, str(exc), exc.record_errors) from None
        if self.refused_for_min_isr:
            self._forget_refusal(records)
        self.maybe_increment_high_watermark()
        return info

    def _min_isr_message(self, min_isr: int) -> str:
        return (f"The size of the current ISR {self.isr} is insufficient to satisfy the "
                f"min.isr requirement of {min_isr} for partition {self.topic}-{self.partition}")

    # -- refusals for the min ISR (idempotent producers) -----------------------------------------
    # librdkafka takes NOT_ENOUGH_REPLICAS as "not persisted". When a later in-flight batch of the
    # same producer then arrives after the ISR has grown back, Kafka answers it
    # OUT_OF_ORDER_SEQUENCE_NUMBER (the refused batch left a gap); librdkafka then bumps its
    # epoch and renumbers every unacknowledged message, including an earlier batch that WAS
    # written but whose answer was a timeout (the ISR shrank under it): that batch is written
    # twice (issue 16's chaos duplicates, traced with librdkafka's eos log: REQUEST_TIMED_OUT for
    # seq 476, NOT_ENOUGH_REPLICAS for 477, OUT_OF_ORDER for 478, epoch bump, 476 again as seq 0).
    # So a batch whose only fault is the gap this leader's own refusal left is refused the same
    # way: the client retries the refused batch and this one in order, with no epoch bump.
    @staticmethod
    def _producer_fields(records: memoryview) -> tuple[int, int, int] | None:
        """(producer id, epoch, base sequence) of an idempotent v2 batch, else None."""
        if len(records) < _PRODUCER_FIELDS_AT + _PRODUCER_FIELDS.size or records[_MAGIC_AT] != 2:
            return None
        fields = _PRODUCER_FIELDS.unpack_from(records, _PRODUCER_FIELDS_AT)
        return fields if fields[0] != _NO_PRODUCER_ID else None

    def _note_refused_for_min_isr(self, records: memoryview, log: UnifiedLog) -> None:
        fields = self._producer_fields(records)
        if fields is None:
            return
        producer_id, epoch, base_sequence = fields
        entry = log.producer_state_manager.last_entry(producer_id)
        if entry is not None and entry.producer_epoch == epoch and base_sequence <= entry.last_seq:
            return  # the retry of a batch already written: it leaves no gap
        earlier = self.refused_for_min_isr.get(producer_id)
        if earlier is not None and earlier[0] == epoch and earlier[1] <= base_sequence:
            return  # the gap starts at the earlier refusal
        self.refused_for_min_isr.pop(producer_id, None)
        self.refused_for_min_isr[producer_id] = (epoch, base_sequence)
        if len(self.refused_for_min_isr) > MAX_REFUSED_PRODUCERS:
            del self.refused_for_min_isr[next(iter(self.refused_for_min_isr))]

    def _refusal_for_gap(self, records: memoryview, log: UnifiedLog) -> bool:
        """Whether an out-of-order batch's gap begins exactly at a batch we refused for the min ISR."""
        fields = self._producer_fields(records)
        if fields is None:
            return False
        producer_id, epoch, base_sequence = fields
        refused = self.refused_for_min_isr.get(producer_id)
        entry = log.producer_state_manager.last_entry(producer_id)
        if refused is None or entry is None or refused[0] != epoch or entry.producer_epoch != epoch:
            return False
        return entry.last_seq + 1 == refused[1] < base_sequence

    def _forget_refusal(self, records: memoryview) -> None:
        """An appended batch of the producer fills the gap (or starts a new epoch)."""
        fields = self._producer_fields(records)
        if fields is not None:
            self.refused_for_min_isr.pop(fields[0], None)

    @property
    def effective_min_isr(self) -> int:
        """min(min.insync.replicas, replica count) (Kafka 3.7), so a topic with fewer replicas
        than min.insync.replicas is not stuck."""
        return min(self.log.config.min_insync_replicas, len(self.remote_replicas) + 1) if self.log else 1

    @property
    def is_under_min_isr(self) -> bool:
        return self.log is not None and self.is_leader and len(self.isr) < self.effective_min_isr

    @property
    def has_enough_replicas_after_append(self) -> bool:
        """DelayedProduce's last check (checkEnoughReplicasReachOffset): once the high watermark
        covers an acks=-1 append, the (maximal) ISR must still hold the effective minimum."""
        return len(self.maximal_isr) >= self.effective_min_isr

    def maybe_increment_high_watermark(self, now_ms: int | None = None) -> bool:
        """HW = the smallest log end offset among the (maximal) ISR and the followers that are
        caught up and eligible to join it; only ever moves forward. True if it moved."""
        log = self.log
        if log is None or not self.is_leader or self.is_under_min_isr:
            return False
        leader_end = log.log_end_offset
        new_hw = leader_end
        now = now_ms
        maximal_isr = self.maximal_isr
        for replica in self.remote_replicas.values():
            if replica.log_end_offset >= new_hw:
                continue
            if now is None:  # read once, and only when a follower lags (not for a single replica)
                now = self.time_ms()
            if replica.broker_id in maximal_isr or (
                    replica.is_caught_up(leader_end, now, self.replica_lag_time_max_ms)
                    and self.is_replica_eligible(replica.broker_id)):
                new_hw = replica.log_end_offset
        return log.maybe_increment_high_watermark(new_hw)

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark if self.log is not None else -1

    # -- followers' fetches (leader side) -----------------------------------------------------
    def follower_replica(self, replica_id: int, current_leader_epoch: int) -> ReplicaState:
        """The follower's state, or Kafka's error for a replica outside the assignment."""
        replica = self.remote_replicas.get(replica_id)
        if replica is None:
            # With an epoch the pair (replica, epoch) is merely not known yet: the follower retries.
            raise PartitionError(Errors.UNKNOWN_LEADER_EPOCH if current_leader_epoch >= 0
                                 else Errors.NOT_LEADER_OR_FOLLOWER)
        return replica

    @staticmethod
    def diverging_epoch(log: UnifiedLog, last_fetched_epoch: int, fetch_offset: int) -> tuple[int, int] | None:
        """Fetch v12+'s divergence check on the leader's `log` (check_leader's): (epoch, end
        offset) where the follower's log leaves ours, or None when its last fetched epoch ends at
        or after its fetch offset here. OFFSET_OUT_OF_RANGE if we cannot place the epoch or the
        offset is below our log start."""
        epoch, end_offset = log.end_offset_for_epoch(last_fetched_epoch)
        if epoch < 0 or end_offset < 0:
            raise PartitionError(Errors.OFFSET_OUT_OF_RANGE,
                                 f"could not determine the end offset of the last fetched epoch {last_fetched_epoch}")
        if fetch_offset < log.log_start_offset:
            raise PartitionError(Errors.OFFSET_OUT_OF_RANGE,
                                 f"offset {fetch_offset} is below the log start offset {log.log_start_offset}")
        if epoch < last_fetched_epoch or end_offset < fetch_offset:
            return epoch, end_offset
        return None

    def update_follower_fetch_state(self, replica: ReplicaState, fetch_offset: int, follower_log_start_offset: int,
                                    fetch_time_ms: int, leader_end_offset: int,
                                    broker_epoch: int = -1) -> tuple[bool, PendingIsrChange | None]:
        """Records a follower's fetch (Kafka's updateFollowerFetchState). Returns whether the
        high watermark moved and the ISR expansion to send, if the follower has caught up."""
        previous_end = replica.log_end_offset
        replica.update_fetch_state(fetch_offset, follower_log_start_offset, fetch_time_ms, leader_end_offset,
                                   broker_epoch)
        expansion = self.maybe_expand_isr(replica)
        hw_moved = replica.log_end_offset != previous_end and self.maybe_increment_high_watermark(fetch_time_ms)
        return hw_moved, expansion

    # -- ISR changes ---------------------------------------------------------------------------
    def maybe_expand_isr(self, replica: ReplicaState) -> PendingIsrChange | None:
        """A follower outside the ISR that reached the high watermark and the start of the
        current leader epoch joins it (proposed to the controller; one change at a time)."""
        log = self.log
        if (log is None or not self.is_leader or self.pending_isr_change is not None
                or replica.broker_id in self.isr or not self.is_replica_eligible(replica.broker_id)):
            return None
        start = self.leader_epoch_start_offset
        if replica.log_end_offset < log.high_watermark or start is None or replica.log_end_offset < start:
            return None
        return self._propose_isr(self.isr + [replica.broker_id])

    def out_of_sync_replicas(self, now_ms: int) -> list[int]:
        """ISR followers that have not been caught up for replica.lag.time.max.ms."""
        if self.log is None or not self.is_leader or self.pending_isr_change is not None:
            return []
        leader_end = self.log.log_end_offset
        out = []
        for broker_id in self.isr:
            if broker_id == self.broker_id:
                continue
            replica = self.remote_replicas.get(broker_id)
            if replica is None or not replica.is_caught_up(leader_end, now_ms, self.replica_lag_time_max_ms):
                out.append(broker_id)
        return out

    def maybe_shrink_isr(self, now_ms: int | None = None) -> PendingIsrChange | None:
        """Proposes the ISR without the followers that fell behind (Kafka's maybeShrinkIsr)."""
        now = self.time_ms() if now_ms is None else now_ms
        out_of_sync = self.out_of_sync_replicas(now)
        unified_log = self.log
        if not out_of_sync or unified_log is None:  # out_of_sync_replicas finds none without a log
            return None
        log.info("shrinking ISR of %s-%d from %s: out of sync %s (high watermark %d, log end %d)", self.topic,
                 self.partition, self.isr, out_of_sync, unified_log.high_watermark, unified_log.log_end_offset)
        return self._propose_isr([r for r in self.isr if r not in out_of_sync])

    def _propose_isr(self, new_isr: list[int]) -> PendingIsrChange:
        self.pending_isr_change = PendingIsrChange(new_isr, list(self.isr), self.leader_epoch, self.partition_epoch,
                                                   self.leader_recovery_state)
        return self.pending_isr_change

    def on_alter_partition_response(self, change: PendingIsrChange, error: Errors,
                                    response: AlterPartitionResponsePartitionData | None = None) -> tuple[bool, bool]:
        """The controller's answer to `change` (its partition entry, which comes with every
        NONE). Returns (high watermark moved, send the change again)."""
        if self.pending_isr_change is not change:
            return False, False  # a LeaderAndIsr replaced the state meanwhile: the answer is stale
        if error == Errors.NONE and response is not None:
            return self._commit_isr(response), False
        if error in _ALTER_PARTITION_REJECTED:
            log.info("ISR change of %s-%d to %s rejected (%s): keeping %s", self.topic, self.partition,
                     change.new_isr, error.name, self.isr)
            self.pending_isr_change = None
            # The high watermark waited for the maximal ISR, rejected members included; it may
            # move now, and no follower fetch would look again once every follower is caught up
            # (acks=all producers then wait until the rejected broker comes back).
            return self.maybe_increment_high_watermark(), False
        if error in _ALTER_PARTITION_AWAIT_METADATA:
            log.info("ISR change of %s-%d to %s failed (%s): waiting for new partition state", self.topic,
                     self.partition, change.new_isr, error.name)
            return False, False
        log.warning("ISR change of %s-%d to %s failed (%s): retrying", self.topic, self.partition, change.new_isr,
                    error.name)
        return False, True

    def _commit_isr(self, response: AlterPartitionResponsePartitionData) -> bool:
        if response["leader_epoch"] != self.leader_epoch or response["partition_epoch"] < self.partition_epoch:
            log.info("ignoring ISR %s of %s-%d at leader epoch %d, partition epoch %d (ours: %d, %d)",
                     response["isr"], self.topic, self.partition, response["leader_epoch"],
                     response["partition_epoch"], self.leader_epoch, self.partition_epoch)
            return False
        self.isr = list(response["isr"])
        self.partition_epoch = response["partition_epoch"]
        self.leader_recovery_state = response.get("leader_recovery_state", self.leader_recovery_state)
        self.pending_isr_change = None
        log.info("ISR of %s-%d is now %s (partition epoch %d)%s", self.topic, self.partition, self.isr,
                 self.partition_epoch, " (under min ISR)" if self.is_under_min_isr else "")
        return self.maybe_increment_high_watermark()

    # -- offsets by timestamp and by leader epoch (ListOffsets, OffsetForLeaderEpoch) ----------
    def fetch_offset_for_timestamp(self, timestamp: int, isolation: int | None,
                                   current_leader_epoch: int = -1) -> TimestampAndOffset | None:
        """ListOffsets on the leader (Kafka's fetchOffsetForTimestamp). `isolation` is None for a
        replica, which sees the log end, else the consumer's FETCH_HIGH_WATERMARK or
        FETCH_TXN_COMMITTED. Returns None when no record qualifies. Raises PartitionError: the
        leadership errors of check_leader, and OFFSET_NOT_AVAILABLE for a consumer while this
        new leader's high watermark is below its epoch's start offset (Kafka's rule)."""
        from kbroker.log.records import NO_TIMESTAMP  # the log modules are loaded with the first log
        from kbroker.log.segment import TimestampAndOffset
        from kbroker.log.unified_log import EARLIEST_LOCAL_TIMESTAMP, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP

        log = self.check_leader(current_leader_epoch)
        epoch_start = self.leader_epoch_start_offset
        if isolation is not None and epoch_start is not None and log.high_watermark < epoch_start:
            raise PartitionError(Errors.OFFSET_NOT_AVAILABLE)
        # Consumers see the high watermark (read_committed: the last stable offset), not the log end.
        if isolation is None:
            last_fetchable = log.log_end_offset
        else:
            last_fetchable = log.last_stable_offset if isolation == FETCH_TXN_COMMITTED else log.high_watermark
        if timestamp == LATEST_TIMESTAMP and isolation is not None:
            epoch = (log.leader_epoch_cache.epoch_for_offset(last_fetchable - 1)
                     if last_fetchable > log.log_start_offset else self.leader_epoch)
            return TimestampAndOffset(NO_TIMESTAMP, last_fetchable, epoch)
        try:
            found = log.fetch_offset_by_timestamp(timestamp)
        except LogError as exc:  # KAFKA_STORAGE_ERROR: the log's directory failed
            raise PartitionError(exc.code, str(exc)) from None
        if found is None or (timestamp not in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP, LATEST_TIMESTAMP)
                             and found.offset >= last_fetchable):
            return None  # a record a consumer may not read yet is not found by its timestamp (nor -3's max)
        return found

    def legacy_fetch_offsets_for_timestamp(self, timestamp: int, max_num_offsets: int,
                                           from_consumer: bool) -> list[int]:
        """ListOffsets v0 on the leader (Kafka's legacyFetchOffsetsForTimestamp): the log's
        offsets before `timestamp`; a consumer sees none above the high watermark, which
        stands first instead. Raises the PartitionError of check_leader."""
        log = self.check_leader()
        offsets = log.legacy_fetch_offsets_before(timestamp, max_num_offsets)
        high_watermark = log.high_watermark
        if not from_consumer or all(offset <= high_watermark for offset in offsets):
            return offsets
        return [high_watermark] + [offset for offset in offsets if offset <= high_watermark]

    def last_offset_for_leader_epoch(self, current_leader_epoch: int, leader_epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch on the leader: (the largest epoch <= leader_epoch, where it ends),
        the end being the log end for the latest epoch; (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        for an epoch newer than all. Raises the PartitionError of check_leader."""
        log = self.check_leader(current_leader_epoch)
        epoch, end_offset = log.end_offset_for_epoch(leader_epoch)
        if end_offset == UNDEFINED_EPOCH_OFFSET:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        return epoch, end_offset


# OffsetForLeaderEpoch's answer for an epoch the leader epoch cache cannot place.
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


def _log_skipped_state(partition: Partition, state: dict) -> None:
    log.info("skipping the state change of %s-%d to leader %d: partition epoch %d is older than ours (%d)",
             partition.topic, partition.partition, state["leader"], state["partition_epoch"],
             partition.partition_epoch)


def _now_ms() -> int:
    return int(time.time() * 1000)
