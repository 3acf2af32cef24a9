"""GroupMetadataManager: the groups and offsets of the `__consumer_offsets` partitions we lead.

As Kafka's GroupMetadataManager (KAFKA-FACTS §6):
- a group lives in partition `partition_for(group_id)`; we answer for it only while we lead that
  partition and have finished replaying it (`owned_partitions`), and say "loading" meanwhile;
- `load_partition` replays a partition from its log start to its log end (in reads of
  offsets.load.buffer.size), yielding to the event loop between reads: the latest group metadata
  and offsets per key win, tombstones remove, transactional offset commits count once their
  COMMIT marker is read (those still without a marker stay pending in their group, for the
  marker to come); `unload_partition` drops the partition's groups;
- `store_offsets` with a producer (TxnOffsetCommit) writes a transactional batch and keeps the
  offsets pending in the group until `handle_txn_completion` (a marker on that partition)
  commits or drops them;
- `store_group` and `store_offsets` append Kafka's key/value records (coordinator_records.py)
  with offsets.commit.required.acks (-1) and wait up to offsets.commit.timeout.ms, mapping log
  errors to the coordinator's error codes as Kafka does; a group's record is built by
  `group_record` when the change is accepted, and stored by `store_group` afterwards;
- `cleanup_group_metadata` writes tombstones for removed offsets and dead groups (expiry,
  DeleteGroups, OffsetDelete).
It reads and appends through the ReplicaManager only; the group protocol (joins, rebalances,
timers) is the GroupCoordinator's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.group.consumer_group_records import (
    GROUP_METADATA,
    RecordKey,
    group_records,
    read_record_key,
    rebuild_group,
    record_key,
)
from kbroker.group.coordinator_records import (
    CoordinatorRecordError,
    GroupMetadataKey,
    GroupMetadataRecord,
    MemberRecord,
    OffsetCommitKey,
    group_metadata_key,
    group_metadata_value,
    offset_commit_key,
    offset_commit_value,
    partition_for,
    read_group_metadata_value,
    read_key,
    read_offset_commit_value,
)
from kbroker.group.group_metadata import (
    CommitRecordMetadataAndOffset,
    GroupMetadata,
    GroupState,
    MemberMetadata,
    TopicPartition,
)
from kbroker.group.offset_and_metadata import OffsetAndMetadata
from kbroker.log.append_origin import AppendOrigin
from kbroker.log.errors import LogError
from kbroker.log.records import (
    MAGIC_V2,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    BatchHeader,
    ControlRecordType,
    CorruptRecordError,
    SimpleRecord,
    build_batch,
    iter_batches,
    iter_records,
    parse_control_record,
)
from kbroker.metadata.topic_names import GROUP_METADATA_TOPIC_NAME
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.config import KafkaConfig
    from kbroker.metadata.metadata_cache import MetadataCache
    from kbroker.replica.replica_manager import ReplicaManager

log = logging.getLogger("kbroker.group")



@dataclass(frozen=True, slots=True)
class OffsetConfig:
    """Kafka's OffsetConfig: the offsets.* and offset.* broker settings."""

    max_metadata_size: int = 4096
    load_buffer_size: int = 5 * 1024 * 1024
    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_check_interval_ms: int = 600000
    topic_num_partitions: int = 50
    topic_replication_factor: int = 3
    topic_segment_bytes: int = 100 * 1024 * 1024
    topic_compression_codec: int = 0
    commit_timeout_ms: int = 5000
    commit_required_acks: int = -1

    @classmethod
    def from_kafka_config(cls, config: KafkaConfig) -> OffsetConfig:
        return cls(
            max_metadata_size=config.get("offset.metadata.max.bytes"),
            load_buffer_size=config.get("offsets.load.buffer.size"),
            retention_ms=config.get("offsets.retention.minutes") * 60 * 1000,
            retention_check_interval_ms=config.get("offsets.retention.check.interval.ms"),
            topic_num_partitions=config.get("offsets.topic.num.partitions"),
            topic_replication_factor=config.get("offsets.topic.replication.factor"),
            topic_segment_bytes=config.get("offsets.topic.segment.bytes"),
            topic_compression_codec=config.get("offsets.topic.compression.codec"),
            commit_timeout_ms=config.get("offsets.commit.timeout.ms"),
            commit_required_acks=config.get("offsets.commit.required.acks"),
        )


# Log append errors as the group APIs report them (GroupMetadataManager.storeGroup/storeOffsets).
_STORE_ERRORS = {
    Errors.UNKNOWN_TOPIC_OR_PARTITION: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.NOT_ENOUGH_REPLICAS: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.NOT_ENOUGH_REPLICAS_AFTER_APPEND: Errors.COORDINATOR_NOT_AVAILABLE,
    Errors.NOT_LEADER_OR_FOLLOWER: Errors.NOT_COORDINATOR,
    Errors.KAFKA_STORAGE_ERROR: Errors.NOT_COORDINATOR,
}
_TOO_LARGE = (Errors.MESSAGE_TOO_LARGE, Errors.RECORD_LIST_TOO_LARGE, Errors.INVALID_FETCH_SIZE)


def store_group_error(error: Errors) -> Errors:
    if error in _TOO_LARGE:
        return Errors.UNKNOWN_SERVER_ERROR
    if error == Errors.REQUEST_TIMED_OUT:
        return Errors.REBALANCE_IN_PROGRESS
    return _STORE_ERRORS.get(error, error)


def store_offsets_error(error: Errors) -> Errors:
    if error in _TOO_LARGE:
        return Errors.INVALID_COMMIT_OFFSET_SIZE
    return _STORE_ERRORS.get(error, error)


def group_from_record(group_id: str, record: GroupMetadataRecord, now_ms: int) -> GroupMetadata:
    """Kafka's GroupMetadata.loadGroup: Stable with its members, or Empty without any."""
    state = GroupState.STABLE if record.members else GroupState.EMPTY
    group = GroupMetadata(group_id, state, now_ms)
    group.generation_id = record.generation
    group.protocol_type = record.protocol_type or None
    group.protocol_name = record.protocol
    group.leader_id = record.leader
    group.current_state_timestamp = None if record.current_state_timestamp < 0 else record.current_state_timestamp
    for m in record.members:
        member = MemberMetadata(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                m.rebalance_timeout_ms, m.session_timeout_ms, record.protocol_type,
                                [(record.protocol or "", m.subscription)], m.assignment)
        group.add(member)
    group.subscribed_topics = group.compute_subscribed_topics()
    return group


class _PartitionReplay:
    """What a replay of one offsets partition found, latest record per key."""

    def __init__(self) -> None:
        self.offsets: dict[tuple[str, TopicPartition], CommitRecordMetadataAndOffset] = {}
        self.groups: dict[str, GroupMetadataRecord] = {}
        self.removed_groups: set[str] = set()
        self.pending_txn: dict[int, dict[tuple[str, TopicPartition], CommitRecordMetadataAndOffset]] = {}
        # KIP-848 groups' latest records per key (consumer_group_records.py).
        self.consumer_records: dict[str, dict[RecordKey, bytes]] = {}

    def replay(self, buf: bytes) -> int | None:
        """Applies every complete batch in buf; returns the offset after the last one (None if
        buf held no complete batch)."""
        next_offset = None
        for header in iter_batches(buf):
            if header.magic == MAGIC_V2:
                self._replay_batch(buf, header)
            else:
                log.warning("skipping a magic %d entry at offset %d of %s: pre-0.11 formats are not read",
                            header.magic, header.base_offset, GROUP_METADATA_TOPIC_NAME)
            next_offset = header.next_offset
        return next_offset

    def _replay_batch(self, buf: bytes, header: BatchHeader) -> None:
        if header.is_control:
            if header.is_transactional:
                for record in iter_records(buf, header):
                    marker, _ = parse_control_record(record)
                    self._complete_transaction(header.producer_id, marker == ControlRecordType.COMMIT)
            return
        for record in iter_records(buf, header):
            if record.key is None:
                raise CoordinatorRecordError(f"record without a key at offset {record.offset}")
            consumer_key = read_record_key(record.key)
            if consumer_key is not None:
                self._replay_consumer_record(consumer_key, record.value)
                continue
            key = read_key(record.key)
            if isinstance(key, OffsetCommitKey):
                self._replay_offset(header, key, record.value)
            elif isinstance(key, GroupMetadataKey):
                if record.value is None:
                    self.groups.pop(key.group, None)
                    self.removed_groups.add(key.group)
                else:
                    self.groups[key.group] = read_group_metadata_value(record.value)
                    self.removed_groups.discard(key.group)

    def _replay_consumer_record(self, key: RecordKey, value: bytes | None) -> None:
        records = self.consumer_records.setdefault(key[1], {})
        if value is None:
            records.pop(key, None)
        else:
            records[key] = bytes(value)

    def _replay_offset(self, header: BatchHeader, key: OffsetCommitKey, value: bytes | None) -> None:
        group_tp = (key.group, (key.topic, key.partition))
        if header.is_transactional:
            pending = self.pending_txn.setdefault(header.producer_id, {})
            if value is not None:
                pending[group_tp] = CommitRecordMetadataAndOffset(header.base_offset, read_offset_commit_value(value))
        elif value is None:
            self.offsets.pop(group_tp, None)
        else:
            self.offsets[group_tp] = CommitRecordMetadataAndOffset(header.base_offset, read_offset_commit_value(value))

    def _complete_transaction(self, producer_id: int, committed: bool) -> None:
        pending = self.pending_txn.pop(producer_id, {})
        if not committed:
            return
        for group_tp, record in pending.items():
            current = self.offsets.get(group_tp)
            if current is None or current.older_than(record):
                self.offsets[group_tp] = record

    def pending_by_group(self) -> dict[str, dict[int, dict[TopicPartition, CommitRecordMetadataAndOffset]]]:
        """Offsets of transactions without a marker yet, per group and producer id."""
        out: dict[str, dict[int, dict[TopicPartition, CommitRecordMetadataAndOffset]]] = {}
        for producer_id, records in self.pending_txn.items():
            for (group_id, tp), record in records.items():
                out.setdefault(group_id, {}).setdefault(producer_id, {})[tp] = record
        return out

    def offsets_by_group(self) -> dict[str, dict[TopicPartition, CommitRecordMetadataAndOffset]]:
        out: dict[str, dict[TopicPartition, CommitRecordMetadataAndOffset]] = {}
        for (group_id, tp), record in self.offsets.items():
            out.setdefault(group_id, {})[tp] = record
        return out


class GroupMetadataManager:
    def __init__(self, config: OffsetConfig, replica_manager: ReplicaManager, metadata_cache: MetadataCache,
                 time_ms: Callable[[], int]) -> None:
        self.config = config
        self.replica_manager = replica_manager
        self.metadata_cache = metadata_cache
        self.time_ms = time_ms
        self.groups: dict[str, GroupMetadata] = {}
        self.owned_partitions: set[int] = set()
        self.loading_partitions: set[int] = set()
        # Bumped on each load and unload of a partition: a replay that finds its number stale
        # was overtaken (leadership moved meanwhile) and installs nothing.
        self._partition_generation: dict[int, int] = {}

    # -- where groups live ------------------------------------------------------------------
    def partition_count(self) -> int:
        """The offsets topic's partition count once it exists, else offsets.topic.num.partitions."""
        topic = self.metadata_cache.topic(GROUP_METADATA_TOPIC_NAME)
        if topic is not None and topic.partitions:
            return len(topic.partitions)
        return self.config.topic_num_partitions

    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.partition_count())

    def is_group_local(self, group_id: str) -> bool:
        return self.partition_for(group_id) in self.owned_partitions

    def is_group_loading(self, group_id: str) -> bool:
        return self.partition_for(group_id) in self.loading_partitions

    @property
    def is_loading(self) -> bool:
        return bool(self.loading_partitions)

    # -- the group cache ----------------------------------------------------------------------
    def get_group(self, group_id: str) -> GroupMetadata | None:
        return self.groups.get(group_id)

    def add_group(self, group: GroupMetadata) -> GroupMetadata:
        """Adds the group unless one with its id is cached already; returns the cached one."""
        return self.groups.setdefault(group.group_id, group)

    def get_or_maybe_create_group(self, group_id: str, create: bool) -> GroupMetadata | None:
        if create:
            return self.add_group(GroupMetadata(group_id, GroupState.EMPTY, self.time_ms()))
        return self.groups.get(group_id)

    def current_groups(self) -> list[GroupMetadata]:
        return list(self.groups.values())

    def group_not_exists(self, group_id: str) -> bool:
        group = self.groups.get(group_id)
        return self.is_group_local(group_id) and (group is None or group.is_state(GroupState.DEAD))

    # -- writes -------------------------------------------------------------------------------
    async def _append(self, group_id: str, records: list[SimpleRecord], required_acks: int,
                      producer: tuple[int, int] | None = None) -> tuple[Errors, int]:
        """Appends one batch to the group's partition as its leader; (error, base offset). With
        `producer` (id, epoch) the batch is transactional, as TxnOffsetCommit writes it."""
        partition = self.partition_for(group_id)
        producer_id, producer_epoch = (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) if producer is None else producer
        batch = build_batch(records, compression=self.config.topic_compression_codec, now_ms=self.time_ms(),
                            producer_id=producer_id, producer_epoch=producer_epoch,
                            base_sequence=NO_SEQUENCE if producer is None else 0, is_transactional=producer is not None)
        result = self.replica_manager.append_to_partition(
            GROUP_METADATA_TOPIC_NAME, partition, memoryview(batch), required_acks,
            origin=AppendOrigin.COORDINATOR)
        if result.error == Errors.NONE and required_acks == -1:
            tp = (GROUP_METADATA_TOPIC_NAME, partition)
            await self.replica_manager.wait_for_acks({tp: result}, self.config.commit_timeout_ms)
        return result.error, result.base_offset

    @staticmethod
    def group_record(group: GroupMetadata, assignment: dict[str, bytes]) -> bytes:
        """The group's metadata value with these assignments, as the group stands now.

        Build it when the change is accepted and store it later: Kafka builds the record in
        storeGroup under the group lock, so members who join before the append runs (on a later
        loop turn here) are not in it, and are not in `assignment` either."""
        protocol_name = group.protocol_name
        # Only an Empty group has no protocol, and it has no members to store either.
        members = [] if protocol_name is None else [
            MemberRecord(m.member_id, m.group_instance_id, m.client_id, m.client_host, m.rebalance_timeout_ms,
                         m.session_timeout_ms, m.metadata(protocol_name), assignment[m.member_id])
            for m in group.members.values()]
        record = GroupMetadataRecord(group.protocol_type or "", group.generation_id, group.protocol_name,
                                     group.leader_id,
                                     -1 if group.current_state_timestamp is None else group.current_state_timestamp,
                                     members)
        return group_metadata_value(record)

    async def store_group(self, group_id: str, record: bytes) -> Errors:
        """Writes a group's metadata value built by `group_record`."""
        error, _ = await self._append(group_id, [SimpleRecord(group_metadata_key(group_id), record,
                                                             timestamp=self.time_ms())],
                                      self.config.commit_required_acks)
        if error != Errors.NONE:
            log.warning("writing metadata of group %s failed: %s", group_id, error.name)
        return Errors.NONE if error == Errors.NONE else store_group_error(error)

    async def store_records(self, group_id: str, records: list[tuple[bytes, bytes | None]]) -> Errors:
        """Writes a KIP-848 group's records (consumer_group_records.py) in one batch."""
        now = self.time_ms()
        error, _ = await self._append(group_id, [SimpleRecord(k, v, timestamp=now) for k, v in records],
                                      self.config.commit_required_acks)
        if error != Errors.NONE:
            log.warning("writing consumer group %s failed: %s", group_id, error.name)
        return Errors.NONE if error == Errors.NONE else store_group_error(error)

    def _metadata_fits(self, metadata: str) -> bool:
        # Kafka compares String.length(): UTF-16 code units.
        return len(metadata.encode("utf-16-le")) // 2 <= self.config.max_metadata_size

    async def store_offsets(self, group: GroupMetadata, offsets: dict[TopicPartition, OffsetAndMetadata],
                            producer: tuple[int, int] | None = None) -> dict[TopicPartition, Errors]:
        """OffsetCommit's write, or TxnOffsetCommit's with `producer` (id, epoch): then the
        offsets stay pending in the group until the transaction's marker is written."""
        fitting = {tp: om for tp, om in offsets.items() if self._metadata_fits(om.metadata)}
        if not fitting:
            return dict.fromkeys(offsets, Errors.OFFSET_METADATA_TOO_LARGE)
        now = self.time_ms()
        records = [SimpleRecord(offset_commit_key(group.group_id, topic, partition), offset_commit_value(om),
                                timestamp=now)
                   for (topic, partition), om in fitting.items()]
        if producer is None:
            group.prepare_offset_commit(fitting)
        else:
            group.prepare_txn_offset_commit(producer[0], fitting)
        try:
            error, base_offset = await self._append(group.group_id, records, self.config.commit_required_acks,
                                                    producer)
        except BaseException:
            for tp, om in fitting.items():  # never leave a commit pending: require_stable would wait forever
                self._fail_pending(group, tp, om, producer)
            raise
        alive = not group.is_state(GroupState.DEAD)
        for tp, om in fitting.items():
            if not alive:
                continue
            if error != Errors.NONE:
                self._fail_pending(group, tp, om, producer)
            elif producer is None:
                group.on_offset_commit_append(tp, CommitRecordMetadataAndOffset(base_offset, om))
            else:
                group.on_txn_offset_commit_append(producer[0], tp, CommitRecordMetadataAndOffset(base_offset, om))
        if error != Errors.NONE:
            log.warning("committing offsets of group %s failed: %s", group.group_id, error.name)
        commit_error = Errors.NONE if error == Errors.NONE else store_offsets_error(error)
        return {tp: commit_error if tp in fitting else Errors.OFFSET_METADATA_TOO_LARGE for tp in offsets}

    @staticmethod
    def _fail_pending(group: GroupMetadata, tp: TopicPartition, offset: OffsetAndMetadata,
                      producer: tuple[int, int] | None) -> None:
        if producer is None:
            group.fail_pending_offset_write(tp, offset)
        else:
            group.fail_pending_txn_offset_commit(producer[0], tp)

    def handle_txn_completion(self, producer_id: int, partitions: set[int], is_commit: bool) -> None:
        """Kafka's handleTxnCompletion: a marker was written on these offsets partitions, so the
        producer's pending offsets in their groups are committed or dropped."""
        for group in list(self.groups.values()):
            if producer_id in group.pending_transactional_offset_commits and \
                    self.partition_for(group.group_id) in partitions:
                group.complete_pending_txn_offset_commit(producer_id, is_commit)

    def get_offsets(self, group_id: str, require_stable: bool, partitions: list[TopicPartition] | None
                    ) -> dict[TopicPartition, tuple[OffsetAndMetadata | None, Errors]]:
        """Committed offsets (None: nothing committed); all of them when partitions is None."""
        group = self.groups.get(group_id)
        if group is None or group.is_state(GroupState.DEAD):
            return {tp: (None, Errors.NONE) for tp in partitions or ()}
        wanted = list(group.offsets) if partitions is None else partitions
        out: dict[TopicPartition, tuple[OffsetAndMetadata | None, Errors]] = {}
        for tp in wanted:
            if require_stable and group.has_pending_offset_commits_for(tp):
                out[tp] = (None, Errors.UNSTABLE_OFFSET_COMMIT)
            else:
                out[tp] = (group.offset(tp), Errors.NONE)
        return out

    def cleanup_group_metadata(self, groups: Iterable[GroupMetadata],
                               selector: Callable[[GroupMetadata], dict[TopicPartition, OffsetAndMetadata]]) -> int:
        """Removes what `selector` picks from each group, turns empty groups without offsets
        Dead, and writes the tombstones (acks=0: a lost tombstone is written again on the next
        cycle). Returns how many offsets were removed."""
        removed_count = 0
        now = self.time_ms()
        for group in list(groups):
            removed = selector(group)
            if group.is_state(GroupState.EMPTY) and not group.has_offsets and not group.has_consumer_members:
                log.info("group %s transitioned to Dead in generation %d", group.group_id, group.generation_id)
                group.transition_to(GroupState.DEAD, now)
            tombstones = [SimpleRecord(offset_commit_key(group.group_id, topic, partition), None, timestamp=now)
                          for topic, partition in removed]
            if group.is_state(GroupState.DEAD) and self.groups.get(group.group_id) is group:
                del self.groups[group.group_id]
                # A generation-0 group only ever stored offsets: it has no metadata record to remove.
                if group.generation_id > 0:
                    tombstones.append(SimpleRecord(group_metadata_key(group.group_id), None, timestamp=now))
                if group.consumer is not None:  # a KIP-848 group's own records
                    tombstones += [SimpleRecord(record_key(*key), None, timestamp=now)
                                   for key in group_records(group.consumer)]
            if not tombstones:
                continue
            partition = self.partition_for(group.group_id)
            p = self.replica_manager.get_partition(GROUP_METADATA_TOPIC_NAME, partition)
            if p is None or not p.is_leader:
                continue
            batch = build_batch(tombstones, compression=self.config.topic_compression_codec, now_ms=now)
            result = self.replica_manager.append_to_partition(
                GROUP_METADATA_TOPIC_NAME, partition, memoryview(batch), 0,
                origin=AppendOrigin.COORDINATOR)
            if result.error != Errors.NONE:
                log.warning("writing tombstones of group %s failed: %s", group.group_id, result.error.name)
            removed_count += len(removed)
        return removed_count

    # -- loading and unloading ----------------------------------------------------------------
    def _bump(self, partition: int) -> int:
        generation = self._partition_generation.get(partition, 0) + 1
        self._partition_generation[partition] = generation
        return generation

    def begin_load(self, partition: int) -> int | None:
        """Marks the partition loading; None if it is loaded or loading already."""
        if partition in self.owned_partitions or partition in self.loading_partitions:
            return None
        self.loading_partitions.add(partition)
        return self._bump(partition)

    async def load_partition(self, partition: int, token: int,
                             on_group_loaded: Callable[[GroupMetadata], None]) -> None:
        """Replays the partition, installs its groups, then serves them (see begin_load)."""
        started = self.time_ms()
        replay = await self._replay(partition, token)
        if replay is None or self._partition_generation.get(partition) != token:
            return  # unloaded (or reloaded) while we read
        self.loading_partitions.discard(partition)
        loaded = self._install(replay)
        self.owned_partitions.add(partition)
        for group in loaded:
            on_group_loaded(group)
        log.log(logging.INFO if loaded else logging.DEBUG, "loaded %d groups of %s-%d in %d ms", len(loaded),
                GROUP_METADATA_TOPIC_NAME, partition, self.time_ms() - started)

    async def _replay(self, partition: int, token: int) -> _PartitionReplay | None:
        replay = _PartitionReplay()
        p = self.replica_manager.get_partition(GROUP_METADATA_TOPIC_NAME, partition)
        if p is None or p.log is None:
            return replay
        unified_log = p.log
        offset = unified_log.log_start_offset
        end = unified_log.log_end_offset
        while offset < end:
            if self._partition_generation.get(partition) != token:
                return None
            try:
                data = unified_log.read(offset, self.config.load_buffer_size, None, True)
                next_offset = replay.replay(data.read_bytes())
            except (CoordinatorRecordError, CorruptRecordError, LogError) as exc:
                # Kafka serves the partition after a failed load too; we keep what was read before.
                log.error("loading %s-%d stopped at offset %d: %s", GROUP_METADATA_TOPIC_NAME, partition,
                          offset, exc)
                break
            if next_offset is None or next_offset <= offset:
                break
            offset = next_offset
            await asyncio.sleep(0)  # let requests for other partitions through between reads
        return replay

    def _install(self, replay: _PartitionReplay) -> list[GroupMetadata]:
        now = self.time_ms()
        offsets = replay.offsets_by_group()
        pending = replay.pending_by_group()
        loaded = []
        for group_id, record in replay.groups.items():
            loaded.append(group_from_record(group_id, record, now))
        consumer_groups = {gid: records for gid, records in replay.consumer_records.items()
                           if (GROUP_METADATA, gid, None) in records}
        for group_id in (offsets.keys() | pending.keys() | consumer_groups.keys()) - replay.groups.keys():
            loaded.append(GroupMetadata(group_id, GroupState.EMPTY, now))  # offsets only, or KIP-848
        installed = []
        for group in loaded:
            if group.group_id in consumer_groups:
                group.consumer = rebuild_group(group.group_id, consumer_groups[group.group_id])
                group.protocol_type = "consumer"
            group.offsets = offsets.get(group.group_id, {})
            # Transactions still open: their offsets wait for the marker, as in Kafka's loadGroup.
            group.pending_transactional_offset_commits = pending.get(group.group_id, {})
            current = self.add_group(group)
            if current is group:
                installed.append(group)
            else:
                log.debug("group %s was cached already: keeping the cached one", group.group_id)
        return installed

    def unload_partition(self, partition: int, on_group_unloaded: Callable[[GroupMetadata], None]) -> int:
        """Stops serving the partition and drops its groups; returns how many."""
        self._bump(partition)
        self.owned_partitions.discard(partition)
        self.loading_partitions.discard(partition)
        count = 0
        for group in list(self.groups.values()):
            if self.partition_for(group.group_id) == partition:
                on_group_unloaded(group)
                del self.groups[group.group_id]
                count += 1
        return count
