"""TransactionCoordinator: the transaction protocol of KIP-98/KIP-360 as Kafka 3.9's
TransactionCoordinator.scala runs it (transaction.version 0/1), for the transactional ids of the
`__transaction_state` partitions this broker leads (KAFKA-FACTS §13).

- InitProducerId: a new id gets a producer id and epoch 0; a known one an epoch bump (or, with
  the epoch exhausted, a new producer id), which fences the previous producer. An expected
  producer id and epoch (KIP-360) that are not the current ones get PRODUCER_FENCED. An
  ongoing transaction is first fenced (PrepareEpochFence: the epoch is bumped) and aborted,
  and the caller gets CONCURRENT_TRANSACTIONS to retry; so does a caller while markers are
  being written. Timeouts above transaction.max.timeout.ms get INVALID_TRANSACTION_TIMEOUT.
- AddPartitionsToTxn / AddOffsetsToTxn add partitions (Ongoing), written to the log first;
  the verify-only form (KIP-890) only says whether each partition is in the transaction.
- EndTxn writes PrepareCommit/PrepareAbort, answers, and has the TransactionMarkerChannelManager
  write the markers on every partition; once all are written the Complete state is written.
- Errors as Kafka's: INVALID_PRODUCER_ID_MAPPING (unknown id, other producer id),
  PRODUCER_FENCED (other epoch; the handlers turn it into INVALID_PRODUCER_EPOCH for old
  versions), CONCURRENT_TRANSACTIONS (a transition in flight), INVALID_TXN_STATE (EndTxn not
  matching the state), NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE.
- Timers: every transaction.abort.timed.out.transaction.cleanup.interval.ms, Ongoing
  transactions older than their transaction.timeout.ms are fenced and aborted; every
  transaction.remove.expired.transaction.cleanup.interval.ms, ids idle for
  transactional.id.expiration.ms are removed (a tombstone is written).
- Leadership of `__transaction_state` partitions comes through `on_leadership_change` (a
  ReplicaManager leadership listener): load (and finish prepared transactions) on election,
  unload on resignation, with the partition's leader epoch as the coordinator epoch.
- DescribeTransactions and ListTransactions read the cache; the AddPartitionsToTxnManager
  (KIP-890 verification for this broker's produce path) lives here too, so both are built on
  first use together.
Storage is the TransactionStateManager's; the wire format is the handlers'.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kbroker.background import BackgroundTasks
from kbroker.metadata.topic_names import TRANSACTION_STATE_TOPIC_NAME
from kbroker.protocol.errors import Errors
from kbroker.txn.add_partitions_to_txn_manager import AddPartitionsToTxnManager
from kbroker.txn.transaction_marker_channel_manager import PendingTxnMarkers, TransactionMarkerChannelManager
from kbroker.txn.transaction_metadata import (
    INT16_MAX,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    TopicPartition,
    TransactionMetadata,
    TransactionState,
    TxnTransitMetadata,
    is_epoch_exhausted,
)
from kbroker.txn.transaction_state_manager import (
    RETRIABLE_APPEND_ERRORS,
    TransactionConfig,
    TransactionStateManager,
)

if TYPE_CHECKING:
    import ssl

    from kbroker.config import KafkaConfig
    from kbroker.metadata.metadata_cache import MetadataCache
    from kbroker.replica.replica_manager import ReplicaManager

log = logging.getLogger("kbroker.txn")

COMPLETION_RETRY_BACKOFF_S = 0.1
_PREPARED = (TransactionState.PREPARE_COMMIT, TransactionState.PREPARE_ABORT)


@dataclass(slots=True)
class InitProducerIdResult:
    error: Errors
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


@dataclass(slots=True)
class TransactionDescription:
    """DescribeTransactions' view of one transactional id. An error leaves the rest at the
    message's defaults (zeros), as Kafka's TransactionState answers it."""

    error: Errors
    transactional_id: str
    state: str = ""
    timeout_ms: int = 0
    start_time_ms: int = 0
    producer_id: int = 0
    producer_epoch: int = 0
    partitions: list[TopicPartition] = field(default_factory=list)


@dataclass(slots=True)
class TransactionListing:
    transactional_id: str
    producer_id: int
    state: str


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


class TransactionCoordinator:
    def __init__(self, broker_id: int, config: KafkaConfig, replica_manager: ReplicaManager,
                 metadata_cache: MetadataCache, generate_producer_id: Callable[[], int], *,
                 time_ms: Callable[[], int] | None = None, inter_broker_ssl: ssl.SSLContext | None = None) -> None:
        """`inter_broker_ssl`: the ssl.SSLContext for other brokers' inter-broker listener when it is TLS."""
        self.broker_id = broker_id
        self.config = TransactionConfig.from_kafka_config(config)
        self.time_ms = time_ms or _wall_clock_ms
        self.generate_producer_id = generate_producer_id
        self.state_manager = TransactionStateManager(self.config, replica_manager, metadata_cache, self.time_ms)
        self.marker_channel_manager = TransactionMarkerChannelManager(
            broker_id, metadata_cache, replica_manager, config.inter_broker_listener_name,
            self.config.request_timeout_ms, inter_broker_ssl)
        self.add_partitions_to_txn_manager = AddPartitionsToTxnManager(
            broker_id, metadata_cache, self.partition_for, self.handle_verify_partitions_in_transaction,
            config.inter_broker_listener_name, self.config.request_timeout_ms, inter_broker_ssl)
        self.is_active = False
        self._tasks = BackgroundTasks(log, "transaction coordinator task")
        self._timers: list[asyncio.Task] = []
        # The leader epoch of the last election or resignation acted on per partition.
        self._epoch_for_partition: dict[int, int] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def startup(self) -> None:
        self.is_active = True
        loop = asyncio.get_running_loop()
        self._timers = [
            loop.create_task(self._every(self.config.abort_timed_out_transactions_interval_ms,
                                         self.abort_timed_out_transactions)),
            loop.create_task(self._every(self.config.remove_expired_transactional_ids_interval_ms,
                                         self.state_manager.remove_expired_transactional_ids)),
        ]
        log.info("transaction coordinator started")

    async def shutdown(self) -> None:
        self.is_active = False
        self.state_manager.shutting_down = True
        for task in self._timers:
            task.cancel()
        self._tasks.cancel_all()
        await self.marker_channel_manager.close()
        await self.add_partitions_to_txn_manager.close()
        log.info("transaction coordinator stopped")

    async def _every(self, interval_ms: int, work: Callable[[], Coroutine[Any, Any, object]]) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            try:
                await work()
            except Exception:
                log.exception("transaction coordinator timer %s failed", getattr(work, "__name__", work))

    # -- the transaction state topic --------------------------------------------------------------
    def partition_for(self, transactional_id: str) -> int:
        return self.state_manager.partition_for(transactional_id)

    def transaction_topic_configs(self) -> dict[str, str]:
        return self.state_manager.transaction_topic_configs()

    def on_leadership_change(self, topic: str, partition: int, is_leader: bool, leader_epoch: int) -> None:
        """ReplicaManager leadership listener: load on election, unload on resignation. A negative
        epoch (StopReplica's "no epoch") resigns whatever the epoch."""
        if topic != TRANSACTION_STATE_TOPIC_NAME:
            return
        if is_leader:
            self.on_election(partition, leader_epoch)
        else:
            self.on_resignation(partition, leader_epoch if leader_epoch >= 0 else None)

    def on_election(self, partition: int, coordinator_epoch: int) -> None:
        current = self._epoch_for_partition.get(partition)
        if current is not None and coordinator_epoch <= current:
            log.info("ignored election as transaction coordinator for %s-%d in epoch %d: current epoch is %d",
                     TRANSACTION_STATE_TOPIC_NAME, partition, coordinator_epoch, current)
            return
        self._epoch_for_partition[partition] = coordinator_epoch
        self.marker_channel_manager.remove_markers_for_txn_topic_partition(partition)
        self.state_manager.begin_load(partition, coordinator_epoch)
        self._tasks.spawn(self.state_manager.load_partition(partition, coordinator_epoch, self._send_markers))

    def on_resignation(self, partition: int, coordinator_epoch: int | None) -> None:
        current = self._epoch_for_partition.get(partition)
        if current is not None and coordinator_epoch is not None and coordinator_epoch < current:
            return
        if coordinator_epoch is None:
            self._epoch_for_partition.pop(partition, None)
        else:
            self._epoch_for_partition[partition] = coordinator_epoch
        self.marker_channel_manager.remove_markers_for_txn_topic_partition(partition)
        count = self.state_manager.unload_partition(partition, coordinator_epoch)
        if count:
            log.info("unloaded %d transactional ids of %s-%d", count, TRANSACTION_STATE_TOPIC_NAME, partition)

    # -- InitProducerId ---------------------------------------------------------------------------
    async def handle_init_producer_id(self, transactional_id: str, timeout_ms: int,
                                      expected: tuple[int, int] | None) -> InitProducerIdResult:
        """`expected` is the (producer id, epoch) a KIP-360 producer holds already, else None."""
        if not transactional_id:
            return InitProducerIdResult(Errors.INVALID_REQUEST)
        if not self.state_manager.validate_transaction_timeout_ms(timeout_ms):
            return InitProducerIdResult(Errors.INVALID_TRANSACTION_TIMEOUT)
        error, found = self.state_manager.get_transaction_state(transactional_id)
        if error == Errors.NONE and found is None:
            created = TransactionMetadata(transactional_id, self.generate_producer_id(), NO_PRODUCER_ID,
                                          NO_PRODUCER_EPOCH, NO_PRODUCER_EPOCH, timeout_ms, TransactionState.EMPTY,
                                          txn_last_update_timestamp=self.time_ms())
            error, found = self.state_manager.get_transaction_state(transactional_id, created)
        if error != Errors.NONE or found is None:
            return InitProducerIdResult(error)
        prepared = self._prepare_init_producer_id_transit(found.metadata, timeout_ms, expected)
        if isinstance(prepared, Errors):
            return InitProducerIdResult(prepared)
        if prepared.state == TransactionState.PREPARE_EPOCH_FENCE:
            # Abort the open transaction with the bumped epoch; the producer retries once it is done.
            error = await self._end_transaction(transactional_id, prepared.producer_id, prepared.producer_epoch,
                                                commit=False, from_client=False)
            return InitProducerIdResult(error if error != Errors.NONE else Errors.CONCURRENT_TRANSACTIONS)
        error = await self.state_manager.append_transaction_to_log(transactional_id, found.coordinator_epoch,
                                                                   prepared)
        if error != Errors.NONE:
            return InitProducerIdResult(error)
        log.info("initialized transactional id %s with producer id %d and epoch %d", transactional_id,
                 prepared.producer_id, prepared.producer_epoch)
        return InitProducerIdResult(Errors.NONE, prepared.producer_id, prepared.producer_epoch)

    def _prepare_init_producer_id_transit(self, metadata: TransactionMetadata, timeout_ms: int,
                                          expected: tuple[int, int] | None) -> Errors | TxnTransitMetadata:
        if metadata.pending_state is not None:
            return Errors.CONCURRENT_TRANSACTIONS
        if expected is not None and not self._is_valid_producer_id(metadata, expected):
            return Errors.PRODUCER_FENCED
        state = metadata.state
        if state in _PREPARED:
            return Errors.CONCURRENT_TRANSACTIONS
        if state == TransactionState.ONGOING:
            return metadata.prepare_fence_producer_epoch()
        if state not in (TransactionState.EMPTY, TransactionState.COMPLETE_COMMIT, TransactionState.COMPLETE_ABORT):
            log.error("transactional id %s is in state %s, which InitProducerId never meets",
                      metadata.transactional_id, state.display_name)
            return Errors.UNKNOWN_SERVER_ERROR
        now = self.time_ms()
        if metadata.is_producer_epoch_exhausted:
            if expected is not None and expected[1] != metadata.producer_epoch:
                return Errors.PRODUCER_FENCED  # Kafka would fail to bump an exhausted epoch: the caller is stale
            return metadata.prepare_producer_id_rotation(self.generate_producer_id(), timeout_ms, now,
                                                         expected is not None)
        transit = metadata.prepare_increment_producer_epoch(timeout_ms, None if expected is None else expected[1],
                                                            now)
        if transit is None:
            log.info("transactional id %s: expected epoch %s is neither the current %d nor the previous %d",
                     metadata.transactional_id, expected, metadata.producer_epoch, metadata.last_producer_epoch)
            return Errors.PRODUCER_FENCED
        return transit

    @staticmethod
    def _is_valid_producer_id(metadata: TransactionMetadata, expected: tuple[int, int]) -> bool:
        """Kafka's isValidProducerId: a just-created id, the current producer id, or the previous
        one with an exhausted epoch (a retry after a rotation the producer never heard of)."""
        producer_id, epoch = expected
        return (metadata.producer_epoch == NO_PRODUCER_EPOCH or producer_id == metadata.producer_id
                or (producer_id == metadata.last_producer_id and is_epoch_exhausted(epoch)))

    # -- AddPartitionsToTxn / AddOffsetsToTxn -------------------------------------------------------
    def _producer_state(self, transactional_id: str, producer_id: int, producer_epoch: int
                        ) -> tuple[Errors, int, TransactionMetadata | None]:
        """(error, coordinator epoch, metadata) for a request from the producer owning the id."""
        if not transactional_id:
            return Errors.INVALID_REQUEST, -1, None
        error, found = self.state_manager.get_transaction_state(transactional_id)
        if error != Errors.NONE:
            return error, -1, None
        # An id whose first InitProducerId was never written has no epoch yet: nothing maps to it.
        if found is None or found.metadata.producer_id != producer_id or found.metadata.producer_epoch < 0:
            return Errors.INVALID_PRODUCER_ID_MAPPING, -1, None
        if found.metadata.producer_epoch != producer_epoch:
            return Errors.PRODUCER_FENCED, -1, None
        return Errors.NONE, found.coordinator_epoch, found.metadata

    async def handle_add_partitions_to_transaction(self, transactional_id: str, producer_id: int,
                                                   producer_epoch: int, partitions: set[TopicPartition]) -> Errors:
        error, coordinator_epoch, metadata = self._producer_state(transactional_id, producer_id, producer_epoch)
        if metadata is None:
            return error
        if metadata.pending_state is not None or metadata.state in _PREPARED:
            return Errors.CONCURRENT_TRANSACTIONS
        if metadata.state == TransactionState.ONGOING and partitions <= metadata.topic_partitions:
            return Errors.NONE  # already in: no write needed
        transit = metadata.prepare_add_partitions(partitions, self.time_ms())
        return await self.state_manager.append_transaction_to_log(transactional_id, coordinator_epoch, transit)

    def handle_verify_partitions_in_transaction(self, transactional_id: str, producer_id: int, producer_epoch: int,
                                                partitions: set[TopicPartition]) -> dict[TopicPartition, Errors]:
        """KIP-890's verify-only AddPartitionsToTxn: NONE for the partitions in the transaction,
        TRANSACTION_ABORTABLE for the others; pending states are not checked (the log checks
        again on append)."""
        error, _, metadata = self._producer_state(transactional_id, producer_id, producer_epoch)
        if metadata is None:
            return dict.fromkeys(partitions, error)
        if metadata.state in _PREPARED:
            return dict.fromkeys(partitions, Errors.CONCURRENT_TRANSACTIONS)
        return {tp: Errors.NONE if tp in metadata.topic_partitions else Errors.TRANSACTION_ABORTABLE
                for tp in partitions}

    # -- EndTxn ---------------------------------------------------------------------------------------
    async def handle_end_transaction(self, transactional_id: str, producer_id: int, producer_epoch: int,
                                     commit: bool) -> Errors:
        return await self._end_transaction(transactional_id, producer_id, producer_epoch, commit, from_client=True)

    async def _end_transaction(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool,
                               from_client: bool) -> Errors:
        if not transactional_id:
            return Errors.INVALID_REQUEST
        error, found = self.state_manager.get_transaction_state(transactional_id)
        if error != Errors.NONE:
            return error
        if found is None:
            return Errors.INVALID_PRODUCER_ID_MAPPING
        metadata, coordinator_epoch = found.metadata, found.coordinator_epoch
        prepared = self._prepare_end_transaction(metadata, producer_id, producer_epoch, commit, from_client)
        if isinstance(prepared, Errors):
            return prepared
        transit, is_epoch_fence = prepared
        error = await self.state_manager.append_transaction_to_log(transactional_id, coordinator_epoch, transit)
        if error != Errors.NONE:
            if is_epoch_fence:
                current = self.state_manager.get_transaction_state(transactional_id)[1]
                if current is not None and current.coordinator_epoch == coordinator_epoch:
                    current.metadata.has_failed_epoch_fence = True  # the next attempt keeps this epoch
            return error
        return self._after_prepare(transactional_id, coordinator_epoch, producer_id, producer_epoch, commit)

    def _prepare_end_transaction(self, metadata: TransactionMetadata, producer_id: int, producer_epoch: int,
                                 commit: bool, from_client: bool) -> Errors | tuple[TxnTransitMetadata, bool]:
        if metadata.producer_id != producer_id:
            return Errors.INVALID_PRODUCER_ID_MAPPING
        # Clients must match the epoch exactly; the coordinator's own aborts come with a bumped one.
        if (from_client and producer_epoch != metadata.producer_epoch) or producer_epoch < metadata.producer_epoch:
            return Errors.PRODUCER_FENCED
        # Only the coordinator's own abort may take over a pending epoch fence (a timed-out
        # transaction's abort runs as a task: a client's EndTxn may come first).
        if metadata.pending_state is not None and (
                from_client or metadata.pending_state != TransactionState.PREPARE_EPOCH_FENCE):
            return Errors.CONCURRENT_TRANSACTIONS
        state = metadata.state
        if state == TransactionState.ONGOING:
            is_epoch_fence = not commit and metadata.pending_state == TransactionState.PREPARE_EPOCH_FENCE
            if is_epoch_fence:
                # The fence's bumped epoch goes into the PrepareAbort written now.
                metadata.pending_state = None
                metadata.producer_epoch = producer_epoch
                metadata.last_producer_epoch = NO_PRODUCER_EPOCH
            next_state = TransactionState.PREPARE_COMMIT if commit else TransactionState.PREPARE_ABORT
            return metadata.prepare_abort_or_commit(next_state, self.time_ms()), is_epoch_fence
        completed, prepared = ((TransactionState.COMPLETE_COMMIT, TransactionState.PREPARE_COMMIT) if commit
                               else (TransactionState.COMPLETE_ABORT, TransactionState.PREPARE_ABORT))
        if state == completed:
            return Errors.NONE  # a retry of an EndTxn that succeeded
        if state == prepared:
            return Errors.CONCURRENT_TRANSACTIONS
        log.info("transactional id %s: cannot %s in state %s", metadata.transactional_id,
                 "commit" if commit else "abort", state.display_name)
        return Errors.INVALID_TXN_STATE

    def _after_prepare(self, transactional_id: str, coordinator_epoch: int, producer_id: int, producer_epoch: int,
                       commit: bool) -> Errors:
        """PrepareCommit/PrepareAbort is written: answer, and write the markers."""
        error, found = self.state_manager.get_transaction_state(transactional_id)
        if error != Errors.NONE:
            return error
        if found is None or found.coordinator_epoch != coordinator_epoch:
            return Errors.NOT_COORDINATOR
        metadata = found.metadata
        if metadata.producer_id != producer_id:
            return Errors.INVALID_PRODUCER_ID_MAPPING
        if metadata.producer_epoch != producer_epoch:
            return Errors.PRODUCER_FENCED
        if metadata.pending_state is not None:
            return Errors.CONCURRENT_TRANSACTIONS
        expected = TransactionState.PREPARE_COMMIT if commit else TransactionState.PREPARE_ABORT
        if metadata.state != expected:
            return Errors.INVALID_TXN_STATE
        self._send_markers(coordinator_epoch, commit, metadata, metadata.prepare_complete(self.time_ms()))
        return Errors.NONE

    def _send_markers(self, coordinator_epoch: int, commit: bool, metadata: TransactionMetadata,
                      complete: TxnTransitMetadata) -> None:
        """Writes the markers of a prepared transaction (its Complete state is pending), then the
        Complete state."""
        transactional_id = metadata.transactional_id
        entry = PendingTxnMarkers(transactional_id, self.partition_for(transactional_id), coordinator_epoch,
                               metadata.producer_id, metadata.producer_epoch, commit, set(metadata.topic_partitions))

        def still_valid() -> bool:
            return self._still_coordinating(transactional_id, coordinator_epoch, metadata)

        async def write_completion() -> None:
            await self._write_txn_completion(transactional_id, coordinator_epoch, metadata, complete)

        self.marker_channel_manager.add_txn_markers_to_send(entry, still_valid, write_completion)

    def _still_coordinating(self, transactional_id: str, coordinator_epoch: int, metadata: TransactionMetadata) -> bool:
        error, found = self.state_manager.get_transaction_state(transactional_id)
        return (error == Errors.NONE and found is not None and found.coordinator_epoch == coordinator_epoch
                and found.metadata is metadata)

    async def _write_txn_completion(self, transactional_id: str, coordinator_epoch: int,
                                    metadata: TransactionMetadata, complete: TxnTransitMetadata) -> None:
        """Kafka's tryAppendToLog of the Complete state: retried while the error is retriable
        and we still coordinate the transaction."""
        while True:
            error = await self.state_manager.append_transaction_to_log(transactional_id, coordinator_epoch, complete,
                                                                       keep_pending_on_retriable=True)
            if error == Errors.NONE:
                log.debug("transactional id %s completed: %s", transactional_id, complete.state.display_name)
                return
            if error not in RETRIABLE_APPEND_ERRORS or not self._still_coordinating(transactional_id,
                                                                                    coordinator_epoch, metadata):
                log.info("completion of transactional id %s not written (%s): the next coordinator finishes it",
                         transactional_id, error.name)
                return
            await asyncio.sleep(COMPLETION_RETRY_BACKOFF_S)

    # -- timers -----------------------------------------------------------------------------------------
    async def abort_timed_out_transactions(self) -> int:
        """Fences and aborts every Ongoing transaction past its timeout; returns how many were started."""
        started = 0
        for metadata in self.state_manager.timed_out_transactions():
            if metadata.pending_state is not None or metadata.producer_epoch >= INT16_MAX:
                continue  # no epoch left to fence with
            fence = metadata.prepare_fence_producer_epoch()
            log.info("aborting transactional id %s (producer id %d): its transaction timed out after %d ms",
                     metadata.transactional_id, metadata.producer_id, metadata.txn_timeout_ms)
            self._tasks.spawn(self._end_transaction(metadata.transactional_id, fence.producer_id, fence.producer_epoch,
                                              commit=False, from_client=False))
            started += 1
        return started

    # -- admin ------------------------------------------------------------------------------------------
    def describe_transaction(self, transactional_id: str) -> TransactionDescription:
        error, found = self.state_manager.get_transaction_state(transactional_id)
        if error != Errors.NONE:
            return TransactionDescription(error, transactional_id)
        if found is None or found.metadata.state == TransactionState.DEAD:
            return TransactionDescription(Errors.TRANSACTIONAL_ID_NOT_FOUND, transactional_id)
        m = found.metadata
        start = -1 if m.state == TransactionState.EMPTY else m.txn_start_timestamp
        return TransactionDescription(Errors.NONE, transactional_id, m.state.display_name, m.txn_timeout_ms, start,
                                      m.producer_id, m.producer_epoch, sorted(m.topic_partitions))

    def list_transactions(self, states: list[str], producer_ids: list[int], min_duration_ms: int
                          ) -> tuple[Errors, list[str], list[TransactionListing]]:
        """(error, unknown state filters, listings), as Kafka's listTransactionStates."""
        if self.state_manager.shutting_down:
            return Errors.COORDINATOR_NOT_AVAILABLE, [], []
        if self.state_manager.loading_partitions:
            return Errors.COORDINATOR_LOAD_IN_PROGRESS, [], []
        unknown = [s for s in states if TransactionState.from_display_name(s) is None]
        wanted = {TransactionState.from_display_name(s) for s in states} - {None}
        now = self.time_ms()
        listings = []
        for m in self.state_manager.all_transactions():
            if m.state == TransactionState.DEAD or (states and m.state not in wanted):
                continue
            if producer_ids and m.producer_id not in producer_ids:
                continue
            if min_duration_ms >= 0 and now - m.txn_start_timestamp < min_duration_ms:
                continue
            listings.append(TransactionListing(m.transactional_id, m.producer_id, m.state.display_name))
        return Errors.NONE, unknown, listings
