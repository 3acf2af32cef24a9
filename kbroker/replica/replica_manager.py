"""ReplicaManager: this broker's partitions, and the produce and fetch paths through them.

- LeaderAndIsr makes partitions leaders or followers (creating their logs through LogManager);
  a follower is handed to the ReplicaFetcherManager (fetching from its leader's inter-broker
  endpoint), a leader taken from it; StopReplica stops and, when asked, deletes them. Stale
  controller epochs are refused, and so is a StopReplica whose leader epoch is older than the
  partition's (FENCED_LEADER_EPOCH for that partition).
- Appends go to each partition leader; acks=-1 waits as a DelayedProduce until the high
  watermark passes the appended offsets or timeout_ms passes (REQUEST_TIMED_OUT); an ISR that
  shrank below min.insync.replicas meanwhile gives NOT_ENOUGH_REPLICAS_AFTER_APPEND.
- Transaction markers (`append_txn_markers`, for WriteTxnMarkers and the local transaction
  coordinator) are control batches appended with acks=-1 and origin COORDINATOR; once
  replicated, `txn_marker_listeners` hear of them (transactional offset commits).
- Fetches read up to the high watermark (consumers; read_committed: the last stable offset) or
  the log end (followers, replica id >= 0).
  A follower's fetch is checked for divergence (DivergingEpoch), records its position, may
  move the high watermark (waking DelayedProduce) and grow the ISR. A fetch that found less
  than min_bytes waits as a DelayedFetch, which counts the bytes appends and high watermark
  moves make available.
- Both wait in Kafka's purgatories (kbroker/replica/delayed_operation.py) keyed by
  topic-partition: every append, high watermark move and leadership change of a partition
  calls `_complete_delayed_requests` for it; a partition no longer led here completes its
  waiters (NOT_LEADER_OR_FOLLOWER). On shutdown `wake_all` answers the parked fetches.
- A log directory that failed (kbroker/log's LogDirFailureChannel) takes its partitions offline
  here (`handle_log_dir_failure`, Kafka's HostedPartition.Offline): their fetchers stop, waiters
  are answered, and every later request for them, LeaderAndIsr included, gets
  KAFKA_STORAGE_ERROR until the broker restarts.
- AlterReplicaLogDirs moves a replica between log dirs (`alter_replica_log_dir`): LogManager's
  future log, filled and swapped in by the ReplicaAlterLogDirsManager, after which the
  partition serves from the new log (`_on_log_replaced`); a move interrupted by a restart
  resumes with the partition's next LeaderAndIsr.
- ISR changes (expansions from follower fetches, shrinks from `maybe_shrink_isr`, run every
  replica.lag.time.max.ms / 2) go to the controller through the AlterPartitionManager.
It knows partitions and logs; request and response shapes stay in the handlers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

from kbroker.log.append_origin import AppendOrigin
from kbroker.log.config import LogConfig
from kbroker.log.errors import LogError
from kbroker.metrics.stats import BrokerTopicStats
from kbroker.protocol.errors import Errors
from kbroker.protocol.uuids import uuid_to_base64
from kbroker.replica.delayed_fetch import (
    DelayedFetch,
    FetchPartitionStatus,
    FetchRequestPartition,
    FetchResult,
)
from kbroker.replica.delayed_operation import DelayedOperationPurgatory
from kbroker.replica.delayed_produce import DelayedProduce, ProduceResult
from kbroker.replica.partition import (
    DEFAULT_REPLICA_LAG_TIME_MAX_MS,
    FETCH_HIGH_WATERMARK,
    FETCH_LOG_END,
    FETCH_TXN_COMMITTED,
    Partition,
    PartitionError,
    PendingIsrChange,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from kbroker.log.log_manager import LogManager
    from kbroker.log.producer_state import ProducerStateEntry, VerificationGuard
    from kbroker.log.segment import LogOffsetMetadata
    from kbroker.log.unified_log import UnifiedLog
    from kbroker.log.validator import PreparedRecords
    from kbroker.metadata.metadata_cache import MetadataCache
    from kbroker.protocol.message_types import AlterPartitionResponsePartitionData
    from kbroker.replica.alter_partition_manager import AlterPartitionManager
    from kbroker.replica.replica_alter_log_dirs_manager import ReplicaAlterLogDirsManager
    from kbroker.replica.replica_fetcher import BrokerEndPoint, ReplicaFetcherManager

log = logging.getLogger("kbroker.replica")

TopicPartition = tuple[str, int]

CONSUMER_REPLICA_ID = -1
# StopReplica's leader epoch sentinels (Kafka's LeaderAndIsr.EpochDuringDelete and NoEpoch).
LEADER_EPOCH_DURING_DELETE = -2
NO_LEADER_EPOCH = -1
ALTER_PARTITION_RETRY_BACKOFF_S = 0.05
# A LeaderAndIsr with more partition states than this (a start-up with thousands of partitions)
# logs one summary line at INFO and each partition's line at DEBUG: ten thousand INFO lines cost
# ~0.15 s of a start and bury everything else in the log.
PARTITION_LINES_AT_INFO = 100
# The append errors Kafka's appendToLocalLog answers with UNKNOWN_LOG_APPEND_INFO and no custom
# message: log start offset -1 and a null error_message (the others name the log start offset).
_PLAIN_APPEND_ERRORS = frozenset({
    Errors.UNKNOWN_TOPIC_OR_PARTITION, Errors.NOT_LEADER_OR_FOLLOWER, Errors.MESSAGE_TOO_LARGE,
    Errors.RECORD_LIST_TOO_LARGE, Errors.CORRUPT_MESSAGE, Errors.KAFKA_STORAGE_ERROR,
})


class TxnMarkerEntry(NamedTuple):
    """One transaction's end marker for some partitions (Kafka's TxnMarkerEntry, as
    WriteTxnMarkers carries it): COMMIT if `committed`, else ABORT."""

    producer_id: int
    producer_epoch: int
    coordinator_epoch: int
    committed: bool
    partitions: Sequence[TopicPartition]
    # The coordinator's transaction.version (WriteTxnMarkers v2, KIP-1228): from 2 on, the
    # coordinator bumped the epoch for the marker, so it must exceed the producer's epoch.
    transaction_version: int = 0


class ReplicaManager:
    def __init__(self, broker_id: int, log_manager: LogManager, metadata_cache: MetadataCache,
                 topic_config: Callable[[str], dict[str, str]], base_log_config: LogConfig, *,
                 replica_lag_time_max_ms: int = DEFAULT_REPLICA_LAG_TIME_MAX_MS,
                 inter_broker_listener: str = "PLAINTEXT") -> None:
        self.broker_id = broker_id
        self.log_manager = log_manager
        self.metadata_cache = metadata_cache
        self.topic_config = topic_config
        self.base_log_config = base_log_config
        self.partitions: dict[TopicPartition, Partition] = {}
        # Partitions whose log directory failed (Kafka's HostedPartition.Offline): KAFKA_STORAGE_ERROR.
        self.offline_partitions: set[TopicPartition] = set()
        self.controller_epoch = 0
        self.stopping = False  # set on shutdown: parked fetches answer with what they have
        # Called as listener(topic, partition, is_leader, leader_epoch) after each leadership change.
        self.leadership_listeners: list[Callable[[str, int, bool, int], None]] = []
        # Called as listener(producer_id, partitions, committed) once transaction markers were
        # written and replicated (Kafka's onTransactionCompleted: transactional offset commits
        # become visible or are dropped).
        self.txn_marker_listeners: list[Callable[[int, list[TopicPartition], bool], None]] = []
        # Kafka's purgatories, keyed by topic-partition: woken by `_complete_delayed_requests`.
        self.delayed_produce_purgatory = DelayedOperationPurgatory("Produce")
        self.delayed_fetch_purgatory = DelayedOperationPurgatory("Fetch")
        self.replica_lag_time_max_ms = replica_lag_time_max_ms
        self.inter_broker_listener = inter_broker_listener
        # Set by the server in cluster mode; without them followers do not fetch and ISRs stay put.
        self.replica_fetcher_manager: ReplicaFetcherManager | None = None
        self.alter_partition_manager: AlterPartitionManager | None = None
        # Kafka's BrokerTopicStats, counted per partition of a request only when metrics are on
        # (the server sets it with metrics.listener), and ReplicaManager's IsrShrinks/IsrExpands.
        self.topic_stats: BrokerTopicStats | None = None
        self.isr_shrinks = 0
        self.isr_expands = 0
        self._alter_log_dirs_manager: ReplicaAlterLogDirsManager | None = None  # see the property

    # -- controller requests ------------------------------------------------------------------
    def log_config_for(self, topic: str) -> LogConfig:
        return LogConfig.from_topic_config(self.topic_config(topic), self.base_log_config)

    def become_leader_or_follower(self, request: dict) -> dict:
        if request["controller_epoch"] < self.controller_epoch:
            log.warning("ignoring LeaderAndIsr from controller %d with stale epoch %d (we know %d)",
                        request["controller_id"], request["controller_epoch"], self.controller_epoch)
            return {"error_code": Errors.STALE_CONTROLLER_EPOCH, "topics": []}
        self.controller_epoch = request["controller_epoch"]
        states = [state for topic_state in request["topic_states"] for state in topic_state["partition_states"]]
        level = logging.INFO if len(states) <= PARTITION_LINES_AT_INFO else logging.DEBUG
        topics = []
        for topic_state in request["topic_states"]:
            topic = topic_state["topic_name"]
            errors = []
            for state in topic_state["partition_states"]:
                error = self._apply_partition_state(topic, topic_state["topic_id"], state,
                                                    request.get("live_leaders") or [], level)
                errors.append({"topic_name": topic, "partition_index": state["partition_index"], "error_code": error})
            topics.append({"topic_id": topic_state["topic_id"], "partition_errors": errors})
        if level != logging.INFO:
            mine = [state for state in states if self.broker_id in state["replicas"]]
            led = sum(state["leader"] == self.broker_id for state in mine)
            log.info("LeaderAndIsr from controller %d: leader of %d partitions, follower of %d "
                     "(each partition's line at DEBUG)", request["controller_id"], led, len(mine) - led)
        if self.replica_fetcher_manager is not None:
            self.replica_fetcher_manager.shutdown_idle_fetcher_threads()
        return {"error_code": 0, "topics": topics}

    def _apply_partition_state(self, topic: str, topic_id, state: dict, live_leaders: list[dict],
                               level: int = logging.INFO) -> Errors:
        tp = (topic, state["partition_index"])
        if self.broker_id not in state["replicas"]:
            return Errors.NONE
        if tp in self.offline_partitions:
            return Errors.KAFKA_STORAGE_ERROR
        partition = self.partitions.get(tp)
        if partition is not None and state["leader_epoch"] < partition.leader_epoch:
            return Errors.STALE_CONTROLLER_EPOCH
        if partition is not None and state["leader_epoch"] == partition.leader_epoch \
                and partition.leader_id == state["leader"]:
            # Kafka ignores an equal leader epoch; a leader still takes a newer committed ISR
            # (partition epoch), which also drops an ISR change in flight.
            leader_log = partition.log if partition.is_leader else None
            if leader_log is not None and state["partition_epoch"] > partition.partition_epoch:
                partition.make_leader(state, leader_log)
                self._complete_delayed_requests(tp)
            return Errors.NONE
        if partition is None:
            partition = self.partitions[tp] = Partition(
                topic, tp[1], self.broker_id, replica_lag_time_max_ms=self.replica_lag_time_max_ms,
                is_replica_eligible=self.metadata_cache.is_alive)
        partition.topic_id = topic_id
        try:
            unified_log = self.log_manager.get_or_create_log(
                topic, tp[1], uuid_to_base64(topic_id) if topic_id else None, self.log_config_for(topic),
                is_new=state.get("is_new", False))
        except LogError as exc:
            if exc.code != Errors.KAFKA_STORAGE_ERROR:
                raise
            log.error("%s-%d cannot be made a replica here: %s", topic, tp[1], exc.message)
            self._mark_partitions_offline([tp])
            return Errors.KAFKA_STORAGE_ERROR
        if state["leader"] == self.broker_id:
            if self.replica_fetcher_manager is not None:
                self.replica_fetcher_manager.remove_fetcher_for_partitions([tp])
            partition.make_leader(state, unified_log)
            log.log(level, "leader of %s-%d at epoch %d, ISR %s", topic, tp[1], state["leader_epoch"], state["isr"])
        elif partition.make_follower(state, unified_log):
            self._start_following(partition, unified_log, live_leaders, level)
        if self.log_manager.get_future_log(*tp) is not None:  # a move interrupted by a restart resumes
            self._start_moving(tp)
        self._complete_delayed_requests(tp)
        self._notify_leadership(topic, tp[1], partition.is_leader, partition.leader_epoch)
        return Errors.NONE

    def _start_following(self, partition: Partition, unified_log: UnifiedLog, live_leaders: list[dict],
                         level: int = logging.INFO) -> None:
        """(Re)starts fetching from the partition's leader (Kafka's makeFollowers): from the log
        end when the log has leader epochs (the first fetch's divergence check truncates what
        the leader lacks), else from the high watermark."""
        manager = self.replica_fetcher_manager
        if manager is None:
            return
        tp = (partition.topic, partition.partition)
        manager.remove_fetcher_for_partitions([tp])
        leader = self._leader_endpoint(partition.leader_id, live_leaders)
        if leader is None:
            log.warning("%s-%d: leader %d is not alive; not fetching until the next LeaderAndIsr", tp[0], tp[1],
                        partition.leader_id)
            return
        latest_epoch = unified_log.leader_epoch_cache.latest_epoch()
        init_offset = unified_log.log_end_offset if latest_epoch is not None else unified_log.high_watermark
        log.log(level, "%s-%d follows broker %d at leader epoch %d from offset %d (high watermark %d)", tp[0], tp[1],
                 leader.broker_id, partition.leader_epoch, init_offset, unified_log.high_watermark)
        manager.add_fetcher_for_partitions({tp: manager.initial_fetch_state(
            partition.topic_id, leader, partition.leader_epoch, init_offset, latest_epoch)})

    def _leader_endpoint(self, leader_id: int, live_leaders: list[dict]) -> BrokerEndPoint | None:
        """The leader's inter-broker endpoint: from the request's live leaders, else the cache."""
        # Followers exist only in cluster mode: a single-node broker never imports the fetcher.
        from kbroker.replica.replica_fetcher import BrokerEndPoint

        for entry in live_leaders:
            if entry["broker_id"] == leader_id and entry["port"] > 0:
                return BrokerEndPoint(leader_id, entry["host_name"], entry["port"])
        endpoint = self.metadata_cache.endpoint_of(leader_id, self.inter_broker_listener)
        return BrokerEndPoint(leader_id, endpoint.host, endpoint.port) if endpoint is not None else None

    def _notify_leadership(self, topic: str, partition: int, is_leader: bool, leader_epoch: int) -> None:
        """Kafka's onLeadershipChange: the group coordinator loads or unloads its partitions."""
        for listener in self.leadership_listeners:
            try:
                listener(topic, partition, is_leader, leader_epoch)
            except Exception:
                log.exception("leadership listener failed for %s-%d", topic, partition)

    def stop_replicas(self, request: dict) -> dict:
        if request["controller_epoch"] < self.controller_epoch:
            return {"error_code": Errors.STALE_CONTROLLER_EPOCH, "partition_errors": []}
        errors = []
        for topic_state in request["topic_states"]:
            topic = topic_state["topic_name"]
            for state in topic_state["partition_states"]:
                tp = (topic, state["partition_index"])
                if self._stop_replica_fenced(tp, state["leader_epoch"]):
                    errors.append({"topic_name": topic, "partition_index": tp[1],
                                   "error_code": Errors.FENCED_LEADER_EPOCH})
                    continue
                if self.replica_fetcher_manager is not None:
                    self.replica_fetcher_manager.remove_fetcher_for_partitions([tp])
                self._stop_moving([tp])
                if self.partitions.pop(tp, None) is not None:
                    self._notify_leadership(topic, tp[1], False, state["leader_epoch"])
                # Kafka's HostedPartition.Offline: its log cannot be deleted until the dir is back.
                error = Errors.KAFKA_STORAGE_ERROR if tp in self.offline_partitions else Errors.NONE
                if state["delete_partition"] and not error:
                    try:
                        self.log_manager.delete_log(topic, tp[1])
                    except LogError as exc:  # a failed rename took the log dir offline (logged there)
                        log.warning("StopReplica of %s-%d: the log was not deleted (%s)", topic, tp[1], exc.code.name)
                        error = exc.code
                self._complete_delayed_requests(tp)
                errors.append({"topic_name": topic, "partition_index": tp[1], "error_code": error})
            if self.topic_stats is not None and all(state["delete_partition"]
                                                    for state in topic_state["partition_states"]):
                self._maybe_remove_topic_stats(topic)
        if self.replica_fetcher_manager is not None:
            self.replica_fetcher_manager.shutdown_idle_fetcher_threads()
        return {"error_code": 0, "partition_errors": errors}

    def _maybe_remove_topic_stats(self, topic: str) -> None:
        """A deleted topic's BrokerTopicMetrics go once none of its partitions is hosted here
        (Kafka's stopReplicas: brokerTopicStats.removeMetrics)."""
        if self.topic_stats is not None and not any(t == topic for t, _ in self.partitions):
            self.topic_stats.remove_topic(topic)

    def _stop_replica_fenced(self, tp: tuple[str, int], leader_epoch: int) -> bool:
        """Kafka's stopReplicas: a leader epoch older than the partition's is refused; -2 (the
        topic is being deleted, epochs are not bumped) and -1 (no epoch) always pass."""
        partition = self.partitions.get(tp)
        if partition is None or leader_epoch in (LEADER_EPOCH_DURING_DELETE, NO_LEADER_EPOCH):
            return False
        if leader_epoch >= partition.leader_epoch:
            return False
        log.warning("ignoring StopReplica for %s-%d: its leader epoch %d is older than ours (%d)", tp[0], tp[1],
                    leader_epoch, partition.leader_epoch)
        return True

    def update_topic_config(self, topic: str) -> None:
        """A topic's config changed: the logs of its partitions take the new LogConfig."""
        self.log_manager.update_topic_config(topic, self.log_config_for(topic))

    # -- produce ------------------------------------------------------------------------------
    def get_partition(self, topic: str, partition: int) -> Partition | None:
        return self.partitions.get((topic, partition))

    def topic_name_for_id(self, topic_id) -> str | None:
        """The name of a topic we hold partitions of, by topic id (None if we hold none)."""
        return next((p.topic for p in self.partitions.values() if p.topic_id == topic_id), None)

    def missing_partition_error(self, topic: str, partition: int) -> Errors:
        """Why we have no such partition: its log directory failed, it does not exist, or another
        broker leads it."""
        if (topic, partition) in self.offline_partitions:
            return Errors.KAFKA_STORAGE_ERROR
        if self.metadata_cache.partition(topic, partition) is None:
            return Errors.UNKNOWN_TOPIC_OR_PARTITION
        return Errors.NOT_LEADER_OR_FOLLOWER

    def append_to_partition(self, topic: str, partition: int, records: memoryview, required_acks: int,
                            origin: AppendOrigin = AppendOrigin.CLIENT,
                            verification_guard: VerificationGuard | None = None,
                            prepared: PreparedRecords | None = None) -> ProduceResult:
        """Appends one partition's batches as leader (clients; the coordinators use origin
        COORDINATOR for their internal topics); acks=-1 callers then await wait_for_acks.
        `verification_guard`: None where KIP-890 verification is off, else what
        maybe_start_transaction_verification gave (SENTINEL for a partition not verified).
        `prepared`: the validation a worker thread did (kbroker/log/append_offload.py), or None."""
        stats = None
        if self.topic_stats is not None:  # metrics on: the topic's counters, made with its first append
            stats = self.topic_stats.topics.get(topic) or self.topic_stats.topic(topic)
            stats.total_produce_requests += 1
        p = self.partitions.get((topic, partition))
        if p is None:
            if stats is not None:
                stats.failed_produce_requests += 1
            return ProduceResult(self.missing_partition_error(topic, partition))
        try:
            info = p.append_records_to_leader(records, required_acks, origin, verification_guard, prepared)
        except PartitionError as exc:
            if stats is not None:
                stats.failed_produce_requests += 1
                stats.bytes_rejected += len(records)
            if exc.code in _PLAIN_APPEND_ERRORS:
                return ProduceResult(exc.code)
            return ProduceResult(exc.code, message=str(exc) if exc.code != Errors.NOT_LEADER_OR_FOLLOWER else None,
                                 log_start_offset=p.log.log_start_offset if p.log else -1,
                                 record_errors=exc.record_errors)
        if stats is not None:  # per batch: the batch headers' record counts, no record is looked at
            stats.messages_in += info.record_count
            stats.bytes_in += len(records)
        self._complete_delayed_requests((topic, partition))
        return ProduceResult(Errors.NONE, info.base_offset, info.log_append_time, info.log_start_offset,
                             None, info.last_offset)

    async def append_txn_markers(self, markers: Sequence[TxnMarkerEntry],
                                 timeout_ms: int) -> list[dict[TopicPartition, Errors]]:
        """Writes each marker's control batch (EndTransactionMarker) to those of its partitions
        this broker leads, as Kafka's WriteTxnMarkers does: appendRecords with acks=-1 and
        origin COORDINATOR, so producer state completes the transaction (an abort enters the
        .txnindex) and the last stable offset moves once the marker is replicated. Answers, per
        marker, each partition's error: UNKNOWN_TOPIC_OR_PARTITION for a partition not hosted
        here, NOT_LEADER_OR_FOLLOWER, INVALID_PRODUCER_EPOCH (an epoch older than the
        producer's), TRANSACTION_COORDINATOR_FENCED (an older coordinator epoch),
        NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT... A refused marker appends nothing."""
        pending = [self._append_txn_marker(marker) for marker in markers]
        if len(pending) == 1:
            # Awaited directly: gather would wrap it in a task and yield to the loop even when the
            # acks are already complete (a single replica), which lets the producer's next
            # AddPartitionsToTxn find the transaction still prepared (CONCURRENT_TRANSACTIONS).
            await self.wait_for_acks(pending[0], timeout_ms)
        else:
            await asyncio.gather(*(self.wait_for_acks(results, timeout_ms) for results in pending))
        answers = []
        for marker, results in zip(markers, pending, strict=True):
            written = [tp for tp, result in results.items() if result.error == Errors.NONE]
            if written:
                self._notify_txn_markers(marker, written)
            answers.append({tp: result.error for tp, result in results.items()})
        return answers

    def _append_txn_marker(self, marker: TxnMarkerEntry) -> dict[TopicPartition, ProduceResult]:
        from kbroker.log.records import ControlRecordType, build_control_batch  # loaded with the first log

        control_type = ControlRecordType.COMMIT if marker.committed else ControlRecordType.ABORT
        batch = build_control_batch(control_type, marker.producer_id, marker.producer_epoch,
                                    marker.coordinator_epoch, timestamp=_now_ms())
        results: dict[TopicPartition, ProduceResult] = {}
        for tp in marker.partitions:
            if tp not in self.partitions:  # Kafka's getMagic finds no local log
                results[tp] = ProduceResult(Errors.UNKNOWN_TOPIC_OR_PARTITION)
            elif marker.transaction_version >= 2 and not self._marker_bumps_epoch(tp, marker):
                results[tp] = ProduceResult(Errors.INVALID_PRODUCER_EPOCH)
            else:  # a fresh copy each: the log patches offsets and epoch into the buffer
                results[tp] = self.append_to_partition(tp[0], tp[1], memoryview(bytearray(batch)), -1,
                                                       AppendOrigin.COORDINATOR)
        return results

    def _marker_bumps_epoch(self, tp: TopicPartition, marker: TxnMarkerEntry) -> bool:
        """KIP-1228: a transaction.version 2 marker carries an epoch above the producer's last
        one here (ProducerAppendInfo's check in Kafka; nothing awaits between it and the append)."""
        unified_log = self.partitions[tp].log
        entry = unified_log.producer_state_manager.last_entry(marker.producer_id) if unified_log else None
        return entry is None or marker.producer_epoch > entry.producer_epoch

    def _notify_txn_markers(self, marker: TxnMarkerEntry, partitions: list[TopicPartition]) -> None:
        for listener in self.txn_marker_listeners:
            try:
                listener(marker.producer_id, partitions, marker.committed)
            except Exception:
                log.exception("transaction marker listener failed for producer %d", marker.producer_id)

    def active_producers(self, topic: str, partition: int) -> tuple[Errors, list[ProducerStateEntry]]:
        """DescribeProducers: the producers a partition we lead keeps state for (Kafka's
        activeProducerState), or why it cannot answer."""
        p = self.partitions.get((topic, partition))
        if p is None:
            return self.missing_partition_error(topic, partition), []
        try:
            unified_log = p.check_leader()
        except PartitionError as exc:
            return exc.code, []
        return Errors.NONE, list(unified_log.producer_state_manager.producers.values())

    def maybe_start_transaction_verification(self, topic: str, partition: int, producer_id: int,
                                             epoch: int) -> VerificationGuard | None:
        """KIP-890 on a partition we lead: the guard a transactional batch that opens a transaction
        here must bring once the coordinator verified it, SENTINEL if the producer has one open
        already (nothing to verify), None if we do not lead it (the append answers why)."""
        p = self.partitions.get((topic, partition))
        if p is None:
            return None
        try:
            unified_log = p.check_leader()
        except PartitionError:
            return None
        return unified_log.maybe_start_transaction_verification(producer_id, epoch)

    def delete_records(self, topic: str, partition: int, offset: int) -> tuple[Errors, int]:
        """DeleteRecords on one partition: (error, low watermark)."""
        p = self.partitions.get((topic, partition))
        if p is None:
            return self.missing_partition_error(topic, partition), -1
        try:
            unified_log = p.check_leader()
        except PartitionError as exc:
            return exc.code, -1
        if unified_log.config.compact:
            return Errors.POLICY_VIOLATION, -1
        target = unified_log.high_watermark if offset == -1 else offset
        try:
            unified_log.maybe_increment_log_start_offset(target)
        except LogError as exc:
            return exc.code, -1
        return Errors.NONE, unified_log.log_start_offset

    async def wait_for_acks(self, results: dict[TopicPartition, ProduceResult], timeout_ms: int) -> None:
        """acks=-1: waits as a DelayedProduce until every appended partition's high watermark
        passes its last offset or timeout_ms passes; the answers are written into `results`."""
        delayed = DelayedProduce(timeout_ms, results, self.get_partition)
        if not self.delayed_produce_purgatory.try_complete_else_watch(delayed, delayed.acks_pending):
            await self.delayed_produce_purgatory.wait(delayed)

    # -- fetch ---------------------------------------------------------------------------------
    def read_partition(self, req: FetchRequestPartition, isolation: int, min_one_message: bool,
                       replica_id: int = CONSUMER_REPLICA_ID, replica_epoch: int = -1,
                       update_fetch_state: bool = False) -> FetchResult:
        """One partition of a fetch. A follower's (replica_id >= 0) is first checked for
        divergence, and with `update_fetch_state` (the first read of a fetch, not the re-reads
        of a DelayedFetch) records the follower's position."""
        p = self.partitions.get((req.topic, req.partition))
        if p is None:
            return FetchResult(self.missing_partition_error(req.topic, req.partition))
        try:
            unified_log = p.check_leader(req.current_leader_epoch)
            replica = p.follower_replica(replica_id, req.current_leader_epoch) if replica_id >= 0 else None
        except PartitionError as exc:
            return FetchResult(exc.code)
        # Values from before the read: appends after it must not keep a follower out of sync.
        hw = unified_log.high_watermark
        lso = unified_log.last_stable_offset
        log_start = unified_log.log_start_offset
        log_end = unified_log.log_end_offset
        if replica is not None and req.last_fetched_epoch >= 0:
            try:
                diverging = p.diverging_epoch(unified_log, req.last_fetched_epoch, req.fetch_offset)
            except PartitionError as exc:
                return FetchResult(exc.code, hw, lso, log_start)
            if diverging is not None:
                return FetchResult(Errors.NONE, hw, lso, log_start, diverging_epoch=diverging)
        max_offset = None if isolation == FETCH_LOG_END else (hw if isolation == FETCH_HIGH_WATERMARK else lso)
        limit = log_end if max_offset is None else max_offset
        if req.fetch_offset == limit and log_start <= limit and not unified_log.dir_offline:
            # Caught up on this partition (most partitions of a consumer's fetch of hundreds, every
            # idle partition a follower follows): what read() would answer, without reading; a
            # follower's fetch state is still recorded below. The start position is known at the
            # log end; below it, if the fetch waits, it is looked up as for any read that found nothing.
            records, size = None, 0
            aborted: list | None = [] if isolation == FETCH_TXN_COMMITTED else None
            metadata = unified_log.log_end_offset_metadata if max_offset is None else None
        else:
            try:
                data = unified_log.read(req.fetch_offset, req.max_bytes, max_offset, min_one_message,
                                        include_aborted_transactions=isolation == FETCH_TXN_COMMITTED)
            except LogError as exc:
                # Kafka's createLogReadResult(e): an error answers -1 for the offsets, not the log's.
                return FetchResult(exc.code)
            records, size, aborted, metadata = (data.records, data.size, data.aborted_transactions,
                                                data.fetch_offset_metadata)
        if replica is not None and update_fetch_state:
            hw_moved, expansion = p.update_follower_fetch_state(replica, req.fetch_offset, req.log_start_offset,
                                                                _now_ms(), log_end, replica_epoch)
            if expansion is not None:
                self._submit_isr_change(p, expansion)
            if hw_moved:
                self._complete_delayed_requests((req.topic, req.partition))
        return FetchResult(Errors.NONE, hw, lso, log_start, records, size, aborted, fetch_offset_metadata=metadata)

    async def fetch(self, requests: list[FetchRequestPartition], isolation: int, max_wait_ms: int,
                    min_bytes: int, max_bytes: int, replica_id: int = CONSUMER_REPLICA_ID,
                    replica_epoch: int = -1, hard_max_bytes_limit: bool = False) -> list[FetchResult]:
        """Reads now; if fewer than min_bytes were found and nothing failed or diverged, waits
        as a DelayedFetch (counting the bytes that become available) and reads again.

        `hard_max_bytes_limit` (Fetch v0-2, before KIP-74) never lets a batch exceed the limits:
        a partition gets the bytes that fit, which may end in a partial batch."""
        results = self._read_all(requests, isolation, max_bytes, replica_id, replica_epoch, True,
                                 hard_max_bytes_limit)
        if (max_wait_ms <= 0 or not requests or self.stopping or sum(r.size for r in results) >= min_bytes
                or any(r.error != Errors.NONE or r.diverging_epoch is not None for r in results)):
            if self.topic_stats is not None:
                self._count_fetch(self.topic_stats, requests, results, replica_id)
            return results
        statuses = [FetchPartitionStatus(req, self._start_offset_metadata(req, result))
                    for req, result in zip(requests, results, strict=True)]
        read_again = partial(self._read_all, requests, isolation, max_bytes, replica_id, replica_epoch, False,
                             hard_max_bytes_limit)
        delayed = DelayedFetch(max_wait_ms, min_bytes, isolation, statuses, self.get_partition, read_again)
        keys = [(req.topic, req.partition) for req in requests]
        if not self.delayed_fetch_purgatory.try_complete_else_watch(delayed, keys):
            await self.delayed_fetch_purgatory.wait(delayed)
        if self.topic_stats is not None:
            self._count_fetch(self.topic_stats, requests, delayed.results, replica_id)
        return delayed.results

    @staticmethod
    def _count_fetch(topic_stats: BrokerTopicStats, requests: list[FetchRequestPartition],
                     results: list[FetchResult], replica_id: int) -> None:
        """BrokerTopicStats of a fetch, per partition: requests, failures, and the bytes sent to
        consumers (Kafka counts a follower's bytes as replication bytes out, not bytes out)."""
        topics = topic_stats.topics
        for req, result in zip(requests, results, strict=True):
            stats = topics.get(req.topic) or topic_stats.topic(req.topic)  # no call once it exists
            stats.total_fetch_requests += 1
            if result.error != Errors.NONE:
                stats.failed_fetch_requests += 1
            elif replica_id < 0:
                stats.bytes_out += result.size
            else:
                stats.replication_bytes_out += result.size

    def _start_offset_metadata(self, req: FetchRequestPartition, result: FetchResult) -> LogOffsetMetadata:
        """Where the partition's read started, with its position in the log (a read that found
        nothing knows only the offset: look its position up once, not at each wake-up)."""
        metadata = result.fetch_offset_metadata
        if metadata is not None and not metadata.message_offset_only:
            return metadata
        # The read just succeeded in this same step, so the partition still leads with its log.
        leader_log = self.partitions[(req.topic, req.partition)].check_leader()
        return leader_log.convert_to_offset_metadata(req.fetch_offset)

    def _read_all(self, requests: list[FetchRequestPartition], isolation: int, max_bytes: int,
                  replica_id: int, replica_epoch: int, update_fetch_state: bool,
                  hard_max_bytes_limit: bool = False) -> list[FetchResult]:
        results = []
        budget = max_bytes
        # KIP-74: the first partition with data may exceed the limits by one batch
        min_one_message = not hard_max_bytes_limit
        for req in requests:
            # A copy only when the response's budget cuts the partition's limit: a fetch of many
            # partitions (a consumer of 1,000) mostly fits, and pays nothing per partition then.
            limited = req if 0 <= req.max_bytes <= budget else FetchRequestPartition(
                req.topic, req.partition, req.fetch_offset, max(0, min(req.max_bytes, budget)),
                req.current_leader_epoch, req.last_fetched_epoch, req.log_start_offset)
            result = self.read_partition(limited, isolation, min_one_message, replica_id, replica_epoch,
                                         update_fetch_state)
            if result.size:
                min_one_message = False
                budget -= result.size
            results.append(result)
        return results

    # -- moves between log dirs (AlterReplicaLogDirs) -------------------------------------------
    @property
    def alter_log_dirs_manager(self) -> ReplicaAlterLogDirsManager:
        """Kafka's ReplicaAlterLogDirsManager, built with the first move (most brokers never move
        a replica, and start without importing it)."""
        if self._alter_log_dirs_manager is None:
            from kbroker.replica.replica_alter_log_dirs_manager import ReplicaAlterLogDirsManager

            self._alter_log_dirs_manager = ReplicaAlterLogDirsManager(self.log_manager, self._on_log_replaced)
        return self._alter_log_dirs_manager

    def alter_replica_log_dir(self, topic: str, partition: int, destination: str) -> Errors:
        """Kafka's ReplicaManager.alterReplicaLogDirs for one partition: move its replica into
        `destination` (an absolute path of log.dirs) through a future log copied in the
        background, redirect a move in flight, or remember the dir for a replica not hosted
        yet (then REPLICA_NOT_AVAILABLE, as Kafka answers)."""
        from kbroker.log.unified_log import MAX_FILE_NAME_LENGTH, log_future_dir_name  # with the first move

        tp = (topic, partition)
        log_manager = self.log_manager
        if len(log_future_dir_name(topic, partition)) > MAX_FILE_NAME_LENGTH:  # Kafka's KAFKA-4893 check
            return Errors.INVALID_TOPIC_EXCEPTION
        if destination not in log_manager.log_dirs:  # Kafka compares the absolute paths as strings too
            return Errors.LOG_DIR_NOT_FOUND
        if log_manager.is_offline(destination) or tp in self.offline_partitions:
            return Errors.KAFKA_STORAGE_ERROR
        hosted = self.partitions.get(tp)
        future_dir = log_manager.future_log_dir_of(topic, partition)
        if hosted is not None and future_dir not in (None, destination):  # Kafka's futureReplicaDirChanged
            self._stop_moving([tp])
            log_manager.abandon_future_log(topic, partition)
        log_manager.maybe_update_preferred_log_dir(topic, partition, destination)
        current = log_manager.get_log(topic, partition)
        if hosted is None or current is None:
            return Errors.REPLICA_NOT_AVAILABLE
        if current.parent_dir == destination:
            return Errors.NONE
        try:
            log_manager.create_future_log(topic, partition, destination)
        except LogError as exc:
            log.warning("Unable to alter log dirs for %s-%d: %s", topic, partition, exc.message)
            return exc.code
        self._start_moving(tp)
        return Errors.NONE

    async def close_alter_log_dirs_manager(self) -> None:
        """Shutdown, before the logs close: moves stop where they are (the next start resumes them)."""
        if self._alter_log_dirs_manager is not None:
            await self._alter_log_dirs_manager.close()

    def _start_moving(self, tp: TopicPartition) -> None:
        try:
            self.alter_log_dirs_manager.add_fetcher_for_partition(tp)
        except RuntimeError:  # no event loop (tools, tests stepping by hand): resumed by the next caller
            log.info("the move of %s-%d between log dirs waits for the event loop", *tp)

    def _stop_moving(self, tps: list[TopicPartition]) -> None:
        if self._alter_log_dirs_manager is not None:
            self._alter_log_dirs_manager.remove_fetcher_for_partitions(tps)

    def _on_log_replaced(self, tp: TopicPartition, unified_log: UnifiedLog) -> None:
        """The future log replaced the current one: the partition serves from it from now on, and
        waiting fetches look again (their positions were in the old files)."""
        partition = self.partitions.get(tp)
        if partition is not None:
            partition.log = unified_log
        self._complete_delayed_requests(tp)

    def future_log_end_offset_lag(self, topic: str, partition: int) -> int:
        """DescribeLogDirs' offset lag of a future replica: how far it is behind the current log."""
        current = self.log_manager.get_log(topic, partition)
        future = self.log_manager.get_future_log(topic, partition)
        if current is None or future is None:
            return 0
        return max(current.log_end_offset - future.log_end_offset, 0)

    # -- log directory failures ---------------------------------------------------------------
    async def run_log_dir_failure_handler(self, notify_controller: Callable[[], object],
                                          halt: Callable[[str], None]) -> None:
        """Kafka's LogDirFailureHandler: each directory the LogDirFailureChannel reports goes
        offline here, then the controller is told (`notify_controller`, which writes the
        /log_dir_event_notification znode); with no directory left, `halt` gets Kafka's line."""
        log_manager = self.log_manager
        while True:
            log_dir = await log_manager.log_dir_failure_channel.take_next_offline_log_dir()
            self.handle_log_dir_failure(log_dir)
            if not log_manager.live_log_dirs:
                halt(f"Shutdown broker because all log dirs in {', '.join(log_manager.log_dirs)} have failed")
                return
            try:
                notify_controller()
            except Exception as exc:  # e.g. ZooKeeper unreachable: the next LeaderAndIsr still learns it
                log.warning("could not tell the controller that log directory %s failed: %r", log_dir, exc)

    def handle_log_dir_failure(self, log_dir: str) -> list[TopicPartition]:
        """Kafka's ReplicaManager.handleLogDirFailure: the partitions stored in `log_dir` go offline
        (fetchers stopped, leadership given up here, waiters answered) and the LogManager forgets
        the directory. Returns those partitions. Telling the controller is the server's."""
        in_dir = [tp for tp in self.partitions if self.log_manager.log_dir_of(*tp) == log_dir]
        self._mark_partitions_offline(in_dir)
        # Moves into the failed dir end; their replicas keep serving from where they are.
        self._stop_moving([tp for tp in self.partitions if self.log_manager.future_log_dir_of(*tp) == log_dir])
        offline = self.log_manager.handle_log_dir_failure(log_dir)
        self.offline_partitions.update(offline)
        log.warning("Broker %d stopped fetcher for partitions %s because they are in the failed log directory %s.",
                    self.broker_id, ",".join(f"{t}-{p}" for t, p in in_dir) or "(none)", log_dir)
        return sorted(set(in_dir) | set(offline))

    def _mark_partitions_offline(self, tps: list[TopicPartition]) -> None:
        if self.replica_fetcher_manager is not None and tps:
            self.replica_fetcher_manager.remove_fetcher_for_partitions(tps)
        self._stop_moving(tps)
        for tp in tps:
            self.offline_partitions.add(tp)
            partition = self.partitions.pop(tp, None)
            if partition is not None and partition.is_leader:
                self._notify_leadership(tp[0], tp[1], False, partition.leader_epoch)
            self._complete_delayed_requests(tp)

    # -- ISR changes (AlterPartition) -----------------------------------------------------------
    def maybe_shrink_isr(self, now_ms: int | None = None) -> int:
        """Kafka's isr-expiration task: every partition we lead drops followers that have not
        caught up for replica.lag.time.max.ms. Returns how many shrinks were proposed."""
        now = _now_ms() if now_ms is None else now_ms
        proposed = 0
        for partition in list(self.partitions.values()):
            change = partition.maybe_shrink_isr(now) if partition.is_leader else None
            if change is not None:
                self._submit_isr_change(partition, change)
                proposed += 1
        return proposed

    def on_live_brokers_changed(self) -> int:
        """After UpdateMetadata: a broker that left is no longer eligible to join an ISR, so the
        high watermark of the partitions we lead stops waiting for it (nothing else would make
        it look again while every follower is caught up). Returns how many moved."""
        moved = 0
        for tp, partition in list(self.partitions.items()):
            if partition.is_leader and partition.maybe_increment_high_watermark():
                self._complete_delayed_requests(tp)
                moved += 1
        return moved

    def _submit_isr_change(self, partition: Partition, change: PendingIsrChange) -> None:
        manager = self.alter_partition_manager
        if manager is None:  # no controller channel (tests of the data path): nothing to ask
            partition.on_alter_partition_response(change, Errors.OPERATION_NOT_ATTEMPTED)
            return
        manager.submit((partition.topic, partition.partition), partition.topic_id, change,
                       lambda error, answer: self._on_isr_change_answer(partition, change, error, answer))

    def _on_isr_change_answer(self, partition: Partition, change: PendingIsrChange, error: Errors,
                              answer: AlterPartitionResponsePartitionData | None) -> None:
        tp = (partition.topic, partition.partition)
        if self.partitions.get(tp) is not partition:
            return
        was_pending = partition.pending_isr_change is change
        hw_moved, retry = partition.on_alter_partition_response(change, error, answer)
        if was_pending and error == Errors.NONE and answer is not None and partition.pending_isr_change is None:
            if change.is_expand:  # the change is committed: Kafka's IsrExpandsPerSec / IsrShrinksPerSec
                self.isr_expands += 1
            else:
                self.isr_shrinks += 1
        if hw_moved:
            self._complete_delayed_requests(tp)
        if retry:
            def resubmit() -> None:
                if partition.pending_isr_change is change and self.partitions.get(tp) is partition:
                    self._submit_isr_change(partition, change)
            asyncio.get_running_loop().call_later(ALTER_PARTITION_RETRY_BACKOFF_S, resubmit)

    # -- the purgatories ---------------------------------------------------------------------
    def _complete_delayed_requests(self, tp: TopicPartition) -> None:
        """The partition's log, high watermark or leadership changed: delayed produces and
        fetches watching it may finish now (Kafka's tryCompleteDelayedRequests). An empty
        purgatory (no acks=all produce, no long-polling fetch) is not asked."""
        produce, fetch = self.delayed_produce_purgatory, self.delayed_fetch_purgatory
        if produce.watchers:
            produce.check_and_complete(tp)
        if fetch.watchers:
            fetch.check_and_complete(tp)

    def wake_all(self) -> None:
        """Broker shutdown: parked fetches answer now with what they have, and new ones do not
        wait. Delayed produces keep waiting for their acknowledgements or their timeout."""
        self.stopping = True
        self.delayed_fetch_purgatory.complete_all()


def _now_ms() -> int:
    return int(time.time() * 1000)
