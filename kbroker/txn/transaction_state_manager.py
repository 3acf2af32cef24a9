"""TransactionStateManager: the transactions of the `__transaction_state` partitions we lead.

As Kafka's TransactionStateManager (KAFKA-FACTS §13):
- a transactional id lives in partition `partition_for(id)` (Java's String.hashCode, as groups
  do); we answer for it only while we lead that partition and have loaded it, with the
  partition's leader epoch as the coordinator epoch: COORDINATOR_LOAD_IN_PROGRESS while it
  loads, NOT_COORDINATOR when another broker leads it;
- `load_partition` replays the partition from its log start to its log end (reads of
  transaction.state.log.load.buffer.size, yielding between them); the latest value per id
  wins and a tombstone removes it. Transactions found in PrepareCommit/PrepareAbort are handed
  to `send_markers` to be finished; `unload_partition` drops the partition's ids;
- `append_transaction_to_log` writes a TxnTransitMetadata (transaction_log.py) with acks=-1
  and completes the transition if we are still the coordinator of that epoch afterwards,
  mapping log errors to the coordinator's codes as Kafka does;
- `timed_out_transactions` and `remove_expired_transactional_ids` serve the coordinator's
  timers (transaction.timeout.ms, transactional.id.expiration.ms).
It reads and appends through the ReplicaManager only; the protocol is the TransactionCoordinator's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kbroker.log.append_origin import AppendOrigin
from kbroker.log.errors import LogError
from kbroker.log.records import CorruptRecordError, SimpleRecord, build_batch, iter_batches, iter_records
from kbroker.metadata.topic_names import TRANSACTION_STATE_TOPIC_NAME, coordinator_partition_for
from kbroker.protocol.errors import Errors
from kbroker.txn.transaction_log import (
    TransactionLogError,
    key_to_bytes,
    read_key,
    read_value,
    value_to_bytes,
)
from kbroker.txn.transaction_metadata import TransactionMetadata, TransactionState, TxnTransitMetadata

if TYPE_CHECKING:
    from kbroker.config import KafkaConfig
    from kbroker.metadata.metadata_cache import MetadataCache
    from kbroker.replica.replica_manager import ReplicaManager

log = logging.getLogger("kbroker.txn")

def partition_for(transactional_id: str, partition_count: int) -> int:
    """The `__transaction_state` partition of a transactional id (Kafka's partitionFor)."""
    return coordinator_partition_for(transactional_id, partition_count)


@dataclass(frozen=True, slots=True)
class TransactionConfig:
    """Kafka's TransactionConfig: the transaction.* and transactional.* broker settings."""

    transactional_id_expiration_ms: int = 7 * 24 * 3600 * 1000
    transaction_max_timeout_ms: int = 900000
    topic_num_partitions: int = 50
    topic_replication_factor: int = 3
    topic_segment_bytes: int = 100 * 1024 * 1024
    topic_min_isr: int = 2
    load_buffer_size: int = 5 * 1024 * 1024
    abort_timed_out_transactions_interval_ms: int = 10000
    remove_expired_transactional_ids_interval_ms: int = 3600 * 1000
    request_timeout_ms: int = 30000

    @classmethod
    def from_kafka_config(cls, config: KafkaConfig) -> TransactionConfig:
        return cls(
            transactional_id_expiration_ms=config.get("transactional.id.expiration.ms"),
            transaction_max_timeout_ms=config.get("transaction.max.timeout.ms"),
            topic_num_partitions=config.get("transaction.state.log.num.partitions"),
            topic_replication_factor=config.get("transaction.state.log.replication.factor"),
            topic_segment_bytes=config.get("transaction.state.log.segment.bytes"),
            topic_min_isr=config.get("transaction.state.log.min.isr"),
            load_buffer_size=config.get("transaction.state.log.load.buffer.size"),
            abort_timed_out_transactions_interval_ms=config.get(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms"),
            remove_expired_transactional_ids_interval_ms=config.get(
                "transaction.remove.expired.transaction.cleanup.interval.ms"),
            request_timeout_ms=config.get("request.timeout.ms"),
        )


# Log append errors as the transaction APIs report them (appendTransactionToLog).
_APPEND_ERRORS = {
    Errors.UNKNOWN_TOPIC_OR_PARTITION: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.NOT_ENOUGH_REPLICAS: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.NOT_ENOUGH_REPLICAS_AFTER_APPEND: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.REQUEST_TIMED_OUT: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.NOT_LEADER_OR_FOLLOWER: Errors.NOT_COORDINATOR,
    Errors.KAFKA_STORAGE_ERROR: Errors.NOT_COORDINATOR,
}
# Errors after which a completion write keeps its pending state, to be written again.
RETRIABLE_APPEND_ERRORS = frozenset({Errors.COORDINATOR_NOT_AVAILABLE})


_COMPLETED = (TransactionState.EMPTY, TransactionState.COMPLETE_COMMIT, TransactionState.COMPLETE_ABORT)


def append_error(error: Errors) -> Errors:
    return _APPEND_ERRORS.get(error, Errors.UNKNOWN_SERVER_ERROR)


@dataclass(slots=True)
class CoordinatorEpochAndTxnMetadata:
    coordinator_epoch: int
    metadata: TransactionMetadata


@dataclass(slots=True)
class _CacheEntry:
    coordinator_epoch: int
    metadata_per_transactional_id: dict[str, TransactionMetadata] = field(default_factory=dict)


# send_markers(coordinator_epoch, commit, metadata, complete_transit): finish a prepared transaction.
SendMarkers = Callable[[int, bool, TransactionMetadata, TxnTransitMetadata], None]


class TransactionStateManager:
    def __init__(self, config: TransactionConfig, replica_manager: ReplicaManager, metadata_cache: MetadataCache,
                 time_ms: Callable[[], int]) -> None:
        self.config = config
        self.replica_manager = replica_manager
        self.metadata_cache = metadata_cache
        self.time_ms = time_ms
        self.transaction_metadata_cache: dict[int, _CacheEntry] = {}
        self.loading_partitions: dict[int, int] = {}  # partition -> coordinator epoch being loaded
        self.shutting_down = False

    # -- where transactional ids live ---------------------------------------------------------
    def partition_count(self) -> int:
        """The topic's partition count once it exists, else transaction.state.log.num.partitions."""
        topic = self.metadata_cache.topic(TRANSACTION_STATE_TOPIC_NAME)
        if topic is not None and topic.partitions:
            return len(topic.partitions)
        return self.config.topic_num_partitions

    def partition_for(self, transactional_id: str) -> int:
        return partition_for(transactional_id, self.partition_count())

    def transaction_topic_configs(self) -> dict[str, str]:
        """Kafka's transactionTopicConfigs, used when the topic is created on first use."""
        return {"unclean.leader.election.enable": "false", "compression.type": "uncompressed",
                "cleanup.policy": "compact", "min.insync.replicas": str(self.config.topic_min_isr),
                "segment.bytes": str(self.config.topic_segment_bytes)}

    def validate_transaction_timeout_ms(self, timeout_ms: int) -> bool:
        return 0 < timeout_ms <= self.config.transaction_max_timeout_ms

    # -- the cache -----------------------------------------------------------------------------
    def get_transaction_state(self, transactional_id: str, created: TransactionMetadata | None = None
                              ) -> tuple[Errors, CoordinatorEpochAndTxnMetadata | None]:
        """(NONE, the id's metadata or None) when we coordinate it; `created` is added if the id
        has none yet. COORDINATOR_LOAD_IN_PROGRESS while its partition loads, else NOT_COORDINATOR."""
        if self.shutting_down:
            return Errors.COORDINATOR_NOT_AVAILABLE, None
        partition = self.partition_for(transactional_id)
        if partition in self.loading_partitions:
            return Errors.COORDINATOR_LOAD_IN_PROGRESS, None
        entry = self.transaction_metadata_cache.get(partition)
        if entry is None:
            return Errors.NOT_COORDINATOR, None
        metadata = entry.metadata_per_transactional_id.get(transactional_id)
        if metadata is None and created is not None:
            metadata = entry.metadata_per_transactional_id.setdefault(transactional_id, created)
        return Errors.NONE, None if metadata is None else CoordinatorEpochAndTxnMetadata(entry.coordinator_epoch,
                                                                                         metadata)

    def all_transactions(self) -> Iterator[TransactionMetadata]:
        for entry in self.transaction_metadata_cache.values():
            yield from entry.metadata_per_transactional_id.values()

    def _current(self, partition: int, transactional_id: str, coordinator_epoch: int) -> TransactionMetadata | None:
        """The id's metadata (in its `partition`) if we still coordinate it in this epoch."""
        entry = self.transaction_metadata_cache.get(partition)
        if entry is None or entry.coordinator_epoch != coordinator_epoch:
            return None
        return entry.metadata_per_transactional_id.get(transactional_id)

    # -- writes --------------------------------------------------------------------------------
    async def append_transaction_to_log(self, transactional_id: str, coordinator_epoch: int,
                                        transit: TxnTransitMetadata, keep_pending_on_retriable: bool = False) -> Errors:
        """Writes the transition and, once acknowledged, applies it (Kafka's appendTransactionToLog).
        On failure the pending state is dropped, except a retriable error when asked to keep it."""
        partition = self.partition_for(transactional_id)
        value = None if transit.state == TransactionState.DEAD else value_to_bytes(transit)
        error = await self._append(transactional_id, key_to_bytes(transactional_id), value, partition)
        metadata = self._current(partition, transactional_id, coordinator_epoch)
        if error == Errors.NONE:
            if metadata is None:  # the partition moved away (or came back in a newer epoch) meanwhile
                return Errors.NOT_COORDINATOR
            metadata.complete_transition_to(transit)
            return Errors.NONE
        log.info("writing %s of transactional id %s failed: %s", transit.state.display_name, transactional_id,
                 error.name)
        if metadata is not None and not (keep_pending_on_retriable and error in RETRIABLE_APPEND_ERRORS):
            metadata.clear_pending()
        return error

    async def _append(self, transactional_id: str, key: bytes, value: bytes | None,
                      partition: int | None = None) -> Errors:
        if partition is None:
            partition = self.partition_for(transactional_id)
        now = self.time_ms()
        batch = build_batch([SimpleRecord(key, value, timestamp=now)], now_ms=now)
        result = self.replica_manager.append_to_partition(
            TRANSACTION_STATE_TOPIC_NAME, partition, memoryview(batch), -1, origin=AppendOrigin.COORDINATOR)
        if result.error == Errors.NONE:
            tp = (TRANSACTION_STATE_TOPIC_NAME, partition)
            await self.replica_manager.wait_for_acks({tp: result}, self.config.request_timeout_ms)
        return Errors.NONE if result.error == Errors.NONE else append_error(result.error)

    # -- timers ----------------------------------------------------------------------------------
    def timed_out_transactions(self) -> list[TransactionMetadata]:
        """Ongoing transactions past their timeout with no transition pending."""
        now = self.time_ms()
        return [m for m in self.all_transactions()
                if m.pending_state is None and m.state == TransactionState.ONGOING
                and m.txn_start_timestamp + m.txn_timeout_ms < now]

    async def remove_expired_transactional_ids(self) -> int:
        """Writes a tombstone for each completed id idle longer than transactional.id.expiration.ms
        and forgets it; returns how many."""
        now = self.time_ms()
        removed = 0
        for partition, entry in list(self.transaction_metadata_cache.items()):
            expired = [m for m in entry.metadata_per_transactional_id.values()
                       if m.pending_state is None and m.state in _COMPLETED
                       and m.txn_last_update_timestamp + self.config.transactional_id_expiration_ms <= now]
            for metadata in expired:
                transit = metadata.prepare_dead()
                error = await self.append_transaction_to_log(metadata.transactional_id, entry.coordinator_epoch,
                                                             transit)
                current = self.transaction_metadata_cache.get(partition)
                if error == Errors.NONE and current is entry and \
                        entry.metadata_per_transactional_id.get(metadata.transactional_id) is metadata:
                    del entry.metadata_per_transactional_id[metadata.transactional_id]
                    removed += 1
                    log.info("transactional id %s expired", metadata.transactional_id)
        return removed

    # -- loading and unloading ----------------------------------------------------------------
    def begin_load(self, partition: int, coordinator_epoch: int) -> None:
        """Marks the partition loading (its ids answer COORDINATOR_LOAD_IN_PROGRESS meanwhile)."""
        self.transaction_metadata_cache.pop(partition, None)
        self.loading_partitions[partition] = coordinator_epoch

    async def load_partition(self, partition: int, coordinator_epoch: int, send_markers: SendMarkers) -> None:
        """Replays the partition, installs its ids, then finishes its prepared transactions."""
        started = self.time_ms()
        loaded = await self._replay(partition, coordinator_epoch)
        if loaded is None or self.loading_partitions.get(partition) != coordinator_epoch:
            return  # unloaded (or reloaded in a newer epoch) while we read
        del self.loading_partitions[partition]
        entry = self.transaction_metadata_cache[partition] = _CacheEntry(coordinator_epoch, loaded)
        log.info("loaded %d transactional ids of %s-%d (coordinator epoch %d) in %d ms", len(loaded),
                 TRANSACTION_STATE_TOPIC_NAME, partition, coordinator_epoch, self.time_ms() - started)
        for metadata in list(entry.metadata_per_transactional_id.values()):
            if metadata.state in (TransactionState.PREPARE_COMMIT, TransactionState.PREPARE_ABORT):
                commit = metadata.state == TransactionState.PREPARE_COMMIT
                log.info("completing the %s of transactional id %s left by the previous coordinator",
                         "commit" if commit else "abort", metadata.transactional_id)
                send_markers(coordinator_epoch, commit, metadata, metadata.prepare_complete(self.time_ms()))

    async def _replay(self, partition: int, coordinator_epoch: int) -> dict[str, TransactionMetadata] | None:
        loaded: dict[str, TransactionMetadata] = {}
        p = self.replica_manager.get_partition(TRANSACTION_STATE_TOPIC_NAME, partition)
        if p is None or p.log is None:
            return loaded
        unified_log = p.log
        offset = unified_log.log_start_offset
        end = unified_log.log_end_offset
        while offset < end:
            if self.loading_partitions.get(partition) != coordinator_epoch:
                return None
            try:
                buf = unified_log.read(offset, self.config.load_buffer_size, None, True).read_bytes()
                next_offset = self._replay_buffer(buf, loaded)
            except (TransactionLogError, CorruptRecordError, LogError) as exc:
                log.error("loading %s-%d stopped at offset %d: %s", TRANSACTION_STATE_TOPIC_NAME, partition,
                          offset, exc)
                break
            if next_offset is None or next_offset <= offset:
                break
            offset = next_offset
            await asyncio.sleep(0)  # let requests for other partitions through between reads
        return loaded

    @staticmethod
    def _replay_buffer(buf: bytes, loaded: dict[str, TransactionMetadata]) -> int | None:
        next_offset = None
        for header in iter_batches(buf):
            next_offset = header.next_offset
            if header.is_control:
                continue
            for record in iter_records(buf, header):
                if record.key is None:
                    raise TransactionLogError(f"record without a key at offset {record.offset}")
                transactional_id = read_key(record.key)
                if record.value is None:
                    loaded.pop(transactional_id, None)
                else:
                    loaded[transactional_id] = TransactionMetadata.from_transit(transactional_id,
                                                                                read_value(record.value))
        return next_offset

    def unload_partition(self, partition: int, coordinator_epoch: int | None) -> int:
        """Stops answering for the partition's ids (NOT_COORDINATOR); returns how many were dropped.
        A resignation older than the epoch loaded (or loading) is ignored."""
        loading = self.loading_partitions.get(partition)
        entry = self.transaction_metadata_cache.get(partition)
        current = loading if loading is not None else (entry.coordinator_epoch if entry is not None else None)
        if coordinator_epoch is not None and current is not None and coordinator_epoch < current:
            return 0
        self.loading_partitions.pop(partition, None)
        entry = self.transaction_metadata_cache.pop(partition, None)
        return 0 if entry is None else len(entry.metadata_per_transactional_id)

    def owned_partitions(self) -> list[int]:
        return sorted(self.transaction_metadata_cache)
