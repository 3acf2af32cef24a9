"""UnifiedLog: one partition's log directory `<topic>-<partition>` (Kafka's UnifiedLog with its
LocalLog). It composes the segment list (log_segments.py, Kafka's LogSegments) and what the
loader (log_loader.py, Kafka's LogLoader) found at start-up: segments, recovery point and log
start offset, leader epoch cache, producer state.

Owns the log start / end offsets, the leader epoch cache (leader-epoch-checkpoint), producer state
(snapshots), partition.metadata, appends, reads, rolling, retention, truncation and flushing. The
high watermark is stored here but decided by the replica layer, which sets it.

Appends: `append_as_leader` validates (validator.py), assigns offsets, checks producer state and
writes with one pwrite; `append_as_follower` takes batches that already carry offsets.
Reads return file regions (FetchDataInfo.records: an open segment file, position and length),
not bytes; the network layer sends each region of 64 KiB or more with sendfile on a plaintext
connection, and reads the others (and what the socket did not take) with one pread when it writes
the response (socket_server.py: `read_bytes()`, then the transport's writelines).
Compaction (log_cleaner.py) writes `.cleaned` segments that `replace_segments` swaps in; loading
finishes or drops a swap a crash cut.

Synchronous plain code for the broker's event loop: no fsync unless flush.messages/flush.ms are
set, as Kafka does; rolled segments are fsynced by a call it hands out for a worker thread
(`flush_rolled_segments_elsewhere`). Knows nothing of partitions' leadership or the network.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, TypeVar

from kbroker.log import io_faults
from kbroker.log.append_origin import AppendOrigin
from kbroker.log.checkpoint import read_partition_metadata, write_partition_metadata
from kbroker.log.config import LogConfig
from kbroker.log.errors import KafkaStorageException, LogError
from kbroker.log.index import (
    AbortedTxn,
)
from kbroker.log.leader_epoch import LeaderEpochFileCache
from kbroker.log.log_dir_failure_channel import LogDirFailureChannel
from kbroker.log.log_loader import (
    SEGMENT_FILE_SUFFIXES,
    LogLoader,
    complete_txn,
    first_control_marker,
    is_cleaned_away_marker,
    rebuild_producer_state,
)
from kbroker.log.log_segments import LogSegments, open_segment
from kbroker.log.producer_state import (
    DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    SENTINEL,
    SNAPSHOT_FILE_SUFFIX,
    CompletedTxn,
    ProducerAppendInfo,
    ProducerStateManager,
    VerificationGuard,
)
from kbroker.log.records import (
    NO_TIMESTAMP,
    Buffer,
)
from kbroker.log.segment import (
    CLEANED_FILE_SUFFIX,
    DELETED_FILE_SUFFIX,
    SWAP_FILE_SUFFIX,
    FileRegion,
    LogOffsetMetadata,
    LogSegment,
    TimestampAndOffset,
    filename_prefix_from_offset,
    now_ms,
)
from kbroker.log.validator import (
    PreparedRecords,
    ValidationResult,
    analyze_and_validate_records,
    assign_prepared_offsets,
    validate_and_assign_offsets,
)
from kbroker.protocol.errors import Errors

log = logging.getLogger(__name__)

# ListOffsets special timestamps (ListOffsetsRequest).
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4
LATEST_TIERED_TIMESTAMP = -5
EARLIEST_PENDING_UPLOAD_TIMESTAMP = -6  # KIP-1023 (ListOffsets v11)

# Positions of the last appends' ends: high watermarks and fetch offsets are usually among them.
_OFFSET_POSITION_CACHE_SIZE = 32


@dataclass(slots=True)
class LogAppendInfo:
    """Result of an append (Kafka's LogAppendInfo): what the produce response needs."""

    base_offset: int
    last_offset: int
    log_append_time: int
    log_start_offset: int
    max_timestamp: int = NO_TIMESTAMP
    record_count: int = 0
    valid_bytes: int = 0
    duplicate: bool = False


@dataclass(slots=True)
class FetchDataInfo:
    """What a read found: a file region to send (or nothing) plus the offsets a fetch response
    carries. `high_watermark` and `last_stable_offset` are the log's values at read time."""

    fetch_offset_metadata: LogOffsetMetadata
    records: FileRegion | None
    first_entry_incomplete: bool
    log_end_offset: int
    log_start_offset: int
    high_watermark: int
    last_stable_offset: int
    aborted_transactions: list[AbortedTxn] | None = None

    @property
    def size(self) -> int:
        return self.records.length if self.records is not None else 0

    def read_bytes(self) -> bytes:
        return self.records.read_bytes() if self.records is not None else b""


def parse_topic_partition(dir_name: str) -> tuple[str, int]:
    """`<topic>-<partition>` (topic names may contain '-'), or a future log's
    `<topic>-<partition>.<uuid>-future` (Kafka's parseTopicPartitionName)."""
    if dir_name.endswith(FUTURE_DIR_SUFFIX):
        dir_name = dir_name[: -len(FUTURE_DIR_SUFFIX)].rpartition(".")[0]
    topic, separator, partition = dir_name.rpartition("-")
    if not separator or not topic or not partition.isdigit():
        raise ValueError(f"{dir_name!r} is not a <topic>-<partition> directory name")
    return topic, int(partition)


def log_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


DELETE_DIR_SUFFIX = "-delete"
# A replica being moved to another log dir of this broker (AlterReplicaLogDirs) is copied into a
# "future" log named `<topic>-<partition>.<uuid>-future` until it replaces the current one.
FUTURE_DIR_SUFFIX = "-future"
# Linux (and most file systems) refuse longer names; topic names are ASCII, so characters are bytes.
MAX_FILE_NAME_LENGTH = 255


def log_delete_dir_name(topic: str, partition: int) -> str:
    """The name a deleted log's directory takes until it is removed (Kafka's logDeleteDirName).

    `<topic>-<partition>.<uuid>-delete`, with the topic cut short so that the whole fits 255
    bytes: a legal topic name has up to 249 characters, and `-0.<32 hex digits>-delete` alone
    takes 42. The directory is only ever removed, so the cut topic never needs to be read back."""
    return _log_dir_name_with_suffix_capped_length(topic, partition, DELETE_DIR_SUFFIX)


def log_future_dir_name(topic: str, partition: int) -> str:
    """The directory name of a future log (Kafka's logFutureDirName). Not shortened: it must be
    read back at start-up, so a topic too long for it cannot be moved (INVALID_TOPIC_EXCEPTION)."""
    return f"{log_dir_name(topic, partition)}.{uuid.uuid4().hex}{FUTURE_DIR_SUFFIX}"


_P = ParamSpec("_P")
_R = TypeVar("_R")


def maybe_handle_io_exception(
    message: str,
) -> Callable[[Callable[Concatenate[UnifiedLog, _P], _R]], Callable[Concatenate[UnifiedLog, _P], _R]]:
    """Kafka's maybeHandleIOException around a UnifiedLog method: an OSError marks the log's
    directory offline in its LogDirFailureChannel and reaches the caller as KafkaStorageException
    (KAFKA_STORAGE_ERROR); once the directory is offline, the method is refused the same way
    without touching the disk. `message` names the operation, `{}` the partition."""

    def decorate(method: Callable[Concatenate[UnifiedLog, _P], _R]) -> Callable[Concatenate[UnifiedLog, _P], _R]:
        @functools.wraps(method)
        def guarded(self: UnifiedLog, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            if self.dir_offline:
                raise KafkaStorageException(f"the log directory {self.parent_dir} of {self.name} is offline")
            try:
                return method(self, *args, **kwargs)
            except OSError as error:
                raise self.io_failed(message.format(self.name), error) from error

        return guarded

    return decorate


def _log_dir_name_with_suffix_capped_length(topic: str, partition: int, suffix: str) -> str:
    full_suffix = f"-{partition}.{uuid.uuid4().hex}{suffix}"
    return topic[: MAX_FILE_NAME_LENGTH - len(full_suffix)] + full_suffix


class UnifiedLog:
    """A partition's log. Constructing one loads its directory (creating it if missing), recovering
    segments after an unclean shutdown (`had_clean_shutdown=False`) from `recovery_point` on."""

    def __init__(
        self,
        directory: str,
        config: LogConfig,
        *,
        topic_id: str | None = None,
        recovery_point: int = 0,
        log_start_offset: int = 0,
        had_clean_shutdown: bool = False,
        producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS,
        now: int | None = None,
        log_dir_failure_channel: LogDirFailureChannel | None = None,
    ):
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.topic, self.partition = parse_topic_partition(os.path.basename(directory.rstrip("/")))
        self.name = f"{self.topic}-{self.partition}"
        # The log directory (of log.dirs) holding this partition's, and where its I/O errors go.
        self.parent_dir = os.path.dirname(os.path.abspath(directory))
        self.log_dir_failure_channel = log_dir_failure_channel
        self.config = config
        self.topic_id = topic_id
        self.segments = LogSegments()
        self.leader_epoch_cache = LeaderEpochFileCache(directory)
        self.producer_state_manager = ProducerStateManager(directory, producer_id_expiration_ms)
        self._positions: OrderedDict[int, LogOffsetMetadata] = OrderedDict()
        self._pending_deletes: list[tuple[int, LogSegment]] = []
        self._unflushed_messages = 0
        self.last_flush_ms = now_ms() if now is None else now
        # Lowest offset truncated to since the log cleaner last looked (None: no truncation);
        # the cleaner lowers its cleaner-offset-checkpoint to it and resets it.
        self.min_truncated_offset: int | None = None
        self._truncations = 0  # a rolled-segment flush may not vouch for what a truncation replaced
        self._rolled_flush_running = False
        loaded = LogLoader(
            directory,
            config,
            self.segments,
            self.leader_epoch_cache,
            self.producer_state_manager,
            log_start_offset=log_start_offset,
            recovery_point=recovery_point,
            had_clean_shutdown=had_clean_shutdown,
        ).load(now_ms() if now is None else now)
        self.log_start_offset = loaded.log_start_offset
        self.recovery_point = loaded.recovery_point
        self.high_watermark = loaded.log_start_offset
        self._log_end = loaded.next_offset_metadata
        self._init_topic_id(topic_id)

    def _init_topic_id(self, topic_id: str | None) -> None:
        stored = read_partition_metadata(self.directory)
        if topic_id is None:
            self.topic_id = stored
        elif stored is None:
            write_partition_metadata(self.directory, topic_id)
        elif stored != topic_id:
            raise LogError(
                Errors.INCONSISTENT_TOPIC_ID,
                f"{self.directory} belongs to topic id {stored}, not {topic_id}",
            )

    def io_failed(self, message: str, error: OSError) -> KafkaStorageException:
        """Report an I/O error of this log: its directory goes offline; the error for the caller."""
        if self.log_dir_failure_channel is not None:
            self.log_dir_failure_channel.maybe_add_offline_log_dir(
                self.parent_dir, f"{message} in dir {self.parent_dir}", error
            )
        return KafkaStorageException(f"{message} in dir {self.parent_dir}: {error}")

    @maybe_handle_io_exception("Error while assigning the topic id of {}")
    def assign_topic_id(self, topic_id: str) -> None:
        """Record the topic id in partition.metadata (first time, or confirm it matches)."""
        self._init_topic_id(topic_id)
        self.topic_id = topic_id

    # ------------------------------------------------------------------ segments

    def floor_segment(self, offset: int) -> LogSegment | None:
        return self.segments.floor_segment(offset)

    @property
    def active_segment(self) -> LogSegment:
        return self.segments.active_segment

    def log_segments(self) -> list[LogSegment]:
        return self.segments.values()

    def log_segments_between(self, from_offset: int, to_offset: int) -> list[LogSegment]:
        """Segments that may hold offsets in [from_offset, to_offset) (Kafka's logSegments(from, to))."""
        return self.segments.values_between(from_offset, to_offset)

    @property
    def number_of_segments(self) -> int:
        return len(self.segments)

    @property
    def size(self) -> int:
        """Bytes in all segments."""
        return self.segments.size_in_bytes

    @property
    def is_future(self) -> bool:
        """A future log: the copy of a replica moving to this log dir (AlterReplicaLogDirs)."""
        return self.directory.rstrip("/").endswith(FUTURE_DIR_SUFFIX)

    @property
    def truncation_count(self) -> int:
        """How many truncations this log has had: a copy of it (the future log) that saw a
        different count must look for where they diverge."""
        return self._truncations

    @property
    def log_end_offset(self) -> int:
        return self._log_end.message_offset

    @property
    def dir_offline(self) -> bool:
        """The log directory failed: every guarded method is refused (KAFKA_STORAGE_ERROR)."""
        channel = self.log_dir_failure_channel
        return channel is not None and bool(channel.offline_log_dirs) and self.parent_dir in channel.offline_log_dirs

    @property
    def log_end_offset_metadata(self) -> LogOffsetMetadata:
        return self._log_end

    # ------------------------------------------------------------------ appends

    @maybe_handle_io_exception("Error while appending records to {}")
    def append_as_leader(
        self,
        records: Buffer,
        leader_epoch: int,
        origin: AppendOrigin = AppendOrigin.CLIENT,
        now: int | None = None,
        verification_guard: VerificationGuard | None = None,
        prepared: PreparedRecords | None = None,
    ) -> LogAppendInfo:
        """Validate, assign offsets from the log end offset, check producer state, write.

        A writable buffer is patched in place (the caller gives it up). Raises LogError with
        Kafka's error code; a retried idempotent batch returns its original offsets.
        `verification_guard` is None where KIP-890 verification is off; otherwise a
        transactional batch that would open a transaction here needs the guard this log handed
        out for it (maybe_start_transaction_verification), else INVALID_TXN_STATE.
        `prepared`: what validator.prepare_leader_append computed for these records in a worker
        thread (append_offload.py), used while this log's config is still the one it was
        computed for; otherwise everything is done here.
        """
        rebuilt = None
        if prepared is not None and prepared.config is self.config:
            if prepared.error is not None:
                raise prepared.error
            now, view, headers, rebuilt = prepared.now_ms, prepared.view, prepared.headers, prepared.rebuilt
        else:
            now = now_ms() if now is None else now
            view, headers = analyze_and_validate_records(records, origin, self.config.max_message_bytes,
                                                         config=self.config)
        if not headers:
            return LogAppendInfo(-1, -1, NO_TIMESTAMP, self.log_start_offset)
        if rebuilt is not None:
            result = assign_prepared_offsets(rebuilt, self.log_end_offset, leader_epoch)
        else:
            result = validate_and_assign_offsets(
                view,
                headers,
                first_offset=self.log_end_offset,
                leader_epoch=leader_epoch,
                now_ms=now,
                config=self.config,
                origin=origin,
                topic=self.topic,
                partition=self.partition,
            )
        if result.size_maybe_changed:
            for batch in result.batches:
                if batch.size > self.config.max_message_bytes:
                    raise LogError(
                        Errors.MESSAGE_TOO_LARGE,
                        f"recompressed batch of {batch.size} bytes exceeds max.message.bytes {self.config.max_message_bytes}",
                    )
        return self._append(result, origin, now, verification_guard)

    @maybe_handle_io_exception("Error while appending records to {}")
    def append_as_follower(self, records: Buffer, now: int | None = None) -> LogAppendInfo:
        """Append batches fetched from the leader, offsets and epochs as they are."""
        now = now_ms() if now is None else now
        view, headers = analyze_and_validate_records(
            records, AppendOrigin.REPLICATION, self.config.max_message_bytes, ignore_record_size=True
        )
        if not headers:
            return LogAppendInfo(-1, -1, NO_TIMESTAMP, self.log_start_offset)
        previous_last = -1
        for header in headers:
            if header.base_offset <= previous_last or header.last_offset_delta < 0:
                raise LogError(
                    Errors.UNKNOWN_SERVER_ERROR,
                    f"out of order offsets in follower append to {self.directory}",
                )
            previous_last = header.last_offset
        if headers[0].base_offset < self.log_end_offset:
            raise LogError(
                Errors.UNKNOWN_SERVER_ERROR,
                f"unexpected append offset {headers[0].base_offset}, log end offset is {self.log_end_offset}",
            )
        max_timestamp, offset_of_max = NO_TIMESTAMP, -1
        for header in headers:
            if header.max_timestamp > max_timestamp:
                max_timestamp, offset_of_max = header.max_timestamp, header.last_offset
        result = ValidationResult(
            records=view,
            batches=headers,
            first_offset=headers[0].base_offset,
            last_offset=headers[-1].last_offset,
            max_timestamp=max_timestamp,
            shallow_offset_of_max_timestamp=offset_of_max,
            log_append_time=NO_TIMESTAMP,
            record_count=sum(header.record_count for header in headers),
            size_maybe_changed=False,
        )
        return self._append(result, AppendOrigin.REPLICATION, now)

    def _append(self, result: ValidationResult, origin: AppendOrigin, now: int,
                verification_guard: VerificationGuard | None = None) -> LogAppendInfo:
        size = len(result.records)
        if size > self.config.segment_bytes:
            raise LogError(
                Errors.RECORD_LIST_TOO_LARGE,
                f"message batch size is {size} bytes which exceeds the maximum configured segment size of "
                f"{self.config.segment_bytes}",
            )
        segment = self._maybe_roll(size, result, now)
        producer_infos, completed_txns, duplicate = self._analyze_producer_state(result, origin, verification_guard)
        if duplicate is not None:
            return LogAppendInfo(
                base_offset=duplicate.first_offset,
                last_offset=duplicate.last_offset,
                log_append_time=duplicate.timestamp,
                log_start_offset=self.log_start_offset,
                max_timestamp=duplicate.timestamp,
                duplicate=True,
            )
        segment.append(
            result.last_offset, result.max_timestamp, result.shallow_offset_of_max_timestamp, result.records,
            keep_in_memory=origin is not AppendOrigin.REPLICATION,
        )
        self._set_log_end(LogOffsetMetadata(result.last_offset + 1, segment.base_offset, segment.size))
        for batch in result.batches:
            if batch.partition_leader_epoch >= 0:
                self.leader_epoch_cache.assign(batch.partition_leader_epoch, batch.base_offset)
        psm = self.producer_state_manager
        for info in producer_infos:
            psm.update(info)
            if info.transactional:  # a marker ended its transaction, or a first batch opened one
                psm.clear_verification_state_entry(info.producer_id)
        for completed in completed_txns:
            complete_txn(psm, segment, completed, self.high_watermark)
        psm.update_map_end_offset(result.last_offset + 1)
        self._unflushed_messages += result.record_count
        if self._unflushed_messages >= self.config.flush_messages:
            self.flush()
        return LogAppendInfo(
            base_offset=result.first_offset,
            last_offset=result.last_offset,
            log_append_time=result.log_append_time,
            log_start_offset=self.log_start_offset,
            max_timestamp=result.max_timestamp,
            record_count=result.record_count,
            valid_bytes=size,
        )

    def _analyze_producer_state(self, result: ValidationResult, origin: AppendOrigin,
                                verification_guard: VerificationGuard | None = None):
        """Duplicate detection, KIP-890's verification and sequence/epoch checks before anything
        is written."""
        psm = self.producer_state_manager
        infos: dict[int, ProducerAppendInfo] = {}
        completed: list[CompletedTxn] = []
        for batch in result.batches:
            if not batch.has_producer_id or is_cleaned_away_marker(batch):
                continue
            if origin is AppendOrigin.CLIENT:
                entry = psm.last_entry(batch.producer_id)
                duplicate = entry.find_duplicate_batch(batch) if entry is not None else None
                if duplicate is not None:
                    return [], [], duplicate
                if (verification_guard is not None and batch.is_transactional and not batch.is_control
                        and (entry is None or entry.current_txn_first_offset is None)
                        and not psm.verification_guard(batch.producer_id).verify(verification_guard)):
                    raise LogError(Errors.INVALID_TXN_STATE, "Record was not part of an ongoing transaction")
            info = infos.get(batch.producer_id)
            if info is None:
                info = infos[batch.producer_id] = psm.prepare_update(batch.producer_id, origin)
            marker = first_control_marker(result.records, batch) if batch.is_control else None
            txn = info.append(batch, marker)
            if txn is not None:
                completed.append(txn)
        return list(infos.values()), completed, None

    def maybe_start_transaction_verification(self, producer_id: int, epoch: int,
                                             now: int | None = None) -> VerificationGuard:
        """KIP-890 (Kafka's maybeStartTransactionVerification): SENTINEL when the producer has a
        transaction open here (nothing to verify), else the guard its verified append must bring."""
        psm = self.producer_state_manager
        entry = psm.last_entry(producer_id)
        if entry is not None and entry.current_txn_first_offset is not None:
            return SENTINEL
        return psm.maybe_create_verification_state_entry(producer_id, epoch, now_ms() if now is None else now).guard

    def last_records_of_active_producers(self) -> dict[int, tuple[int | None, int]]:
        """Producer id -> (last offset of its last data batch or None, producer epoch): the batches
        the cleaner must keep (even emptied) so sequence and epoch checks survive compaction."""
        return {
            producer_id: (
                entry.last_data_offset if entry.last_data_offset >= 0 else None,
                entry.producer_epoch,
            )
            for producer_id, entry in self.producer_state_manager.producers.items()
        }

    def _set_log_end(self, metadata: LogOffsetMetadata) -> None:
        self._log_end = metadata
        self._positions[metadata.message_offset] = metadata
        if len(self._positions) > _OFFSET_POSITION_CACHE_SIZE:
            self._positions.popitem(last=False)

    # ------------------------------------------------------------------ rolling

    def _maybe_roll(self, messages_size: int, result: ValidationResult, now: int) -> LogSegment:
        segment = self.segments.active_segment
        config = self.config
        if segment.should_roll(config.segment_bytes, config.max_segment_ms, segment.roll_jitter_ms, messages_size,
                               result.max_timestamp, result.last_offset, now):
            return self.roll(result.first_offset)
        return segment

    @maybe_handle_io_exception("Error while rolling log segment for {}")
    def roll(self, expected_next_offset: int | None = None) -> LogSegment:
        """Start a new active segment at max(expected_next_offset, log end offset)."""
        new_offset = max(expected_next_offset or 0, self.log_end_offset)
        active = self.segments.active_segment
        if active.base_offset == new_offset:
            if active.size == 0:
                return active
            raise ValueError(f"segment {new_offset} already exists in {self.directory}")
        active.on_become_inactive_segment()
        psm = self.producer_state_manager
        psm.update_map_end_offset(new_offset)
        psm.take_snapshot()
        segment = open_segment(self.directory, self.config, new_offset)
        self.segments.add(segment)
        self._set_log_end(LogOffsetMetadata(self.log_end_offset, segment.base_offset, 0))
        return segment

    # ------------------------------------------------------------------ reads

    @maybe_handle_io_exception("Error while reading from {}")
    def read(
        self,
        fetch_offset: int,
        max_bytes: int,
        max_offset: int | None = None,
        min_one_message: bool = True,
        include_aborted_transactions: bool = False,
    ) -> FetchDataInfo:
        """Read from `fetch_offset`, at most `max_bytes` (or one whole batch, KIP-74), never past
        `max_offset` (consumers: the high watermark or last stable offset; followers: None = log end).

        Raises LogError(OFFSET_OUT_OF_RANGE) outside [log start, log end].
        """
        log_end = self._log_end
        if fetch_offset < self.log_start_offset or fetch_offset > log_end.message_offset:
            raise LogError(
                Errors.OFFSET_OUT_OF_RANGE,
                f"offset {fetch_offset} is out of range for {self.topic}-{self.partition}: "
                f"[{self.log_start_offset}, {log_end.message_offset}]",
            )
        end = log_end.message_offset if max_offset is None else min(max_offset, log_end.message_offset)
        # read_committed fetches carry a (possibly empty) list of aborted transactions.
        no_aborted: list[AbortedTxn] | None = [] if include_aborted_transactions else None
        if fetch_offset >= end:  # nothing to read (a caught-up consumer): no position looked up
            return self._fetch_info(LogOffsetMetadata(fetch_offset), None, False, no_aborted)
        upper = log_end if max_offset is None else self.convert_to_offset_metadata(end)
        # A consumer that keeps up fetches from a recent log end, whose position the cache of the
        # last log ends holds: the segment then reads that batch's header alone instead of every
        # header from the index entry before it (up to index.interval.bytes of small batches).
        known = self._positions.get(fetch_offset)
        for segment in self.segments.segments_from(fetch_offset):
            base = segment.base_offset
            if base < upper.segment_base_offset:
                max_position = segment.size
            elif base == upper.segment_base_offset:
                max_position = upper.relative_position
            else:
                break
            start = known.relative_position if known is not None and known.segment_base_offset == base else 0
            found = segment.read(fetch_offset, max_bytes, max_position, min_one_message, start)
            if found is not None:
                aborted = no_aborted
                if include_aborted_transactions:
                    # A read stays within one segment: aborts starting past it do not concern it
                    # (Kafka bounds them the same way, or closer with the offset index).
                    following = self.segments.higher_segment(base)
                    bound = upper.message_offset if following is None else min(upper.message_offset,
                                                                               following.base_offset)
                    aborted = self.collect_aborted_transactions(fetch_offset, bound)
                return self._fetch_info(
                    found.offset_metadata, found.region, found.first_entry_incomplete, aborted
                )
        return self._fetch_info(log_end, None, False, no_aborted)

    def _fetch_info(
        self,
        metadata: LogOffsetMetadata,
        region: FileRegion | None,
        first_entry_incomplete: bool,
        aborted: list[AbortedTxn] | None,
    ) -> FetchDataInfo:
        return FetchDataInfo(
            fetch_offset_metadata=metadata,
            records=region,
            first_entry_incomplete=first_entry_incomplete,
            log_end_offset=self.log_end_offset,
            log_start_offset=self.log_start_offset,
            high_watermark=self.high_watermark,
            last_stable_offset=self.last_stable_offset,
            aborted_transactions=aborted,
        )

    def convert_to_offset_metadata(self, offset: int) -> LogOffsetMetadata:
        """Where the batch starting at `offset` lies (the log end if offset == log end offset)."""
        if offset == self._log_end.message_offset:
            return self._log_end
        cached = self._positions.get(offset)
        if cached is not None and cached.segment_base_offset in self.segments:
            return cached
        segment = self.segments.floor_segment(offset)
        if segment is None:
            return LogOffsetMetadata(offset, self.segments.first_segment.base_offset, 0)
        found = segment.translate_offset(offset)
        if found is None:
            following = self.segments.higher_segment(segment.base_offset)
            if following is not None:
                return LogOffsetMetadata(offset, following.base_offset, 0)
            return self._log_end
        return LogOffsetMetadata(offset, segment.base_offset, found.position)

    def collect_aborted_transactions(self, start_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [start_offset, upper_bound_offset), for read_committed.
        Markers come after their data, so later segments may list them; the search stops where a
        segment's index says no later abort can overlap."""
        result: list[AbortedTxn] = []
        for segment in self.segments.segments_from(start_offset):
            if segment.txn_index.collect_aborted(start_offset, upper_bound_offset, result):
                break
        return result

    # ------------------------------------------------------------------ offsets

    @property
    def last_stable_offset(self) -> int:
        first_unstable = self.producer_state_manager.first_unstable_offset()
        if first_unstable is None:
            return self.high_watermark
        return min(first_unstable, self.high_watermark)

    def update_high_watermark(self, offset: int) -> int:
        """Set the high watermark, kept within [log start, log end]; returns the value set."""
        self.high_watermark = min(max(offset, self.log_start_offset), self.log_end_offset)
        self.producer_state_manager.on_high_watermark_updated(self.high_watermark)
        return self.high_watermark

    def maybe_increment_high_watermark(self, offset: int) -> bool:
        """Move the high watermark forward only; True if it moved."""
        previous = self.high_watermark
        if offset <= previous:
            return False
        return self.update_high_watermark(offset) > previous

    @maybe_handle_io_exception("Error while incrementing the log start offset of {}")
    def maybe_increment_log_start_offset(self, new_log_start_offset: int) -> bool:
        """DeleteRecords: move the log start forward (never past the high watermark)."""
        if new_log_start_offset > self.high_watermark:
            raise LogError(
                Errors.OFFSET_OUT_OF_RANGE,
                f"cannot increment the log start offset to {new_log_start_offset} of {self.topic}-{self.partition} "
                f"since it is larger than the high watermark {self.high_watermark}",
            )
        if new_log_start_offset <= self.log_start_offset:
            return False
        self.log_start_offset = new_log_start_offset
        self.leader_epoch_cache.truncate_from_start(new_log_start_offset)
        return True

    @maybe_handle_io_exception("Error while fetching offset by timestamp for {}")
    def fetch_offset_by_timestamp(self, target_timestamp: int) -> TimestampAndOffset | None:
        """ListOffsets on this log: special timestamps (-1 latest, -2 earliest, -3 max timestamp,
        -4 earliest local, -5 latest tiered, -6 earliest pending upload) or the first record with
        timestamp >= target."""
        cache = self.leader_epoch_cache
        if target_timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
            earliest = cache.earliest_entry()
            epoch = (
                earliest.epoch
                if earliest is not None and earliest.start_offset <= self.log_start_offset
                else None
            )
            return TimestampAndOffset(NO_TIMESTAMP, self.log_start_offset, epoch)
        if target_timestamp == LATEST_TIMESTAMP:
            return TimestampAndOffset(NO_TIMESTAMP, self.log_end_offset, cache.latest_epoch())
        if target_timestamp in (LATEST_TIERED_TIMESTAMP, EARLIEST_PENDING_UPLOAD_TIMESTAMP):
            return TimestampAndOffset(NO_TIMESTAMP, -1, None)  # Kafka's answer without remote storage
        if target_timestamp == MAX_TIMESTAMP:
            return self._max_timestamp_and_offset()
        for segment in self.log_segments():
            if segment.largest_timestamp >= target_timestamp:
                return segment.find_offset_by_timestamp(target_timestamp, self.log_start_offset)
        return None

    def legacy_fetch_offsets_before(self, timestamp: int, max_num_offsets: int, now: int | None = None) -> list[int]:
        """ListOffsets v0 (Kafka's legacyFetchOffsetsBefore): up to `max_num_offsets` segment
        base offsets (and the log end, stamped now, when the active segment has data) whose
        segment was last modified at or before `timestamp`, newest first; -1 starts from the
        log end, -2 from the log start."""
        segments = self.log_segments()
        points = [(max(segment.base_offset, self.log_start_offset), segment.last_modified_ms)
                  for segment in segments]
        if segments[-1].size > 0:
            points.append((self.log_end_offset, now_ms() if now is None else now))
        if timestamp == LATEST_TIMESTAMP:
            start = len(points) - 1
        elif timestamp == EARLIEST_TIMESTAMP:
            start = 0
        else:
            start = len(points) - 1
            while start >= 0 and points[start][1] > timestamp:
                start -= 1
        count = max(0, min(max_num_offsets, start + 1))
        return sorted((points[start - j][0] for j in range(count)), reverse=True)

    def _max_timestamp_and_offset(self) -> TimestampAndOffset | None:
        best = max(self.log_segments(), key=lambda segment: segment.max_timestamp_so_far)
        if best.max_timestamp_so_far < 0:
            return TimestampAndOffset(NO_TIMESTAMP, -1, None)
        found = best.record_with_timestamp(best.offset_of_max_timestamp_so_far, best.max_timestamp_so_far)
        if found is None:
            return None
        return found._replace(leader_epoch=self.leader_epoch_cache.epoch_for_offset(found.offset))

    def end_offset_for_epoch(self, leader_epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (epoch, end offset), (-1, -1) if unknown."""
        return self.leader_epoch_cache.end_offset_for(leader_epoch, self.log_end_offset)

    # ------------------------------------------------------------------ truncation

    @maybe_handle_io_exception("Error while truncating {}")
    def truncate_to(self, target_offset: int) -> bool:
        """Remove everything from `target_offset` on (a follower diverging from its leader)."""
        if target_offset < 0:
            raise ValueError(f"cannot truncate to a negative offset {target_offset}")
        if target_offset >= self.log_end_offset:
            return False
        if target_offset <= self.segments.first_segment.base_offset:
            self.truncate_fully_and_start_at(target_offset)
            return True
        self._note_truncation(target_offset)
        for segment in self.segments.higher_segments(target_offset):
            self._delete_segment_async(segment)
        active = self.segments.active_segment
        active.truncate_to(target_offset)
        next_offset = active.read_next_offset()
        self._positions.clear()
        self._log_end = LogOffsetMetadata(next_offset, active.base_offset, active.size)
        self.leader_epoch_cache.truncate_from_end(next_offset)
        self.log_start_offset = min(self.log_start_offset, next_offset)
        self.recovery_point = min(self.recovery_point, next_offset)
        rebuild_producer_state(
            self.segments,
            self.producer_state_manager,
            self.log_start_offset,
            next_offset,
            self.high_watermark,
            now_ms(),
        )
        self.high_watermark = min(self.high_watermark, next_offset)
        return True

    @maybe_handle_io_exception("Error while truncating the entire log of {}")
    def truncate_fully_and_start_at(self, new_offset: int) -> None:
        """Drop every segment and start empty at `new_offset`."""
        self._note_truncation(new_offset)
        for segment in self.log_segments():
            self._delete_segment_async(segment)
        self.segments.add(open_segment(self.directory, self.config, new_offset))
        self._positions.clear()
        self._log_end = LogOffsetMetadata(new_offset, new_offset, 0)
        self.leader_epoch_cache.clear()
        self.producer_state_manager.truncate_fully_and_start_at(new_offset)
        self.log_start_offset = new_offset
        self.recovery_point = new_offset
        self.high_watermark = new_offset

    def _note_truncation(self, offset: int) -> None:
        self._truncations += 1
        if self.min_truncated_offset is None or offset < self.min_truncated_offset:
            self.min_truncated_offset = offset

    # ------------------------------------------------------------------ retention

    @maybe_handle_io_exception("Error while deleting segments of {}")
    def delete_old_segments(self, now: int | None = None) -> int:
        """Retention: whole segments below the log start offset, then (cleanup.policy delete) beyond
        retention.bytes and retention.ms. Segments at or past the high watermark are kept."""
        now = now_ms() if now is None else now
        deleted = self._delete_segments_while(self._below_log_start, "log start offset breach")
        if self.config.delete:
            deleted += self._delete_retention_size_breached()
            deleted += self._delete_segments_while(
                lambda segment, _next: (
                    self.config.retention_ms >= 0
                    and now - segment.largest_timestamp > self.config.retention_ms
                ),
                f"retention.ms {self.config.retention_ms} breach by the largest record timestamps",
            )
        return deleted

    def _below_log_start(self, _segment: LogSegment, next_segment: LogSegment | None) -> bool:
        return next_segment is not None and next_segment.base_offset <= self.log_start_offset

    def _delete_retention_size_breached(self) -> int:
        retention_bytes = self.config.retention_bytes
        if retention_bytes < 0:
            return 0
        excess = self.size - retention_bytes
        if excess <= 0:
            return 0

        def over_limit(segment: LogSegment, _next: LogSegment | None) -> bool:
            nonlocal excess
            if excess - segment.size >= 0:
                excess -= segment.size
                return True
            return False

        return self._delete_segments_while(over_limit, f"retention.bytes {retention_bytes} breach")

    def _delete_segments_while(self, predicate, reason: str) -> int:
        """Delete the longest prefix of segments matching `predicate(segment, next_segment)`; the
        active segment goes too if everything matches (a fresh one is rolled first). One log line
        names the reason, as Kafka's does."""
        deletable: list[LogSegment] = []
        segments = self.log_segments()
        for index, segment in enumerate(segments):
            next_segment = segments[index + 1] if index + 1 < len(segments) else None
            upper_bound = next_segment.base_offset if next_segment is not None else self.log_end_offset
            is_last_and_empty = next_segment is None and segment.size == 0
            if (
                self.high_watermark >= upper_bound
                and not is_last_and_empty
                and predicate(segment, next_segment)
            ):
                deletable.append(segment)
            else:
                break
        if not deletable:
            return 0
        if len(deletable) == len(segments):
            self.roll()
        for segment in deletable:
            if segment is not self.active_segment:
                self._delete_segment_async(segment)
                self.producer_state_manager.remove_and_delete_snapshot(segment.base_offset)
        first_base = self.segments.first_segment.base_offset
        if first_base > self.log_start_offset:
            self.log_start_offset = first_base
            self.leader_epoch_cache.truncate_from_start(first_base)
        log.info("%s-%d: deleted %d segments (%s); log start offset %d", self.topic, self.partition,
                 len(deletable), reason, self.log_start_offset)
        return len(deletable)

    # ------------------------------------------------------------------ compaction

    def create_cleaned_segment(self, base_offset: int) -> LogSegment:
        """An empty `.cleaned` segment for the log cleaner to fill (leftovers of an earlier attempt
        at the same base offset are removed first)."""
        prefix = os.path.join(self.directory, filename_prefix_from_offset(base_offset))
        for suffix in SEGMENT_FILE_SUFFIXES:
            with contextlib.suppress(FileNotFoundError):
                os.remove(prefix + suffix + CLEANED_FILE_SUFFIX)
        return open_segment(self.directory, self.config, base_offset, file_suffix=CLEANED_FILE_SUFFIX)

    @maybe_handle_io_exception("Error while replacing segments of {}")
    def replace_segments(self, cleaned: LogSegment, old_segments: list[LogSegment]) -> None:
        """Swap a fully written, flushed `.cleaned` segment in for `old_segments` (LocalLog's
        replaceSegments). A crash at any point leaves files `_remove_temporary_files` resolves:
        `.cleaned` (dropped), `.swap` (completed), old segments as `.deleted` (dropped)."""
        cleaned.change_file_suffixes(CLEANED_FILE_SUFFIX, SWAP_FILE_SUFFIX, log_file_last=True)
        for segment in old_segments:
            if self.segments.get(segment.base_offset) is segment:
                self._delete_segment_async(segment)
        self.segments.add(cleaned)
        cleaned.change_file_suffixes(SWAP_FILE_SUFFIX, "")
        # Cached positions may point into the replaced files.
        self._positions.clear()

    def _delete_segment_async(self, segment: LogSegment) -> None:
        """Unlink from the log now, rename to .deleted, remove after file.delete.delay.ms (readers
        may still be sending from it)."""
        self.segments.remove(segment.base_offset)
        segment.change_file_suffixes("", DELETED_FILE_SUFFIX)
        self._pending_deletes.append((now_ms() + self.config.file_delete_delay_ms, segment))

    @maybe_handle_io_exception("Error while deleting old segment files of {}")
    def delete_pending_files(self, now: int | None = None, force: bool = False) -> int:
        """Remove `.deleted` segments whose delay has passed; returns how many were removed."""
        now = now_ms() if now is None else now
        due = [(when, segment) for when, segment in self._pending_deletes if force or when <= now]
        for entry in due:
            self._pending_deletes.remove(entry)
            entry[1].delete()
        return len(due)

    def remove_expired_producers(self, now: int | None = None) -> None:
        self.producer_state_manager.remove_expired_producers(now_ms() if now is None else now)

    # ------------------------------------------------------------------ flushing and closing

    @property
    def unflushed_messages(self) -> int:
        return self._unflushed_messages

    @maybe_handle_io_exception("Error while flushing log for {}")
    def flush(self, up_to_offset: int | None = None) -> None:
        """fsync segments holding offsets in [recovery point, up_to_offset) and advance the
        recovery point (default: everything)."""
        target = self.log_end_offset if up_to_offset is None else min(up_to_offset, self.log_end_offset)
        if target <= self.recovery_point and up_to_offset is not None:
            return
        for segment in self._unflushed_segments(target):
            segment.flush()
        self.recovery_point = max(self.recovery_point, target)
        if target == self.log_end_offset:
            self._unflushed_messages = 0
        self.last_flush_ms = now_ms()

    def _unflushed_segments(self, up_to_offset: int) -> list[LogSegment]:
        """The segments holding offsets in [recovery point, up_to_offset)."""
        unflushed = []
        for segment in self.segments:
            following = self.segments.higher_segment(segment.base_offset)
            if segment.base_offset < up_to_offset and (
                following is None or following.base_offset > self.recovery_point
            ):
                unflushed.append(segment)
        return unflushed

    def flush_if_due(self, now: int | None = None) -> bool:
        """fsync when flush.ms has passed with unflushed data (here and now: the user asked for it)."""
        now = now_ms() if now is None else now
        if self._unflushed_messages > 0 and now - self.last_flush_ms >= self.config.flush_ms:
            self.flush()
            return True
        return False

    def flush_rolled_segments_elsewhere(
        self,
    ) -> tuple[Callable[[], None], Callable[[BaseException | None], None]] | None:
        """Kafka flushes a segment once it is rolled, off the append path (its flush-log task),
        which lets the recovery point advance. When segments rolled since the last flush, returns
        (a blocking call that fsyncs them, for a worker thread; what to call here with its
        error, None on success: an OSError takes the log directory offline), else None. One at a time per log. Appends never wait for it: fsyncing a 1 GiB
        segment on the event loop stalled every partition for most of a second."""
        target = self.active_segment.base_offset
        if self._rolled_flush_running or self.recovery_point >= target:
            return None
        fsyncs = [segment.flush_elsewhere() for segment in self._unflushed_segments(target)]
        truncations = self._truncations
        self._rolled_flush_running = True

        def fsync_segments() -> None:
            for fsync_segment in fsyncs:
                fsync_segment()

        def done(error: BaseException | None) -> None:
            self._rolled_flush_running = False
            if isinstance(error, OSError):
                self.io_failed(f"Error while flushing rolled segments of {self.name}", error)
            if error is None and truncations == self._truncations:  # else those offsets may hold newer data
                self.recovery_point = max(self.recovery_point, min(target, self.log_end_offset))

        return fsync_segments, done

    @maybe_handle_io_exception("Error while closing {}")
    def close(self, sync: bool = True) -> None:
        """Snapshot producer state at the log end and close every segment (trimming indexes)."""
        psm = self.producer_state_manager
        psm.update_map_end_offset(self.log_end_offset)
        psm.take_snapshot(sync=sync)
        for segment in self.log_segments():
            segment.close()
        self.delete_pending_files(force=True)

    def close_handlers(self) -> None:
        for segment in self.log_segments():
            segment.close_handlers()

    @maybe_handle_io_exception("Error while renaming dir for {}")
    def rename_dir(self, new_name: str) -> None:
        """Move the partition directory (e.g. to `<topic>-<p>.<uuid>-delete`); open files follow."""
        parent = os.path.dirname(self.directory.rstrip("/"))
        new_directory = os.path.join(parent, new_name)
        io_faults.check("rename", self.directory)
        os.rename(self.directory, new_directory)
        for segment in self.log_segments() + [segment for _when, segment in self._pending_deletes]:
            segment.move_to_directory(new_directory)
        self.directory = new_directory
        self.leader_epoch_cache.path = os.path.join(
            new_directory, os.path.basename(self.leader_epoch_cache.path)
        )
        self.producer_state_manager.directory = new_directory

    def delete(self) -> None:
        """Close everything and remove the directory."""
        self.close_handlers()
        for _when, segment in self._pending_deletes:
            segment.close_handlers()
        self._pending_deletes.clear()
        import shutil  # here: with its codec modules, a few ms of every start-up otherwise

        shutil.rmtree(self.directory, ignore_errors=True)

    def snapshot_files(self) -> list[str]:
        return sorted(name for name in os.listdir(self.directory) if name.endswith(SNAPSHOT_FILE_SUFFIX))

    def __repr__(self) -> str:
        return (
            f"UnifiedLog({self.topic}-{self.partition}, start={self.log_start_offset}, "
            f"end={self.log_end_offset}, hw={self.high_watermark}, segments={len(self.segments)})"
        )
